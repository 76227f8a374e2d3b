package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// floodSources is how many probe sources the flood uses, each sending one
// TCP connection and one UDP datagram.
const floodSources = 2000

// floodSource is the i-th source address of the flood, in 127/8.
func floodSource(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1 + byte(i/62500), byte(i / 250 % 250), byte(i%250 + 1)})
}

// TestHoneyportFloodIsBounded: a flood of probes from many sources (one
// local user can forge them from all of 127/8, and UDP sources from
// anywhere) must not become thousands of chained CRITICAL events that push
// the spool past its limit; the count of connections must still add up.
func TestHoneyportFloodIsBounded(t *testing.T) {
	dir := t.TempDir()
	tcpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	p := filepath.Join(dir, "agent.yaml")
	conf := fmt.Sprintf(`rules:
  - {name: fake-db, type: network, severity: CRITICAL, mode: honeyport, transport: tcp, address: 127.0.0.1, ports: [%d]}
  - {name: fake-dns, type: network, severity: CRITICAL, mode: honeyport, transport: udp, address: 127.0.0.1, ports: [%d]}
spool: {path: %s/state/spool.db, max_events: 1000}
audit: {path: %s/state/audit.log}
health: {socket: %s/health.sock}
`, tcpPort, udpPort, dir, dir, dir)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, nil) }()
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
	waitFor(t, "the honeyport", func() bool {
		c, err := net.Dial("tcp", tcpAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// That readiness probe is one connection too.
	var connected atomic.Int64
	connected.Add(1)

	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			for i := range next {
				d.LocalAddr = &net.TCPAddr{IP: floodSource(i).AsSlice()}
				c, err := d.Dial("tcp", tcpAddr)
				if err != nil {
					continue
				}
				connected.Add(1)
				c.Write([]byte("probe\n"))
				c.Close()
			}
		}()
	}
	for i := 0; i < floodSources; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	udpTo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: udpPort}
	var sent int64
	for i := 0; i < floodSources; i++ {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: floodSource(i).AsSlice()}, udpTo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("probe\n")); err == nil {
			sent++
		}
		c.Close()
	}
	t.Logf("%d TCP connections and %d UDP datagrams from %d sources in %v", connected.Load(), sent, floodSources, time.Since(start).Round(time.Millisecond))

	// Every probe is accounted for by the honeyport once its counters stop
	// moving; then a flood window passes so the aggregates are chained.
	var last uint64
	waitFor(t, "the honeyports to settle", func() bool {
		n := honeyportConnections(ag)
		settled := n == last && n > 0
		last = n
		time.Sleep(200 * time.Millisecond)
		return settled
	})
	// Then wait until the chain accounts for every one of them: aggregates
	// are chained when their window ends.
	var tl tally
	waitFor(t, "the chain to count every connection", func() bool {
		tl = readTally(t, filepath.Join(dir, "state", "audit.log"))
		return uint64(tl.counted["fake-db"]+tl.counted["fake-dns"]) == last
	})
	depth := ag.Spool().Stats().Depth
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	spoolBytes := fileSizes(t, filepath.Join(dir, "state"), "spool.db", "spool.db-wal")
	tl = readTally(t, filepath.Join(dir, "state", "audit.log"))
	critical, individual, summaries, counted, lost := tl.critical, tl.individual, tl.summaries, tl.counted, tl.lost
	t.Logf("chained CRITICAL network events: %d (%d single, %d carrying a count); spool: %d events, %d bytes; counted tcp %d udp %d; losses %v",
		critical, individual, summaries, depth, spoolBytes, counted["fake-db"], counted["fake-dns"], lost)

	if counted["fake-db"] != connected.Load() {
		t.Errorf("tcp: %d connections counted, %d made", counted["fake-db"], connected.Load())
	}
	if got := counted["fake-dns"] + lost[event.LossReceiveOverflow]; got != sent {
		t.Errorf("udp: %d datagrams counted or reported lost, %d sent", got, sent)
	}
	if tl.verifiedUDP > 0 {
		t.Errorf("%d UDP events do not flag their source as unverified", tl.verifiedUDP)
	}
	// Per rule and window: the first sources one by one (and the pipeline's
	// summaries of their repeats), then one aggregate per window.
	windows := int64(time.Since(start)/watcher.DefaultFloodWindow) + 2
	bound := 2 * (2*int64(watcher.DefaultFloodSources) + windows)
	if critical > bound {
		t.Errorf("%d CRITICAL events chained for one flood; want at most %d", critical, bound)
	}
	if depth > cfg.Spool.MaxEvents {
		t.Errorf("spool holds %d events, past max_events %d", depth, cfg.Spool.MaxEvents)
	}
}

// tally is what an audit log says about network trips and losses.
type tally struct {
	critical, individual, summaries, verifiedUDP int64
	counted, lost                                map[string]int64
}

func readTally(t *testing.T, path string) tally {
	t.Helper()
	tl := tally{counted: map[string]int64{}, lost: map[string]int64{}}
	err := auditchain.ReadEntries(path, 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Name == event.AgentLoss {
			tl.lost[e.Agent.LossReason] += e.Agent.LossCount
		}
		if e.Name != event.NetworkConnection {
			return nil
		}
		if e.Severity == event.SeverityCritical {
			tl.critical++
		}
		if e.Network.Transport == "udp" && !e.Network.SourceUnverified {
			tl.verifiedUDP++
		}
		n := max(e.Count, 1)
		tl.counted[e.Rule] += n
		if e.Network.Sources > 0 || n > 1 {
			tl.summaries++
		} else {
			tl.individual++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// freePort returns a port free on every interface, below the kernel's
// ephemeral range (32768 and up by default): a port the kernel picked for
// a :0 listener is free again once closed, and until the agent binds it any
// outgoing connection on the host (the other packages' tests run alongside)
// may take it as its source port, leaving the honeyport unable to bind.
func freePort(t *testing.T, network string) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		addr := fmt.Sprintf(":%d", port)
		if network == "udp" {
			if c, err := net.ListenPacket("udp", addr); err == nil {
				c.Close()
				return port
			}
			continue
		}
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free %s port in 20000-31999", network)
	return 0
}

// honeyportConnections sums the running honeyports' connection counters.
func honeyportConnections(a *Agent) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n uint64
	for _, r := range a.watchers {
		if c, ok := r.w.(interface{ Counters() map[string]uint64 }); ok && r.w.Mechanism() == "honeyport" {
			n += c.Counters()["connections"]
		}
	}
	return n
}

func fileSizes(t *testing.T, dir string, names ...string) int64 {
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}
