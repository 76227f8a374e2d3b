package shipper

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// BenchmarkShip measures throughput from a full spool to the collector over
// mutual TLS on loopback: b.N events are spooled first, then timed from the
// shipper's start until the spool is empty.
//
//	go test -run '^$' -bench BenchmarkShip$ -benchtime 20000x ./agent/shipper
func BenchmarkShip(b *testing.B) {
	p := newTestPKI(b, 0)
	c := startCollector(b, p)
	sp := openSpool(b)
	ch := newChain()
	for left := b.N; left > 0; {
		n := min(left, 1000)
		put(b, sp, ch.next(n, event.SeverityInfo))
		left -= n
	}
	b.ResetTimer()
	start := time.Now()
	runShipper(b, testConfig(p, c), sp, nil)
	waitForB(b, func() bool { return len(c.trips()) >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	if got := len(c.trips()); got != b.N {
		b.Fatalf("collector received %d events, want %d", got, b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	if b.N >= 1000 {
		fmt.Printf("BenchmarkShip: %d events spool→collector (mTLS, loopback) in %v: %.0f events/s\n", b.N, elapsed.Round(time.Millisecond), rate)
	}
}

// BenchmarkShipLatency spools b.N events at 200 events/s, one Put each, and
// measures the time from Put (which includes the spool's commit) to the
// collector's receipt.
//
//	go test -run '^$' -bench BenchmarkShipLatency -benchtime 2000x ./agent/shipper
func BenchmarkShipLatency(b *testing.B) {
	const rate = 200
	p := newTestPKI(b, 0)
	c := startCollector(b, p)
	sp := openSpool(b)
	runShipper(b, testConfig(p, c), sp, nil)
	ch := newChain()
	// Warm the connection so the first event does not pay the handshake.
	put(b, sp, ch.next(1, event.SeverityInfo))
	waitForB(b, func() bool { return len(c.trips()) == 1 })

	putAt := make(map[uuid.UUID]time.Time, b.N)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for range b.N {
		<-tick.C
		e := ch.next(1, event.SeverityInfo)
		putAt[e[0].AlertID] = time.Now()
		if err := sp.Put(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	waitForB(b, func() bool { return len(c.trips()) == b.N+1 })
	b.StopTimer()

	lat := make([]time.Duration, 0, b.N)
	for _, r := range c.trips()[1:] {
		lat = append(lat, r.at.Sub(putAt[r.ev.AlertID]))
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)*50/100], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	if b.N >= 100 {
		fmt.Printf("BenchmarkShipLatency: %d events at %d/s, spool Put→collector receipt: p50 %v p99 %v max %v\n",
			b.N, rate, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
}

func waitForB(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
