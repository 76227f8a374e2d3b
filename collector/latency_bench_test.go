package collector

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkEndToEndLatency trips the real agent 200 times a second (reads of
// distinct watched files) for BENCH_LATENCY_TRIPS trips (default 2000) and
// reports the latency from the trip (the event's time, taken by the agent) to
// the row in PostgreSQL (received_at, the exporter transaction's now()).
func BenchmarkEndToEndLatency(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the agent's fanotify watcher needs root")
	}
	n := envInt("BENCH_LATENCY_TRIPS", 2000)
	for range b.N {
		s := newStack(b)
		tf := newTripFiles(b, n)
		tf.rule = "latency"
		s.startAgent(b, "bench-latency", tf.rules(), b.TempDir())
		b.ResetTimer()
		tf.read(b, 0, n, 200)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		pool, err := pgxpool.New(ctx, s.db)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = waitRows(ctx, pool, tf.rule, n, 100*time.Millisecond) // the log shows a shortfall
		b.StopTimer()
		l, err := rowLatency(ctx, pool, tf.rule)
		pool.Close()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(l.p50*1000, "p50_ms")
		b.ReportMetric(l.p99*1000, "p99_ms")
		b.Logf("%d trips at 200/s, %d rows: trip → row p50 %.1f ms, p99 %.1f ms, max %.1f ms", n, l.rows, l.p50*1000, l.p99*1000, l.max*1000)
	}
}

// BenchmarkCollectorLatency isolates the central side: one simulated agent
// sends one event per request, 200 requests a second, for 2000 events; it
// reports the acknowledgement latency seen by the agent and the latency from
// the event's time (taken just before sending) to its row.
func BenchmarkCollectorLatency(b *testing.B) {
	n := envInt("BENCH_LATENCY_TRIPS", 2000)
	for range b.N {
		s := newStack(b)
		a := newSimAgent(b, s, "bench-collector-latency")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		acks := make([]time.Duration, 0, n)
		b.ResetTimer()
		next := time.Now()
		for i := 0; i < n; i++ {
			ld := a.logs(a.events(1, "collector-latency"))
			t0 := time.Now()
			if err := a.send(ctx, ld); err != nil {
				b.Fatal(err)
			}
			acks = append(acks, time.Since(t0))
			next = next.Add(5 * time.Millisecond)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		pool, err := pgxpool.New(ctx, s.db)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = waitRows(ctx, pool, "collector-latency", n, 100*time.Millisecond)
		b.StopTimer()
		l, err := rowLatency(ctx, pool, "collector-latency")
		pool.Close()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(acks)
		b.ReportMetric(l.p50*1000, "row_p50_ms")
		b.ReportMetric(l.p99*1000, "row_p99_ms")
		b.Logf("%d single-event requests at 200/s: ack p50 %s p99 %s; event → row p50 %.1f ms p99 %.1f ms",
			n, acks[len(acks)/2].Round(10*time.Microsecond), acks[len(acks)*99/100].Round(10*time.Microsecond), l.p50*1000, l.p99*1000)
	}
}

// latency is the event time → row (received_at) latency of a rule's rows, in
// seconds.
type latency struct {
	rows          int
	p50, p99, max float64
}

func rowLatency(ctx context.Context, pool *pgxpool.Pool, rule string) (latency, error) {
	var l latency
	err := pool.QueryRow(ctx, `
		SELECT count(*),
		       percentile_cont(0.5)  WITHIN GROUP (ORDER BY extract(epoch FROM received_at - event_time)),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - event_time)),
		       max(extract(epoch FROM received_at - event_time))
		FROM alerts WHERE rule_name = $1`, rule).Scan(&l.rows, &l.p50, &l.p99, &l.max)
	return l, err
}
