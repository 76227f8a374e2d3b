package watcher

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// freeTCPPort returns a TCP port on addr that nothing listens on right now.
func freeTCPPort(t *testing.T, network, addr string) int {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listenTCP starts a real service on addr that accepts and holds connections.
func listenTCP(t *testing.T, network, addr string) (port int) {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				c.Read(make([]byte, 1))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// connectTCP opens a connection to addr:port, keeps it open for hold, and
// returns the client's local port.
func connectTCP(t *testing.T, network, addr string, port int, hold time.Duration) int {
	t.Helper()
	c, err := net.Dial(network, net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("connecting to %s port %d: %v", addr, port, err)
	}
	local := c.LocalAddr().(*net.TCPAddr).Port
	// sock_diag polls: hold the connection past a poll, then close.
	time.AfterFunc(hold, func() { c.Close() })
	return local
}

// TestNetworkObserve runs the observe-mode scenarios against each mechanism:
// an inbound connection to a real listener yields source address and port,
// destination port and the owning process, over IPv4 and IPv6; an unwatched
// port yields nothing; a SYN to a watched port without listener is a scan
// (eBPF only: sock_diag cannot see it, and the test asserts that too).
func TestNetworkObserve(t *testing.T) {
	needRootFor(t)
	for _, mech := range []string{netMechEBPF, netMechSockdiag} {
		t.Run(mech, func(t *testing.T) {
			v4 := listenTCP(t, "tcp4", "127.0.0.1")
			v6 := listenTCP(t, "tcp6", "::1")
			dual := listenTCP(t, "tcp", "") // [::]: IPv4 clients arrive v4-mapped
			unwatched := listenTCP(t, "tcp4", "127.0.0.1")
			closed := freeTCPPort(t, "tcp4", "127.0.0.1")
			closed6 := freeTCPPort(t, "tcp6", "::1")
			rules := []NetworkRule{
				{Name: "db", Severity: event.SeverityCritical, Ports: []int{v4, v6, dual}, Mode: "observe"},
				{Name: "closed", Severity: event.SeverityWarn, Ports: []int{closed, closed6}},
			}
			ws, err := NewNetworkWatchers(rules, Options{Mechanism: mech})
			if err != nil {
				t.Fatalf("NewNetworkWatchers(%s): %v", mech, err)
			}
			if len(ws) != 1 || ws[0].Mechanism() != mech || ws[0].Kind() != "network" {
				t.Fatalf("got %d watchers, first %q, want one %s network watcher", len(ws), ws[0].Mechanism(), mech)
			}
			sink := startTripWatcher(t, ws[0])
			hold := 100 * time.Millisecond
			if mech == netMechSockdiag {
				hold = 3 * sockdiagInterval
			}

			for _, c := range []struct {
				name, network, addr, typ string
				port                     int
			}{
				{"ipv4", "tcp4", "127.0.0.1", "ipv4", v4},
				{"ipv6", "tcp6", "::1", "ipv6", v6},
				{"ipv4 to a dual-stack listener", "tcp4", "127.0.0.1", "ipv4", dual},
			} {
				src := connectTCP(t, c.network, c.addr, c.port, hold)
				e := sink.waitFor(t, c.name+" connection", func(e *event.Event) bool {
					return e.Name == event.NetworkConnection && e.Network.SourcePort == int64(src)
				})
				n := e.Network
				if e.Rule != "db" || e.Severity != event.SeverityCritical || e.Mechanism != mech {
					t.Errorf("%s: rule %q severity %v mechanism %q", c.name, e.Rule, e.Severity, e.Mechanism)
				}
				if n.SourceAddress != c.addr || n.DestinationPort != int64(c.port) || n.Transport != "tcp" || n.Type != c.typ || n.Mode != "observe" {
					t.Errorf("%s: network %+v, want source %s, destination port %d, tcp, %s, observe", c.name, *n, c.addr, c.port, c.typ)
				}
				if e.Process == nil || e.Process.PID != int64(os.Getpid()) {
					t.Errorf("%s: owner %+v, want the listening test process %d", c.name, e.Process, os.Getpid())
				}
				if err := validatedTrip(e); err != nil {
					t.Errorf("%s: event does not validate: %v", c.name, err)
				}
			}

			src := connectTCP(t, "tcp4", "127.0.0.1", unwatched, hold)
			if _, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(closed)), 5*time.Second); err == nil {
				t.Fatalf("port %d has a listener", closed)
			}
			if _, err := net.DialTimeout("tcp6", net.JoinHostPort("::1", strconv.Itoa(closed6)), 5*time.Second); err == nil {
				t.Fatalf("port %d has a listener", closed6)
			}
			if mech == netMechEBPF {
				for _, c := range []struct {
					port     int
					src, typ string
				}{{closed, "127.0.0.1", "ipv4"}, {closed6, "::1", "ipv6"}} {
					e := sink.waitFor(t, "scan of "+c.typ, func(e *event.Event) bool {
						return e.Name == event.NetworkScan && e.Network.DestinationPort == int64(c.port)
					})
					if e.Rule != "closed" || e.Network.SourceAddress != c.src || e.Network.Type != c.typ || e.Network.SourcePort == 0 || e.Network.Transport != "tcp" {
						t.Errorf("scan event: rule %q network %+v", e.Rule, *e.Network)
					}
					if err := validatedTrip(e); err != nil {
						t.Errorf("scan event does not validate: %v", err)
					}
				}
			}
			// A last watched connection: everything before it has landed.
			last := connectTCP(t, "tcp4", "127.0.0.1", v4, hold)
			sink.waitFor(t, "last connection", func(e *event.Event) bool { return e.Network.SourcePort == int64(last) })
			if n := sink.count(func(e *event.Event) bool { return e.Network.SourcePort == int64(src) }); n != 0 {
				t.Errorf("unwatched port %d tripped %d times", unwatched, n)
			}
			if mech == netMechSockdiag {
				if n := sink.count(func(e *event.Event) bool { return e.Name == event.NetworkScan }); n != 0 {
					t.Errorf("sockdiag reported %d scans; it cannot see them", n)
				}
			}
			if n := sink.count(func(e *event.Event) bool {
				return e.Name == event.NetworkConnection && e.Network.DestinationPort == int64(v4)
			}); n != 2 {
				t.Errorf("got %d connection events on port %d, want exactly 2:%s", n, v4, describe(sink.all()))
			}
		})
	}
}
