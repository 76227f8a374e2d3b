package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

const (
	// honeyFirstBytes bounds what a honeyport keeps of what a client sends.
	honeyFirstBytes = 256
	// honeyReadWait is how long a honeyport waits for a client to speak:
	// scanners that send a banner request do so at once.
	honeyReadWait = 500 * time.Millisecond
	// honeyTrailWait is how long a honeyport keeps reading once the client
	// has spoken: long enough for the rest of one request, short enough that
	// the trip is not held back.
	honeyTrailWait = 20 * time.Millisecond
	// honeyMaxReaders bounds concurrent reads; connections beyond it are
	// recorded without their first bytes, so a flood costs no memory.
	honeyMaxReaders = 64
	// honeyDropPoll is how often a honeyport reads its sockets' drop
	// counters; a final read at stop catches the rest.
	honeyDropPoll = time.Second
	// honeyRetryEvery is how often a honeyport tries again to bind a decoy
	// port another process held at start: once the squatter goes, the port
	// is a tripwire again without a reload. One bind attempt per port.
	honeyRetryEvery = 5 * time.Second
)

// honeyport is the network watcher of decoy ports: the agent itself listens
// (TCP and/or UDP), records each connection or datagram with its source and
// first bytes, and closes it. Pure Go: it works without eBPF and on every OS.
type honeyport struct {
	targets []netTarget
	log     *slog.Logger

	// connections = tripped (each its own trip) + aggregated (counted into
	// one of the floods aggregate trips); dropped never reached the agent.
	connections, tripped, aggregated, floods, dropped atomic.Uint64
	flood                                             floodGate
	mu                                                sync.Mutex
	addrs                                             []net.Addr // bound, for tests and logs
	socks                                             map[string]*honeySock
	unserved                                          []string
	squatted                                          []squattedPort // in use at start, tried again every honeyRetryEvery
	stopped                                           bool           // the sockets were closed: none is added any more
	prev                                              *honeyport     // the watcher this one replaces, whose sockets it takes

	// Tests only: a shorter accept queue, and a gate the accept loops wait
	// on, so a test can overflow the queue on purpose.
	backlog    int
	acceptGate chan struct{}
}

// honeySock is one bound decoy socket, the loop serving it, and the drops
// already reported for it. A socket passes from one honeyport watcher to the
// next on reload without being closed, so no other process can bind the port
// in between.
type honeySock struct {
	ln       *net.TCPListener // tcp
	pc       *net.UDPConn     // udp
	reason   string           // the loss reason of its drops
	seen     uint32           // sk_drops is a 32-bit counter that wraps
	released atomic.Bool      // the loop stops without closing: a successor takes it
	done     chan struct{}    // closed when the loop has stopped
}

// squattedPort is a decoy port another process held when the honeyport
// started, with its line in unserved.
type squattedPort struct {
	t             netTarget
	addr, key     string
	unservedEntry string
}

func (s *honeySock) conn() syscall.Conn {
	if s.ln != nil {
		return s.ln
	}
	return s.pc
}

func (s *honeySock) close() {
	if s.ln != nil {
		s.ln.Close()
	} else {
		s.pc.Close()
	}
}

// release stops s's loop, keeping the socket open, and returns it ready for
// another loop. Connections that arrive meanwhile wait in the backlog.
func (s *honeySock) release() *honeySock {
	s.released.Store(true)
	if s.ln != nil {
		s.ln.SetDeadline(time.Now())
	} else {
		s.pc.SetReadDeadline(time.Now())
	}
	<-s.done
	if s.ln != nil {
		s.ln.SetDeadline(time.Time{})
	} else {
		s.pc.SetReadDeadline(time.Time{})
	}
	return &honeySock{ln: s.ln, pc: s.pc, reason: s.reason, seen: s.seen, done: make(chan struct{})}
}

func newHoneyport(targets []netTarget, opts Options) *honeyport {
	return &honeyport{targets: targets, log: execNetLogger(opts), socks: map[string]*honeySock{}}
}

// NewHoneyportWatcher returns the watcher of rules' honeyport-mode rules (nil
// if there are none): the agent listens on the decoy ports itself, on every OS.
func NewHoneyportWatcher(rules []NetworkRule, opts Options) (Watcher, error) {
	_, honey, err := compileNetRules(rules)
	if err != nil || len(honey) == 0 {
		return nil, err
	}
	return newHoneyport(honey, opts), nil
}

func (h *honeyport) Kind() string      { return "network" }
func (h *honeyport) Mechanism() string { return netMechHoneyport }

// Missing: the peer is remote, so there is no local actor process.
func (h *honeyport) Missing() []string { return nil }

func (h *honeyport) Counters() map[string]uint64 {
	return map[string]uint64{"connections": h.connections.Load(), "tripped": h.tripped.Load(),
		"aggregated": h.aggregated.Load(), "floods": h.floods.Load(), "dropped": h.dropped.Load()}
}

