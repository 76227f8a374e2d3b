package watcher

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestHoneyport connects to decoy ports over TCP (IPv4 and IPv6) and UDP and
// checks each connection is recorded with source, port, protocol and the
// first bytes, Go-quoted, and that the agent closes the connection.
func TestHoneyport(t *testing.T) {
	tcpPort := freeHoneyPort(t, "tcp")
	udpPort := freeHoneyPort(t, "udp")
	rules := []NetworkRule{
		{Name: "decoy-tcp", Severity: event.SeverityCritical, Ports: []int{tcpPort}, Mode: "honeyport"},
		{Name: "decoy-udp", Severity: event.SeverityWarn, Ports: []int{udpPort}, Mode: "honeyport", Transport: "udp"},
	}
	ws, err := NewNetworkWatchers(rules, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Mechanism() != "honeyport" {
		t.Fatalf("want one honeyport watcher, got %d", len(ws))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := newTripSink()
	if err := ws[0].Start(ctx, sink); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ network, addr, typ string }{{"tcp4", "127.0.0.1", "ipv4"}, {"tcp6", "::1", "ipv6"}} {
		conn, err := net.Dial(c.network, net.JoinHostPort(c.addr, strconv.Itoa(tcpPort)))
		if err != nil {
			t.Fatal(err)
		}
		src := conn.LocalAddr().(*net.TCPAddr).Port
		payload := "GET / HTTP/1.0\r\n\x00\xff"
		if _, err := conn.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		// The agent closes after its read deadline: the client sees EOF.
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("%s: honeyport did not close the connection (n=%d err=%v)", c.network, n, err)
		}
		conn.Close()
		e := sink.waitFor(t, c.network+" honeyport", func(e *event.Event) bool { return e.Network.SourcePort == int64(src) })
		n := e.Network
		if e.Name != event.NetworkConnection || e.Rule != "decoy-tcp" || e.Mechanism != "honeyport" || e.Severity != event.SeverityCritical {
			t.Errorf("%s: name %s rule %q mechanism %q", c.network, e.Name, e.Rule, e.Mechanism)
		}
		if n.SourceAddress != c.addr || n.DestinationPort != int64(tcpPort) || n.Transport != "tcp" || n.Type != c.typ || n.Mode != "honeyport" {
			t.Errorf("%s: network %+v", c.network, *n)
		}
		if want := strconv.Quote(payload); n.FirstBytes != want {
			t.Errorf("%s: first bytes %s, want %s", c.network, n.FirstBytes, want)
		}
		if err := validatedTrip(e); err != nil {
			t.Errorf("%s: event does not validate: %v", c.network, err)
		}
	}

	u, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(udpPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	src := u.LocalAddr().(*net.UDPAddr).Port
	if _, err := u.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	e := sink.waitFor(t, "udp honeyport", func(e *event.Event) bool { return e.Network.SourcePort == int64(src) })
	if e.Rule != "decoy-udp" || e.Network.Transport != "udp" || e.Network.FirstBytes != `"ping\n"` || e.Network.DestinationPort != int64(udpPort) {
		t.Errorf("udp: rule %q network %+v", e.Rule, *e.Network)
	}

	// A client that sends nothing is recorded too, without first bytes.
	conn, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)))
	if err != nil {
		t.Fatal(err)
	}
	quiet := conn.LocalAddr().(*net.TCPAddr).Port
	e = sink.waitFor(t, "quiet client", func(e *event.Event) bool { return e.Network.SourcePort == int64(quiet) })
	conn.Close()
	if e.Network.FirstBytes != "" {
		t.Errorf("quiet client: first bytes %q", e.Network.FirstBytes)
	}
}

// TestHoneyportPortInUse: a decoy port another process holds at start is
// reported unserved, not a silent gap, and tried again: once the squatter
// goes, the port binds without a reload, trips, and leaves the report. A
// port that cannot be bound for another reason fails the start.
func TestHoneyportPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ws, err := NewNetworkWatchers([]NetworkRule{{Name: "busy", Ports: []int{port}, Mode: "honeyport", Address: "127.0.0.1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := newTripSink()
	if err := ws[0].Start(ctx, sink); err != nil {
		t.Fatalf("honeyport with its only port squatted: %v", err)
	}
	h := ws[0].(*honeyport)
	if u := h.Unserved(); len(u) != 1 || !strings.Contains(u[0], `network rule "busy"`) || !strings.Contains(u[0], "address already in use") {
		t.Fatalf("unserved %q", u)
	}
	time.Sleep(honeyRetryEvery + time.Second)
	if u := h.Unserved(); len(u) != 1 {
		t.Fatalf("still squatted, unserved %q", u)
	}

	ln.Close()
	deadline := time.Now().Add(2*honeyRetryEvery + 5*time.Second)
	for len(h.Unserved()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not bound %s after the squatter left: %q", 2*honeyRetryEvery, h.Unserved())
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	src := conn.LocalAddr().(*net.TCPAddr).Port
	conn.Close()
	e := sink.waitFor(t, "trip on the port freed", func(e *event.Event) bool { return e.Network.SourcePort == int64(src) })
	if e.Rule != "busy" || e.Network.DestinationPort != int64(port) {
		t.Errorf("trip: rule %q network %+v", e.Rule, *e.Network)
	}

	// An address this host does not have never binds: no retry, no start.
	ws, err = NewNetworkWatchers([]NetworkRule{{Name: "nowhere", Ports: []int{port}, Mode: "honeyport", Address: "192.0.2.1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws[0].Start(ctx, newTripSink()); err == nil {
		t.Fatal("honeyport on an address the host does not have started")
	}
}

func freeHoneyPort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
