package watcher

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestFloodGateCountsEveryProbe drives the gate with a clock: the first
// sources are let through, the rest of the window is one aggregate, a
// sustained flood is one aggregate per window, and every probe is either
// its own trip or counted in exactly one aggregate.
func TestFloodGateCountsEveryProbe(t *testing.T) {
	target := netTarget{rule: NetworkRule{Name: "db", Severity: event.SeverityCritical, Flood: Flood{Sources: 3, Window: 10 * time.Second}}, mode: "honeyport", transport: "udp"}
	local := netip.MustParseAddrPort("127.0.0.1:5433")
	src := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 40000)
	}
	var g floodGate
	t0 := time.Unix(1_800_000_000, 0)
	own, probes := 0, 0
	var aggs []*event.Event
	probe := func(i int, at time.Time) {
		probes++
		ok, ended := g.admit(target, src(i), local, []byte("x"), at)
		aggs = append(aggs, ended...)
		if ok {
			own++
		}
	}
	// Window 1: sources 0,1,2 pass (2 twice), then 100 more sources.
	for _, i := range []int{0, 1, 2, 2} {
		probe(i, t0)
	}
	for i := 3; i < 103; i++ {
		probe(i, t0.Add(time.Second))
	}
	if own != 4 {
		t.Fatalf("%d probes passed on their own; want 4", own)
	}
	aggs = append(aggs, g.expire(t0.Add(9*time.Second))...)
	if len(aggs) != 0 {
		t.Fatalf("an aggregate before the window ended: %+v", aggs)
	}
	aggs = append(aggs, g.expire(t0.Add(10*time.Second))...)
	if len(aggs) != 1 || aggs[0].Count != 100 || aggs[0].Network.Sources != 100 || !aggs[0].Network.SourceUnverified ||
		aggs[0].Network.SourceAddress != "" || aggs[0].Network.DestinationPort != 5433 || aggs[0].Severity != event.SeverityCritical {
		t.Fatalf("first window's aggregate: %+v %+v", aggs, aggs[0].Network)
	}
	// Window 2 continues the flood: everything aggregates, even a source
	// seen before.
	for i := 0; i < 50; i++ {
		probe(i, t0.Add(12*time.Second))
	}
	// Window 3 (20 s on) is ended lazily by a probe after a quiet window 3
	// and 4: fresh, so its first sources pass again.
	probe(7, t0.Add(45*time.Second))
	aggs = append(aggs, g.close()...)
	probe(8, t0.Add(46*time.Second)) // after close: on its own
	var counted int64
	for _, a := range aggs {
		counted += a.Count
	}
	if int64(own)+counted != int64(probes) {
		t.Errorf("%d own + %d aggregated != %d probes (%d aggregates)", own, counted, probes, len(aggs))
	}
	if len(aggs) != 2 || aggs[1].Count != 50 {
		t.Errorf("aggregates %d; want 2, the second of 50", len(aggs))
	}
}