// Addrs returns the addresses the honeyport listens on once started.
func (h *honeyport) Addrs() []net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]net.Addr(nil), h.addrs...)
}

// Inherit makes Start take over prev's sockets for the ports both serve
// instead of binding them again: a reload never frees a decoy port.
func (h *honeyport) Inherit(prev Watcher) {
	if p, ok := prev.(*honeyport); ok {
		h.prev = p
	}
}

// Unserved lists the decoy ports Start could not bind, one line per rule
// and port with the reason.
func (h *honeyport) Unserved() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.unserved)
}

// take removes the socket bound under key from h, stopped but open.
func (h *honeyport) take(key string) *honeySock {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	s := h.socks[key]
	delete(h.socks, key)
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.release()
}

// Start binds every decoy port it can (or takes it from the watcher it
// replaces). A port that cannot be bound is listed by Unserved and the
// others are served; one another process holds is tried again every
// honeyRetryEvery and served once it binds. Start fails only if none can be
// bound now or later.
func (h *honeyport) Start(ctx context.Context, sink Sink) error {
	sem := make(chan struct{}, honeyMaxReaders)
	var lc net.ListenConfig
	// Plain TCP: with Go's default MPTCP listener the socket the agent holds is
	// not the one whose accept queue overflows, and its drop counter stays 0.
	// MPTCP clients fall back to TCP.
	lc.SetMultipathTCP(false)
	var errs []error
	for _, t := range h.targets {
		for _, port := range t.rule.Ports {
			addr := net.JoinHostPort(t.rule.Address, strconv.Itoa(port))
			key := t.transport + " " + addr
			s := h.prev.take(key)
			if s == nil {
				var err error
				if s, err = h.listen(ctx, &lc, t.transport, addr); err != nil {
					inUse := errors.Is(err, syscall.EADDRINUSE)
					err = fmt.Errorf("honeyport %q: listening on %s %s: %w", t.rule.Name, t.transport, addr, err)
					line := fmt.Sprintf("network rule %q: %v", t.rule.Name, err)
					if inUse {
						line += fmt.Sprintf(" (tried again every %s)", honeyRetryEvery)
						h.squatted = append(h.squatted, squattedPort{t: t, addr: addr, key: key, unservedEntry: line})
					}
					errs = append(errs, err)
					h.mu.Lock()
					h.unserved = append(h.unserved, line)
					h.mu.Unlock()
					continue
				}
			}
			h.serve(s, key, t, sink, sem)
		}
	}
	h.prev = nil // what it held and this one does not serve closes with it
	h.mu.Lock()
	n := len(h.socks)
	h.mu.Unlock()
	if n == 0 && len(h.squatted) == 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	h.log.Info("network watcher started", "mechanism", netMechHoneyport, "listening", n, "unserved", len(errs))
	go h.expireFloods(ctx, sink)
	if len(h.squatted) > 0 {
		go h.retrySquatted(ctx, &lc, sink, sem)
	}
	go func() {
		h.watchDrops(ctx, sink)
		h.mu.Lock()
		h.stopped = true
		for _, s := range h.socks {
			s.close()
		}
		h.mu.Unlock()
		h.emitFloods(sink, h.flood.close())
	}()
	return nil
}

// serve adds a bound socket and starts its loop; false (and the socket
// closed) if the honeyport has stopped.
func (h *honeyport) serve(s *honeySock, key string, t netTarget, sink Sink, sem chan struct{}) bool {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		s.close()
		return false
	}
	h.socks[key] = s
	h.mu.Unlock()
	if s.ln != nil {
		h.bound(s.ln.Addr())
		go h.acceptLoop(s, t, sink, sem)
	} else {
		h.bound(s.pc.LocalAddr())
		go h.packetLoop(s, t, sink)
	}
	return true
}

// retrySquatted tries the ports held by other processes at start again
// until each binds or the honeyport stops; a port that binds is served and
// leaves Unserved.
func (h *honeyport) retrySquatted(ctx context.Context, lc *net.ListenConfig, sink Sink, sem chan struct{}) {
	tick := time.NewTicker(honeyRetryEvery)
	defer tick.Stop()
	pending := h.squatted
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var still []squattedPort
		for _, p := range pending {
			s, err := h.listen(ctx, lc, p.t.transport, p.addr)
			if err != nil {
				still = append(still, p)
				continue
			}
			if !h.serve(s, p.key, p.t, sink, sem) {
				return
			}
			h.mu.Lock()
			h.unserved = slices.DeleteFunc(h.unserved, func(u string) bool { return u == p.unservedEntry })
			h.mu.Unlock()
			h.log.Info("honeyport bound: the port's squatter has gone", event.KeyRule, p.t.rule.Name,
				"network.transport", p.t.transport, "server.address", p.addr)
		}
		pending = still
	}
}

