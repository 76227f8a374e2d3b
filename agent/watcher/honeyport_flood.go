package watcher

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// floodMaxSources bounds the distinct sources an aggregate remembers; past it
// the count of probes stays exact and tripwire.network.sources is a lower
// bound.
const floodMaxSources = 1 << 16

// floodGate decides, probe by probe, whether a honeyport reports it on its
// own or counts it into its (rule, port)'s aggregate. Within a window the
// first Flood.Sources distinct sources are reported one by one (repeats from
// them are the pipeline's to coalesce); from the next new source on, every
// probe of the window is counted into one aggregate event, emitted when the
// window ends. A window that ends with an aggregate is followed by one that
// aggregates from its first probe, so a sustained flood costs one event per
// window. Every probe is either its own trip or in exactly one aggregate's
// tripwire.count.
type floodGate struct {
	mu      sync.Mutex
	windows map[floodKey]*floodWindow
	closed  bool // stopped: whatever still arrives is reported on its own
}

type floodKey struct {
	rule string
	port uint16
}

type floodWindow struct {
	t        netTarget
	start    time.Time
	sources  map[netip.Addr]struct{} // reported one by one this window
	flooding bool
	agg      floodAggregate
}

type floodAggregate struct {
	count       int64
	sources     map[netip.Addr]struct{}
	first       time.Time
	local       netip.AddrPort
	firstSource netip.Addr // for network.type
	firstBytes  []byte
}

func floodLimits(t netTarget) (sources int, window time.Duration) {
	sources, window = t.rule.Flood.Sources, t.rule.Flood.Window
	if sources <= 0 {
		sources = DefaultFloodSources
	}
	if window <= 0 {
		window = DefaultFloodWindow
	}
	return sources, window
}

// admit reports whether the probe from src to local at `at` is reported on
// its own; if not, it was counted into the aggregate. It returns the
// aggregates of windows that ended before `at`, for the caller to emit.
func (g *floodGate) admit(t netTarget, src, local netip.AddrPort, first []byte, at time.Time) (own bool, ended []*event.Event) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return true, nil
	}
	if g.windows == nil {
		g.windows = map[floodKey]*floodWindow{}
	}
	limit, window := floodLimits(t)
	k := floodKey{rule: t.rule.Name, port: local.Port()}
	w := g.windows[k]
	for w != nil && at.Sub(w.start) >= window {
		ended = g.end(k, w, window, ended)
		w = g.windows[k]
	}
	if w == nil {
		w = &floodWindow{t: t, start: at, sources: map[netip.Addr]struct{}{}}
		g.windows[k] = w
	}
	addr := src.Addr().Unmap()
	if !w.flooding {
		if _, seen := w.sources[addr]; seen || len(w.sources) < limit {
			w.sources[addr] = struct{}{}
			return true, ended
		}
		w.flooding = true
	}
	a := &w.agg
	if a.count == 0 {
		a.first, a.local, a.firstSource, a.sources = at, local, addr, map[netip.Addr]struct{}{}
	}
	a.count++
	if len(a.sources) < floodMaxSources {
		a.sources[addr] = struct{}{}
	}
	if len(a.firstBytes) == 0 && len(first) > 0 {
		a.firstBytes = append([]byte(nil), first...)
	}
	return false, ended
}

// end closes w: its aggregate, if any, is appended to out, and the next
// window (starting where w ends) aggregates from its first probe.
func (g *floodGate) end(k floodKey, w *floodWindow, window time.Duration, out []*event.Event) []*event.Event {
	if w.agg.count == 0 {
		delete(g.windows, k)
		return out
	}
	out = append(out, w.agg.event(w.t))
	g.windows[k] = &floodWindow{t: w.t, start: w.start.Add(window), sources: map[netip.Addr]struct{}{}, flooding: true}
	return out
}

// expire ends the windows that are over by now.
func (g *floodGate) expire(now time.Time) []*event.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*event.Event
	for k, w := range g.windows {
		_, window := floodLimits(w.t)
		for w != nil && now.Sub(w.start) >= window {
			out = g.end(k, w, window, out)
			w = g.windows[k]
		}
	}
	return out
}

// close ends every window at once (the honeyport stops) and lets later
// probes through on their own, so none is left in an aggregate nobody emits.
func (g *floodGate) close() []*event.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*event.Event
	for _, w := range g.windows {
		if w.agg.count > 0 {
			out = append(out, w.agg.event(w.t))
		}
	}
	g.windows, g.closed = nil, true
	return out
}

// event is the aggregate as one trip: no source address (there are many),
// tripwire.count probes from tripwire.network.sources distinct sources.
func (a *floodAggregate) event(t netTarget) *event.Event {
	e := netTrip(event.NetworkConnection, t, netMechHoneyport, netip.AddrPortFrom(a.firstSource, 0), a.local, a.first, nil, nil)
	e.Network.SourceAddress, e.Network.SourcePort = "", 0
	e.Network.Sources = int64(len(a.sources))
	e.Network.SourceUnverified = t.transport == "udp"
	e.Count = a.count
	if len(a.firstBytes) > 0 {
		e.Network.FirstBytes = strconv.Quote(string(a.firstBytes))
	}
	return e
}

// floodTick is how often ended windows are looked for: a quarter of the
// shortest window, so an aggregate is at most that late.
func floodTick(targets []netTarget) time.Duration {
	tick := DefaultFloodWindow
	for _, t := range targets {
		if _, w := floodLimits(t); w < tick {
			tick = w
		}
	}
	return max(tick/4, 100*time.Millisecond)
}
