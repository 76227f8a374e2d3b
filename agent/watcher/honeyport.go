package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
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
)

// honeyport is the network watcher of decoy ports: the agent itself listens
// (TCP and/or UDP), records each connection or datagram with its source and
// first bytes, and closes it. Pure Go: it works without eBPF and on every OS.
type honeyport struct {
	targets []netTarget
	log     *slog.Logger

	connections, tripped atomic.Uint64
	mu                   sync.Mutex
	addrs                []net.Addr // bound, for tests and logs
}

func newHoneyport(targets []netTarget, opts Options) *honeyport {
	return &honeyport{targets: targets, log: execNetLogger(opts)}
}

func (h *honeyport) Kind() string      { return "network" }
func (h *honeyport) Mechanism() string { return netMechHoneyport }

// Missing: the peer is remote, so there is no local actor process.
func (h *honeyport) Missing() []string { return nil }

func (h *honeyport) Counters() map[string]uint64 {
	return map[string]uint64{"connections": h.connections.Load(), "tripped": h.tripped.Load()}
}

// Addrs returns the addresses the honeyport listens on once started.
func (h *honeyport) Addrs() []net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]net.Addr(nil), h.addrs...)
}

func (h *honeyport) Start(ctx context.Context, sink Sink) error {
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	sem := make(chan struct{}, honeyMaxReaders)
	var lc net.ListenConfig
	for _, t := range h.targets {
		for _, port := range t.rule.Ports {
			addr := net.JoinHostPort(t.rule.Address, strconv.Itoa(port))
			switch t.transport {
			case "tcp":
				ln, err := lc.Listen(ctx, "tcp", addr)
				if err != nil {
					closeAll()
					return fmt.Errorf("honeyport %q: listening on tcp %s: %w", t.rule.Name, addr, err)
				}
				closers = append(closers, func() { ln.Close() })
				h.bound(ln.Addr())
				go h.acceptLoop(ln, t, sink, sem)
			case "udp":
				pc, err := lc.ListenPacket(ctx, "udp", addr)
				if err != nil {
					closeAll()
					return fmt.Errorf("honeyport %q: listening on udp %s: %w", t.rule.Name, addr, err)
				}
				closers = append(closers, func() { pc.Close() })
				h.bound(pc.LocalAddr())
				go h.packetLoop(pc.(*net.UDPConn), t, sink)
			}
		}
	}
	h.log.Info("network watcher started", "mechanism", netMechHoneyport, "listening", len(closers))
	go func() {
		<-ctx.Done()
		closeAll()
	}()
	return nil
}

func (h *honeyport) bound(a net.Addr) {
	h.mu.Lock()
	h.addrs = append(h.addrs, a)
	h.mu.Unlock()
}

func (h *honeyport) acceptLoop(ln net.Listener, t netTarget, sink Sink, sem chan struct{}) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
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

func (h *honeyport) packetLoop(pc *net.UDPConn, t netTarget, sink Sink) {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Warn("honeyport read", "error", err)
			continue
		}
		h.connections.Add(1)
		first := buf[:min(n, honeyFirstBytes)]
		h.trip(sink, t, net.UDPAddrFromAddrPort(from), pc.LocalAddr(), first, time.Now())
	}
}

func (h *honeyport) trip(sink Sink, t netTarget, remote, local net.Addr, first []byte, at time.Time) {
	src, dst := honeyAddrPort(remote), honeyAddrPort(local)
	e := netTrip(event.NetworkConnection, t, netMechHoneyport, src, dst, at, nil, nil)
	if len(first) > 0 {
		e.Network.FirstBytes = strconv.Quote(string(first))
	}
	h.tripped.Add(1)
	sink.Trip(e)
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