func (h *honeyport) listen(ctx context.Context, lc *net.ListenConfig, transport, addr string) (*honeySock, error) {
	s := &honeySock{done: make(chan struct{})}
	if transport == "udp" {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		s.pc, s.reason = pc.(*net.UDPConn), event.LossReceiveOverflow
		return s, nil
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err == nil && h.backlog > 0 {
		if err = setBacklog(ln.(*net.TCPListener), h.backlog); err != nil {
			ln.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	s.ln, s.reason = ln.(*net.TCPListener), event.LossListenOverflow
	return s, nil
}

// watchDrops reports what the kernel dropped on the honeyport's sockets
// before the agent could accept or read it, until ctx ends; it reads the
// counters a last time before the sockets close.
func (h *honeyport) watchDrops(ctx context.Context, sink Sink) {
	// Under h.mu for the whole pass, so a socket handed to a successor
	// meanwhile is counted by one of the two, never both.
	check := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.socks {
			n, err := socketDrops(s.conn())
			if err != nil {
				continue // not Linux: the capability table says so
			}
			if d := n - s.seen; d > 0 {
				s.seen = n
				h.dropped.Add(uint64(d))
				sink.Lost(s.reason, int64(d))
			}
		}
	}
	h.mu.Lock()
	var first *honeySock
	for _, s := range h.socks {
		first = s
		break
	}
	h.mu.Unlock()
	if first == nil {
		<-ctx.Done()
		return
	}
	if _, err := socketDrops(first.conn()); err != nil {
		h.log.Info("honeyport cannot read its sockets' drop counters; connections dropped before accept are not counted", "error", err)
		<-ctx.Done()
		return
	}
	t := NewAlignedTimer(honeyDropPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			check()
			return
		case <-t.C:
			t.Again()
			check()
		}
	}
}

func (h *honeyport) bound(a net.Addr) {
	h.mu.Lock()
	h.addrs = append(h.addrs, a)
	h.mu.Unlock()
}

func (h *honeyport) acceptLoop(s *honeySock, t netTarget, sink Sink, sem chan struct{}) {
	defer close(s.done)
	if h.acceptGate != nil {
		<-h.acceptGate
	}
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.released.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Warn("honeyport accept", "error", err)
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		at := time.Now()
		h.connections.Add(1)
		select {
		case sem <- struct{}{}:
			go func() {
				defer func() { <-sem }()
				first := honeyRead(c)
				c.Close()
				h.trip(sink, t, c.RemoteAddr(), c.LocalAddr(), first, at)
			}()
		default:
			c.Close()
			h.trip(sink, t, c.RemoteAddr(), c.LocalAddr(), nil, at)
		}
	}
}

// honeyRead returns what the client sends, at most honeyFirstBytes: it waits
// up to honeyReadWait for the first bytes, then honeyTrailWait for more.
func honeyRead(c net.Conn) []byte {
	buf := make([]byte, honeyFirstBytes)
	c.SetReadDeadline(time.Now().Add(honeyReadWait))
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		if m > 0 && n == 0 {
			c.SetReadDeadline(time.Now().Add(honeyTrailWait))
		}
		n += m
		if err != nil {
			break
		}
	}
	return buf[:n]
}

func (h *honeyport) packetLoop(s *honeySock, t netTarget, sink Sink) {
	defer close(s.done)
	buf := make([]byte, 64*1024)
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.released.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Warn("honeyport read", "error", err)
			continue
		}
		h.connections.Add(1)
		first := buf[:min(n, honeyFirstBytes)]
		h.trip(sink, t, net.UDPAddrFromAddrPort(from), s.pc.LocalAddr(), first, time.Now())
	}
}

func (h *honeyport) trip(sink Sink, t netTarget, remote, local net.Addr, first []byte, at time.Time) {
	src, dst := honeyAddrPort(remote), honeyAddrPort(local)
	own, ended := h.flood.admit(t, src, dst, first, at)
	h.emitFloods(sink, ended)
	if !own {
		h.aggregated.Add(1)
		return
	}
	e := netTrip(event.NetworkConnection, t, netMechHoneyport, src, dst, at, nil, nil)
	// A datagram's source is whatever the sender wrote: anyone can forge it.
	e.Network.SourceUnverified = t.transport == "udp"
	if len(first) > 0 {
		e.Network.FirstBytes = strconv.Quote(string(first))
	}
	h.tripped.Add(1)
	sink.Trip(e)
}

// expireFloods emits the aggregates of flood windows as they end.
func (h *honeyport) expireFloods(ctx context.Context, sink Sink) {
	t := time.NewTicker(floodTick(h.targets))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.emitFloods(sink, h.flood.expire(now))
		}
	}
}

func (h *honeyport) emitFloods(sink Sink, aggregates []*event.Event) {
	for _, e := range aggregates {
		h.floods.Add(1)
		sink.Trip(e)
	}
}

func honeyAddrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
