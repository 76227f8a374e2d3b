package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/bpf"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// netObjects is the part of the BPF collection the network watcher loads.
type netObjects struct {
	TwSockState *ebpf.Program `ebpf:"tw_sock_state"`
	TwTcpReset  *ebpf.Program `ebpf:"tw_tcp_reset"`
	NetPorts    *ebpf.Map     `ebpf:"net_ports"`
	NetEvents   *ebpf.Map     `ebpf:"net_events"`
	Stats       *ebpf.Map     `ebpf:"stats"`
}

func (o *netObjects) Close() error {
	var errs []error
	for _, p := range []*ebpf.Program{o.TwSockState, o.TwTcpReset} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range []*ebpf.Map{o.NetPorts, o.NetEvents, o.Stats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

func loadNetObjects() (*netObjects, error) {
	spec, err := bpf.LoadTripwire()
	if err != nil {
		return nil, fmt.Errorf("reading bpf object: %w", err)
	}
	var objs netObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("loading network programs: %w", err)
	}
	return &objs, nil
}

// netEBPF observes the ports of real services: inbound TCP connections as
// they reach ESTABLISHED, and SYNs to watched ports that found no listener
// (answered by a reset) as scans. Ports are filtered in the kernel.
type netEBPF struct {
	ports  map[uint16][]netTarget
	owners *netOwners
	log    *slog.Logger

	sent, lost, malformed, tripped atomic.Uint64
}

func newNetEBPF(targets []netTarget, opts Options) (*netEBPF, error) {
	objs, err := loadNetObjects()
	if err != nil {
		return nil, err
	}
	objs.Close()
	return &netEBPF{ports: netPorts(targets), owners: newNetOwners(execProcRoot(opts)), log: execNetLogger(opts)}, nil
}

func (w *netEBPF) Kind() string      { return "network" }
func (w *netEBPF) Mechanism() string { return netMechEBPF }
func (w *netEBPF) Missing() []string { return nil }

func (w *netEBPF) Counters() map[string]uint64 {
	return map[string]uint64{"net_matched": w.sent.Load(), "ringbuf_lost": w.lost.Load(),
		"malformed": w.malformed.Load(), "tripped": w.tripped.Load()}
}

func (w *netEBPF) Start(ctx context.Context, sink Sink) error {
	objs, err := loadNetObjects()
	if err != nil {
		return err
	}
	for p := range w.ports {
		if err := objs.NetPorts.Put(p, uint8(1)); err != nil {
			objs.Close()
			return fmt.Errorf("filling net_ports: %w", err)
		}
	}
	var links []link.Link
	closeLinks := func() {
		for _, l := range links {
			l.Close()
		}
	}
	for _, p := range []*ebpf.Program{objs.TwSockState, objs.TwTcpReset} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			closeLinks()
			objs.Close()
			return fmt.Errorf("attaching %s: %w", p, err)
		}
		links = append(links, l)
	}
	rd, err := ringbuf.NewReader(objs.NetEvents)
	if err != nil {
		closeLinks()
		objs.Close()
		return fmt.Errorf("opening network ring buffer: %w", err)
	}
	w.log.Info("network watcher started", "mechanism", netMechEBPF, "ports", len(w.ports))

	var reported uint64
	runEBPF(ctx, rd,
		func() { w.readLoop(rd, sink) },
		func() { w.reportStats(objs.Stats, sink, &reported) },
		nil,
		closeLinks,
		func() { objs.Close() })
	return nil
}

func (w *netEBPF) readLoop(rd *ringbuf.Reader, sink Sink) {
	readRingbuf(rd, w.log, "network", &w.malformed, func(ev *bpf.TripwireNetEvent) {
		src, dst, ok := netAddrsOf(ev)
		targets := w.ports[ev.Dport]
		if !ok || len(targets) == 0 {
			w.malformed.Add(1)
			return
		}
		at := bootToWall(ev.BootNs)
		var name event.Name
		var owner *event.Process
		switch bpf.TripwireTwNetKind(ev.Kind) {
		case bpf.TripwireTwNetKindTW_NET_ACCEPT:
			name = event.NetworkConnection
			owner = w.owners.listener(ev.Dport)
		case bpf.TripwireTwNetKindTW_NET_PROBE:
			name = event.NetworkScan
		default:
			w.malformed.Add(1)
			return
		}
		for _, t := range targets {
			w.tripped.Add(1)
			sink.Trip(netTrip(name, t, netMechEBPF, src, dst, at, owner, nil))
		}
	})
}

// netAddrsOf checks and converts the addresses of a kernel record.
func netAddrsOf(ev *bpf.TripwireNetEvent) (src, dst netip.AddrPort, ok bool) {
	switch ev.Family {
	case unix.AF_INET:
		s := netip.AddrFrom4([4]byte(ev.Saddr[:4]))
		d := netip.AddrFrom4([4]byte(ev.Daddr[:4]))
		return netip.AddrPortFrom(s, ev.Sport), netip.AddrPortFrom(d, ev.Dport), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(ev.Saddr), ev.Sport),
			netip.AddrPortFrom(netip.AddrFrom16(ev.Daddr), ev.Dport), true
	}
	return src, dst, false
}

func (w *netEBPF) reportStats(m *ebpf.Map, sink Sink, reported *uint64) {
	w.sent.Store(percpuSum(m, bpf.TripwireTwStatTW_STAT_NET_SENT))
	lost := percpuSum(m, bpf.TripwireTwStatTW_STAT_NET_LOST)
	w.lost.Store(lost)
	reportRingbufLoss(sink, w.log, "network ring buffer full: connections lost", lost, reported)
}

// percpuSum reads one counter of the per-CPU stats map, summed over CPUs.
func percpuSum(m *ebpf.Map, idx bpf.TripwireTwStat) uint64 {
	var per []uint64
	if err := m.Lookup(uint32(idx), &per); err != nil {
		return 0
	}
	var t uint64
	for _, v := range per {
		t += v
	}
	return t
}
