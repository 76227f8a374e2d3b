package watcher

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestHoneyportReportsListenOverflow fills a honeyport's accept queue while
// it is not accepting: the handshakes the kernel drops are reported as
// listen_overflow loss, every connection accepted is tripped, and together
// they account for every connection a client saw established.
func TestHoneyportReportsListenOverflow(t *testing.T) {
	port := freeHoneyPort(t, "tcp")
	ws, err := NewNetworkWatchers([]NetworkRule{{Name: "decoy", Ports: []int{port}, Mode: "honeyport", Address: "127.0.0.1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := ws[0].(*honeyport)
	h.backlog, h.acceptGate = 1, make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := newTripSink()
	if err := h.Start(ctx, sink); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var established atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Short: a dropped SYN is retried after 1 s, and this test wants drops.
			if c, err := net.DialTimeout("tcp4", addr, 300*time.Millisecond); err == nil {
				established.Add(1)
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(h.acceptGate)
	// Stopping reads the drop counters a last time, then closes the listener.
	time.Sleep(500 * time.Millisecond) // let the queued connections be accepted
	cancel()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("honeyport still listening 20 s after stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sink.mu.Lock()
	lost := sink.lost[event.LossListenOverflow]
	sink.mu.Unlock()
	tripped := int64(len(sink.all()))
	t.Logf("16 dials: %d established, %d tripped, %d listen_overflow", established.Load(), tripped, lost)
	if lost == 0 {
		t.Errorf("16 connections to a queue of 1 not accepting: no listen_overflow loss reported")
	}
	if tripped+lost < established.Load() {
		t.Errorf("%d connections established, only %d tripped + %d reported lost", established.Load(), tripped, lost)
	}
	if c := h.Counters(); c["dropped"] != uint64(lost) || c["tripped"] != uint64(tripped) {
		t.Errorf("counters %v, sink saw %d trips and %d lost", c, tripped, lost)
	}
}

// TestSocketDropsCountsUDPOverflow: datagrams a full receive buffer refuses
// show in the socket's drop counter.
func TestSocketDropsCountsUDPOverflow(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	u := pc.(*net.UDPConn)
	if err := u.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 200; i++ {
		c.Write(make([]byte, 512))
	}
	n, err := socketDrops(u)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("200 datagrams into a minimal receive buffer, none counted as dropped")
	}
}
