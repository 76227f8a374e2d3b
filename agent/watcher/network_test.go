package watcher

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestCompileNetRules(t *testing.T) {
	obs, honey, err := compileNetRules([]NetworkRule{
		{Name: "db", Ports: []int{5432}},
		{Name: "decoy", Ports: []int{2222}, Mode: "honeyport", Transport: "udp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].mode != "observe" || obs[0].transport != "tcp" || len(honey) != 1 || honey[0].transport != "udp" {
		t.Errorf("defaults: observe %+v honey %+v", obs, honey)
	}
	for _, c := range []struct {
		rule NetworkRule
		want string
	}{
		{NetworkRule{Name: "a"}, "no ports"},
		{NetworkRule{Name: "b", Ports: []int{70000}}, "out of range"},
		{NetworkRule{Name: "c", Ports: []int{53}, Transport: "udp"}, "observe mode watches tcp only"},
		{NetworkRule{Name: "d", Ports: []int{53}, Transport: "sctp"}, "transport"},
		{NetworkRule{Name: "e", Ports: []int{53}, Mode: "sniff"}, "mode"},
	} {
		if _, _, err := compileNetRules([]NetworkRule{c.rule}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.rule.Name, err, c.want)
		}
	}
}

func TestNetTrip(t *testing.T) {
	tgt := netTarget{rule: NetworkRule{Name: "db", Severity: event.SeverityWarn}, mode: "observe", transport: "tcp"}
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.5]:40000")
	e := netTrip(event.NetworkConnection, tgt, "ebpf", mapped, netip.MustParseAddrPort("[::]:5432"), time.Now(), nil, nil)
	n := e.Network
	if n.SourceAddress != "10.0.0.5" || n.Type != "ipv4" || n.SourcePort != 40000 || n.DestinationPort != 5432 || n.DestinationAddress != "" {
		t.Errorf("v4-mapped: %+v", *n)
	}
	e = netTrip(event.NetworkScan, tgt, "ebpf", netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:5432"), time.Now(), nil, nil)
	if e.Network.Type != "ipv6" || e.Network.SourceAddress != "2001:db8::1" || e.Network.DestinationAddress != "2001:db8::2" || e.Name != event.NetworkScan {
		t.Errorf("v6: %+v", *e.Network)
	}
}
