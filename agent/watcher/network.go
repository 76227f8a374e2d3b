package watcher

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Network watcher mechanisms.
const (
	netMechEBPF      = "ebpf"      // inet_sock_set_state + tcp_send_reset
	netMechSockdiag  = "sockdiag"  // netlink sock_diag polling
	netMechHoneyport = "honeyport" // the agent listens on a decoy port
)

// Network rule modes.
const (
	netModeObserve   = "observe"
	netModeHoneyport = "honeyport"
)

// netTarget is a network rule with its defaults applied.
type netTarget struct {
	rule      NetworkRule
	mode      string
	transport string
}

// compileNetRules checks the rules and applies defaults: mode observe,
// transport tcp. Observe mode sees TCP only.
func compileNetRules(rules []NetworkRule) (observe, honey []netTarget, err error) {
	var errs []error
	for _, r := range rules {
		t := netTarget{rule: r, mode: r.Mode, transport: r.Transport}
		if t.mode == "" {
			t.mode = netModeObserve
		}
		if t.transport == "" {
			t.transport = "tcp"
		}
		if len(r.Ports) == 0 {
			errs = append(errs, fmt.Errorf("network rule %q: no ports", r.Name))
		}
		for _, p := range r.Ports {
			if p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("network rule %q: port %d out of range", r.Name, p))
			}
		}
		switch {
		case t.transport != "tcp" && t.transport != "udp":
			errs = append(errs, fmt.Errorf("network rule %q: transport %q (want tcp or udp)", r.Name, t.transport))
		case t.mode == netModeObserve && t.transport != "tcp":
			errs = append(errs, fmt.Errorf("network rule %q: observe mode watches tcp only", r.Name))
		case t.mode == netModeObserve:
			observe = append(observe, t)
		case t.mode == netModeHoneyport:
			honey = append(honey, t)
		default:
			errs = append(errs, fmt.Errorf("network rule %q: mode %q (want observe or honeyport)", r.Name, t.mode))
		}
	}
	return observe, honey, errors.Join(errs...)
}

// NewNetworkWatchers returns the watchers for rules: one honeyport watcher
// for the decoy ports (pure Go, every OS) and one observe watcher for the
// ports of real services, eBPF where it works, else sock_diag polling.
// opts.Mechanism ("ebpf", "sockdiag") forces the observe mechanism; falling
// back is logged at WARN with the reason.
func NewNetworkWatchers(rules []NetworkRule, opts Options) ([]Watcher, error) {
	observe, honey, err := compileNetRules(rules)
	if err != nil {
		return nil, err
	}
	var ws []Watcher
	if len(honey) > 0 {
		ws = append(ws, newHoneyport(honey, opts))
	}
	if len(observe) > 0 {
		w, err := newObserveWatcher(observe, opts)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// NewObserveWatcher returns the watcher of rules' observe-mode rules (nil if
// there are none): eBPF where it works, else sock_diag polling; Linux only.
func NewObserveWatcher(rules []NetworkRule, opts Options) (Watcher, error) {
	observe, _, err := compileNetRules(rules)
	if err != nil || len(observe) == 0 {
		return nil, err
	}
	return newObserveWatcher(observe, opts)
}

// netPorts maps each observed port to the rules that watch it.
func netPorts(targets []netTarget) map[uint16][]netTarget {
	m := map[uint16][]netTarget{}
	for _, t := range targets {
		for _, p := range t.rule.Ports {
			m[uint16(p)] = append(m[uint16(p)], t)
		}
	}
	return m
}

// netTrip builds the event of one connection or probe for one rule.
func netTrip(name event.Name, t netTarget, mech string, src netip.AddrPort, dst netip.AddrPort, at time.Time, owner *event.Process, missing []string) *event.Event {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	typ := "ipv4"
	if src.Addr().Is6() {
		typ = "ipv6"
	}
	n := &event.Network{
		SourceAddress:   src.Addr().String(),
		SourcePort:      int64(src.Port()),
		DestinationPort: int64(dst.Port()),
		Transport:       t.transport,
		Type:            typ,
		Mode:            t.mode,
	}
	if dst.Addr().IsValid() && !dst.Addr().IsUnspecified() {
		n.DestinationAddress = dst.Addr().String()
	}
	e := &event.Event{
		Name:      name,
		Severity:  t.rule.Severity,
		Rule:      t.rule.Name,
		Time:      at,
		Mechanism: mech,
		Missing:   append([]string(nil), missing...),
		Network:   n,
	}
	if owner != nil {
		p := *owner
		e.Process = &p
	}
	return e
}
