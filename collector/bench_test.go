package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
	"github.com/tripwire-sec/tripwire/migrations"
)

// Load generator: simulated agents speaking plain OTLP/gRPC over mTLS, each
// with its own certificate and a valid audit chain, so the exporter does its
// full work (hash recomputation, chain heads, hosts, alerts, NOTIFY).
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./collector/
//
// Knobs: BENCH_AGENTS (default 50), BENCH_EVENTS per agent (4000),
// BENCH_BATCH events per request (500), BENCH_CONNS for the connection
// benchmark (1000). BenchmarkIngest and BenchmarkIngestRate run a durable
// PostgreSQL with the settings docs/operations.md recommends, for both the
// collector and the COPY baseline.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simAgent is one simulated host with its chain.
type simAgent struct {
	host   string
	client plogotlp.GRPCClient
	seq    uint64
	prev   string
}

func newSimAgent(b testing.TB, s *stack, host string) *simAgent {
	if _, err := pki.IssueAgent(s.pki, host, 0); err != nil {
		b.Fatal(err)
	}
	return &simAgent{host: host, client: agentClient(b, s.pki, host, s.endpoint), prev: strings.Repeat("0", 64)}
}

// events makes the next n chained events, happening now.
func (a *simAgent) events(n int, rule string) []*event.Event {
	ts := make([]time.Time, n)
	now := time.Now().UTC()
	for i := range ts {
		ts[i] = now
	}
	return a.eventsAt(ts, rule)
}

// eventsAt makes the next chained events, one happening at each time.
func (a *simAgent) eventsAt(ts []time.Time, rule string) []*event.Event {
	out := make([]*event.Event, len(ts))
	for i := range out {
		a.seq++
		now := ts[i].UTC()
		e := &event.Event{
			Name: event.FileAccess, AlertID: event.NewAlertID(), Seq: a.seq, Severity: event.SeverityWarn,
			Rule: rule, Time: now, ObservedTime: now, Mechanism: "fanotify",
			File: &event.File{Path: fmt.Sprintf("/srv/data/file-%d", a.seq)},
			Process: &event.Process{PID: 1000 + int64(a.seq%30000), PPID: 1, UserName: "www-data", UserID: "33",
				ExecutablePath: "/usr/bin/cat", CommandLine: "cat /srv/data/file"},
		}
		e.PrevHash = a.prev
		e.Hash = event.ChainHash(a.prev, e.Canonical())
		a.prev = e.Hash
		out[i] = e
	}
	return out
}

func (a *simAgent) logs(evs []*event.Event) plog.Logs {
	ld, lrs := a.request()
	lrs.EnsureCapacity(len(evs))
	for _, e := range evs {
		e.CopyTo(lrs.AppendEmpty())
	}
	return ld
}

// request is a request with the agent's resource and no records yet, and
// where its records go.
func (a *simAgent) request() (plog.Logs, plog.LogRecordSlice) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	res.PutStr(event.ResourceHostName, a.host)
	res.PutStr(event.ResourceServiceName, event.ServiceName)
	res.PutStr(event.ResourceOSType, "linux")
	res.PutStr(event.ResourceHostArch, "amd64")
	res.PutStr(event.ResourceServiceVersion, "bench")
	return ld, rl.ScopeLogs().AppendEmpty().LogRecords()
}

// prepareLead is how far ahead of making them BenchmarkIngestRate dates
// its events: making 900,000 takes a few seconds on two cores.
const prepareLead = 20 * time.Second

// prepareRecords makes each agent's next n events, the k-th happening at
// due(k), as OTLP records, the agents side by side.
func prepareRecords(sims []*simAgent, n int, due func(int) time.Time, rule string) []plog.LogRecordSlice {
	ts := make([]time.Time, n)
	for k := range ts {
		ts[k] = due(k)
	}
	out := make([]plog.LogRecordSlice, len(sims))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i, a := range sims {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = plog.NewLogRecordSlice()
			out[i].EnsureCapacity(n)
			for _, e := range a.eventsAt(ts, rule) {
				e.CopyTo(out[i].AppendEmpty())
			}
		})
	}
	wg.Wait()
	return out
}

// send exports until acknowledged, retrying what the memory limiter or a
// full queue refuses, as the agent's shipper does.
func (a *simAgent) send(ctx context.Context, ld plog.Logs) error {
	req := plogotlp.NewExportRequestFromLogs(ld)
	for backoff := 10 * time.Millisecond; ; backoff = min(backoff*2, time.Second) {
		resp, err := a.client.Export(ctx, req)
		if err == nil {
			if n := resp.PartialSuccess().RejectedLogRecords(); n != 0 {
				return fmt.Errorf("%d rejected: %s", n, resp.PartialSuccess().ErrorMessage())
			}
			return nil
		}
		if status.Code(err) != codes.Unavailable && status.Code(err) != codes.ResourceExhausted {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func countRule(ctx context.Context, pool *pgxpool.Pool, rule string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE rule_name = $1`, rule).Scan(&n)
	return n, err
}

// waitRows counts rule's rows every interval until there are want of them;
// it returns the last count, and an error if ctx ended first.
func waitRows(ctx context.Context, pool *pgxpool.Pool, rule string, want int, every time.Duration) (int, error) {
	for {
		n, err := countRule(ctx, pool, rule)
		if err == nil && n >= want {
			return n, nil
		}
		if ctx.Err() != nil {
			return n, fmt.Errorf("only %d of %d rows: %v", n, want, errors.Join(err, ctx.Err()))
		}
		time.Sleep(every)
	}
}

// BenchmarkIngest measures sustained ingest through the collector into
// PostgreSQL, then a raw pgx COPY of the same rows in a fresh database of
// the same cluster; once with the shipped config.yaml, once with
// forward.yaml layered on (the same events also forwarded over OTLP).
func BenchmarkIngest(b *testing.B) {
	for _, configs := range [][]string{{"config.yaml"}, {"config.yaml", "forward.yaml"}} {
		b.Run(strings.Join(configs, "+"), func(b *testing.B) { benchIngest(b, configs) })
	}
}

func benchIngest(b *testing.B, configs []string) {
	agents, perAgent, batch := envInt("BENCH_AGENTS", 50), envInt("BENCH_EVENTS", 4000), envInt("BENCH_BATCH", 500)
	for range b.N {
		// Durable, with the recommended settings, as BenchmarkIngestRate.
		pg := pgtest.NewClusterWith(b, pgtest.Options{Durable: true, Settings: productionPostgres})
		s := newStackOn(b, pg.NewDB(b), configs...)
		forwarding := slices.Contains(configs, "forward.yaml")
		s.sink.mu.Lock()
		s.sink.countOnly = true
		s.sink.mu.Unlock()
		sims := make([]*simAgent, agents)
		for i := range sims {
			sims[i] = newSimAgent(b, s, fmt.Sprintf("bench-%03d", i))
		}
		// Pre-build every request so the generator's own cost is outside the
		// measurement.
		reqs := make([][]plog.Logs, agents)
		var all []*event.Event
		hostOf := map[*event.Event]string{}
		for i, a := range sims {
			for sent := 0; sent < perAgent; sent += batch {
				evs := a.events(min(batch, perAgent-sent), "bench")
				for _, e := range evs {
					hostOf[e] = a.host
				}
				all = append(all, evs...)
				reqs[i] = append(reqs[i], a.logs(evs))
			}
		}
		total := agents * perAgent
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		pool, err := pgxpool.New(ctx, s.db)
		if err != nil {
			b.Fatal(err)
		}

		b.ResetTimer()
		start := time.Now()
		var acked atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for i, a := range sims {
			wg.Go(func() {
				for _, ld := range reqs[i] {
					if err := a.send(ctx, ld); err != nil {
						errs <- err
						return
					}
					acked.Add(int64(ld.LogRecordCount()))
				}
			})
		}
		wg.Wait()
		ackedIn := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		// Every 250 ms: counting is a scan, and polling faster takes
		// PostgreSQL CPU from the pipeline being measured.
		if _, err := waitRows(ctx, pool, "bench", total, 250*time.Millisecond); err != nil {
			b.Fatal(err)
		}
		// With forwarding, done when the OTLP endpoint has every record too.
		for forwarding && s.sink.records() < total {
			if ctx.Err() != nil {
				b.Fatalf("%d of %d records forwarded", s.sink.records(), total)
			}
			time.Sleep(250 * time.Millisecond)
		}
		stored := time.Since(start)
		b.StopTimer()
		var breaks int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM chain_breaks`).Scan(&breaks)
		pool.Close()
		rss := rssKiB(s.col.cmd.Process.Pid)

		copyRate, copyBoth := copyBaseline(b, ctx, pg, all, hostOf)
		cancel()
		rate := float64(total) / stored.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(copyRate, "copy_alerts_rows/s")
		if forwarding {
			b.Logf("forwarding: all %d records also reached the OTLP endpoint, within the time below", s.sink.records())
		}
		b.Logf("%d agents x %d events in batches of %d: acknowledged in %s, all %d rows committed in %s = %.0f events/s; "+
			"chain breaks %d; collector RSS %d MiB", agents, perAgent, batch, ackedIn.Round(time.Millisecond), total,
			stored.Round(time.Millisecond), rate, breaks, rss/1024)
		b.Logf("raw pgx COPY of the same rows: alerts only (payload in event_detail) %.0f rows/s; alerts + audit_entries as the exporter stores them %.0f events/s; "+
			"collector pipeline = %.0f%% of alerts-only COPY, %.0f%% of alerts+audit COPY",
			copyRate, copyBoth, 100*rate/copyRate, 100*rate/copyBoth)
	}
}

// copyBaseline COPYs the same alert rows (and, separately, alert + audit
// entry rows) into fresh migrated databases of pg and returns the rates.
func copyBaseline(b *testing.B, ctx context.Context, pg *pgtest.Cluster, all []*event.Event, hostOf map[*event.Event]string) (alertsOnly, withAudit float64) {
	run := func(audit bool) float64 {
		url := pg.NewDB(b)
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		if err := migrations.Apply(ctx, pool); err != nil {
			b.Fatal(err)
		}
		if _, err := migrations.EnsurePartitions(ctx, pool, time.Now(), 2); err != nil {
			b.Fatal(err)
		}
		// uuids as pgtype.UUID, as the exporter passes them: pgx encodes a
		// string into a uuid column only after a failed attempt and a parse.
		hostIDs := map[string]pgtype.UUID{}
		for _, h := range hostOf {
			if _, ok := hostIDs[h]; ok {
				continue
			}
			var id pgtype.UUID
			if err := pool.QueryRow(ctx, `INSERT INTO hosts (host_name) VALUES ($1) RETURNING host_id`, h).Scan(&id); err != nil {
				b.Fatal(err)
			}
			hostIDs[h] = id
		}
		// Rows are built before the clock starts, as the exporter's are
		// built before its transaction.
		alertRows := make([][]any, len(all))
		auditRows := make([][]any, len(all))
		for i, e := range all {
			canon := e.Canonical()
			hid := hostIDs[hostOf[e]]
			id := pgtype.UUID{Bytes: e.AlertID, Valid: true}
			// With audit entries, as the exporter stores them: the payload
			// once, in the audit entry (migration 0018); alone, in event_detail.
			var detail any = string(canon)
			if audit {
				detail = nil
			}
			var cmd, user string
			if e.Process != nil {
				cmd, user = e.Process.CommandLine, e.Process.UserName
			}
			alertRows[i] = []any{id, e.Time, hid, hostOf[e], string(e.Name), string(e.Type()),
				e.Rule, e.Severity.String(), int64(e.Seq), e.Summary(), detail,
				event.SearchWords(e.Summary(), e.Rule, hostOf[e], cmd, user)}
			auditRows[i] = []any{hid, int64(e.Seq), id, e.Time, e.PrevHash, e.Hash, string(canon)}
		}
		start := time.Now()
		const chunk = 500 // the same batch size the load generator sends
		for off := 0; off < len(all); off += chunk {
			end := min(off+chunk, len(all))
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"alerts"},
					[]string{"alert_id", "event_time", "host_id", "host_name", "event_name", "tripwire_type",
						"rule_name", "severity", "seq", "summary", "event_detail", "search_words"},
					pgx.CopyFromRows(alertRows[off:end])); err != nil {
					return err
				}
				if audit {
					_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"},
						[]string{"host_id", "seq", "alert_id", "event_time", "prev_hash", "hash", "payload"},
						pgx.CopyFromRows(auditRows[off:end]))
					return err
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		return float64(len(all)) / time.Since(start).Seconds()
	}
	return run(false), run(true)
}

// BenchmarkConnections holds BENCH_CONNS simultaneous agent connections
// (each its own certificate and host) on one collector, has each send one
// event a second for 10 s, and reports the collector's RSS.
func BenchmarkConnections(b *testing.B) {
	conns := envInt("BENCH_CONNS", 1000)
	for range b.N {
		s := newStack(b)
		idle := rssKiB(s.col.cmd.Process.Pid)
		issueStart := time.Now()
		sims := make([]*simAgent, conns)
		for i := range sims {
			sims[i] = newSimAgent(b, s, fmt.Sprintf("conn-%04d", i))
		}
		b.Logf("issued %d agent certificates in %s", conns, time.Since(issueStart).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		const rounds = 10
		for _, a := range sims {
			wg.Go(func() {
				for r := 0; r < rounds; r++ {
					if err := a.send(ctx, a.logs(a.events(1, "conn"))); err != nil {
						failed.Add(1)
						return
					}
					time.Sleep(time.Second)
				}
			})
		}
		// Sample the collector's RSS while all connections are open.
		var peak int64
		stop, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if r := rssKiB(s.col.cmd.Process.Pid); r > peak {
					peak = r
				}
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		wg.Wait()
		close(stop)
		<-sampled
		connected := time.Since(start)
		open := rssKiB(s.col.cmd.Process.Pid)
		pool, err := pgxpool.New(ctx, s.db)
		if err != nil {
			b.Fatal(err)
		}
		want := conns * rounds
		n, _ := waitRows(ctx, pool, "conn", want, 100*time.Millisecond) // the log shows a shortfall
		var hosts int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM hosts WHERE host_name LIKE 'conn-%'`).Scan(&hosts)
		pool.Close()
		cancel()
		b.StopTimer()
		if f := failed.Load(); f != 0 {
			b.Errorf("%d agents failed to send", f)
		}
		b.ReportMetric(float64(peak)/1024, "peak_rss_MiB")
		b.Logf("%d simultaneous agent connections, %d events each over %s: %d/%d rows, %d hosts; collector RSS idle %d MiB, peak %d MiB, after %d MiB",
			conns, rounds, connected.Round(time.Millisecond), n, want, hosts, idle/1024, peak/1024, open/1024)
	}
}

// BenchmarkIngestRate holds a constant load, BENCH_RATE events/s (15,000)
// for BENCH_SECONDS (60), from BENCH_AGENTS (50) simulated agents through
// the shipped config.yaml. Each agent behaves like the real shipper: one
// export in flight, and each export takes every event that became due while
// the previous one was in flight, at most BENCH_MAX_BATCH (50). Events carry
// the time they became due, so event → row latency includes the wait on the
// agent; it stays bounded only if the collector keeps up. When the load
// stops it reports the backlog (events due but not yet stored) and how long
// the collector took to store it.
func BenchmarkIngestRate(b *testing.B) {
	rate, seconds, agents := envInt("BENCH_RATE", 15000), envInt("BENCH_SECONDS", 60), envInt("BENCH_AGENTS", 50)
	maxBatch := envInt("BENCH_MAX_BATCH", 50)
	perAgent := float64(rate) / float64(agents)
	for range b.N {
		// A durable cluster with the settings docs/operations.md
		// recommends: the figure is the one production gets.
		pg := pgtest.NewClusterWith(b, pgtest.Options{Durable: true, Settings: productionPostgres})
		s := newStackOn(b, pg.NewDB(b), benchConfigs(b)...)
		sims := make([]*simAgent, agents)
		for i := range sims {
			sims[i] = newSimAgent(b, s, fmt.Sprintf("rate-%03d", i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+5*time.Minute)
		pool, err := pgxpool.New(ctx, s.db)
		if err != nil {
			b.Fatal(err)
		}
		recycleWAL(ctx, b, pool, int64(rate)*int64(seconds)*4096)
		owed := int(perAgent * float64(seconds)) // events per agent
		// Every agent's events are made (chained, hashed, as OTLP records)
		// before the clock starts, for a start a little ahead: the agents are
		// other machines, and making the events here took a quarter of a core
		// from the collector and PostgreSQL being measured.
		start := time.Now().Add(prepareLead)
		// due is when an agent's k-th event (from 0) happens.
		due := func(k int) time.Time { return start.Add(time.Duration(float64(k) / perAgent * float64(time.Second))) }
		prepared := prepareRecords(sims, owed, due, "rate")
		if time.Now().After(start) {
			b.Fatalf("making %d events took longer than the %s lead", owed*agents, prepareLead)
		}
		time.Sleep(time.Until(start))
		b.ResetTimer()
		load0 := loadAvg()
		colCPU, genCPU, pgCPU := cpuSeconds(s.col.cmd.Process.Pid), cpuSeconds(os.Getpid()), clusterCPUSeconds(s.db)
		wal0 := walBytes(ctx, b, pool)
		var requests, largest atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for i, a := range sims {
			wg.Go(func() {
				for made := 0; made < owed; {
					time.Sleep(time.Until(due(made)))
					ld, lrs := a.request()
					first := made
					for now := time.Now(); made < owed && made-first < maxBatch && !due(made).After(now); made++ {
						prepared[i].At(made).MoveTo(lrs.AppendEmpty())
					}
					if err := a.send(ctx, ld); err != nil {
						errs <- err
						return
					}
					requests.Add(1)
					for n := int64(made - first); ; {
						if l := largest.Load(); n <= l || largest.CompareAndSwap(l, n) {
							break
						}
					}
				}
			})
		}
		wg.Wait()
		// The load stops when the last event is due; an agent still
		// sending then is part of the backlog.
		loadEnd := start.Add(time.Duration(seconds) * time.Second)
		sendTime := time.Since(start)
		colCPU0 := colCPU
		colCPU, genCPU = cpuSeconds(s.col.cmd.Process.Pid)-colCPU, cpuSeconds(os.Getpid())-genCPU
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		total := owed * agents
		// Done when every agent's chain head has reached its last event: a
		// sum over 50 rows. Counting the alerts instead scans them all, and
		// polled while the backlog drained it took most of a core of
		// PostgreSQL from the drain being measured.
		for {
			var stored int64
			err := pool.QueryRow(ctx, `SELECT coalesce(sum(c.seq), 0)::bigint FROM chain_heads c
				JOIN hosts h USING (host_id) WHERE h.host_name LIKE 'rate-%'`).Scan(&stored)
			if err != nil && ctx.Err() == nil {
				b.Fatal(err)
			}
			if stored >= int64(total) {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("chains at %d of %d events: %v", stored, total, ctx.Err())
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.StopTimer()
		// CPU per event over the whole run, the drain included: on a shared
		// machine the latencies depend on what else runs, this much less.
		colTotal, pgTotal := cpuSeconds(s.col.cmd.Process.Pid)-colCPU0, clusterCPUSeconds(s.db)-pgCPU
		wal := walBytes(ctx, b, pool) - wal0
		l, err := rowLatency(ctx, pool, "rate")
		if err != nil {
			b.Fatal(err)
		}
		// Backlog at the end of the load: events due by then whose rows
		// came later; drained when the last row was committed.
		var backlog int
		var lastRow time.Time
		err = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE received_at > $2), max(received_at)
			FROM alerts WHERE rule_name = $1`, "rate", loadEnd).Scan(&backlog, &lastRow)
		pool.Close()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		drain := max(lastRow.Sub(loadEnd), 0)
		b.ReportMetric(float64(total)/sendTime.Seconds(), "events/s")
		b.ReportMetric(l.p50*1000, "p50_ms")
		b.ReportMetric(l.p99*1000, "p99_ms")
		b.ReportMetric(drain.Seconds()*1000, "drain_ms")
		b.Logf("%d agents, %d events/s for %ds in requests of at most %d events: %d events as %d requests (%.1f events each, largest %d), "+
			"all sent %s after the start; %d rows; event → row p50 %.1f ms, p99 %.1f ms, max %.1f ms; "+
			"backlog when the load stopped %d events, drained %s later; collector RSS %d MiB; "+
			"while sending, CPU of the collector %.2f cores, of the load generator %.2f cores (of %d); "+
			"CPU per 1,000 events: collector %.0f ms, PostgreSQL %.0f ms; WAL %.0f bytes per event; machine load average (1 min) %s at the start, %s at the end",
			agents, rate, seconds, maxBatch, total, requests.Load(), float64(total)/float64(requests.Load()), largest.Load(),
			sendTime.Round(time.Millisecond), l.rows, l.p50*1000, l.p99*1000, l.max*1000,
			backlog, drain.Round(time.Millisecond), rssKiB(s.col.cmd.Process.Pid)/1024,
			colCPU/sendTime.Seconds(), genCPU/sendTime.Seconds(), runtime.NumCPU(),
			1e6*colTotal/float64(total), 1e6*pgTotal/float64(total), wal/float64(total), load0, loadAvg())
	}
}

// walBytes is how much WAL the cluster wrote so far.
func walBytes(ctx context.Context, b *testing.B, pool *pgxpool.Pool) float64 {
	var n float64
	if err := pool.QueryRow(ctx, `SELECT wal_bytes FROM pg_stat_wal`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// recycleWAL leaves the cluster about n bytes of WAL segments to recycle, as
// a server that has been running has: a fresh cluster creates each 16 MiB
// segment and writes it full of zeros before use (wal_init_zero), a tenth
// of PostgreSQL's CPU samples in BenchmarkIngestRate (perf) that production
// does not pay. A checkpoint after that much WAL keeps the segments it no
// longer needs for reuse (XLOGfileslop: up to twice the WAL written between
// checkpoints, within max_wal_size).
func recycleWAL(ctx context.Context, b *testing.B, pool *pgxpool.Pool, n int64) {
	start := time.Now()
	if _, err := pool.Exec(ctx, `SELECT count(pg_logical_emit_message(false, 'tripwire-bench', repeat('x', 1 << 20)))
		FROM generate_series(1, $1)`, n>>20); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
	var segments int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_ls_waldir()`).Scan(&segments); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d MiB of WAL written and checkpointed in %s: %d segments in pg_wal", n>>20, time.Since(start).Round(time.Millisecond), segments)
}

// productionPostgres are the server settings docs/operations.md recommends
// for the central database, beside PostgreSQL's durable defaults (fsync,
// full_page_writes and synchronous_commit on). Checkpoints far apart keep
// the WAL from filling with full-page images of the pages every insert
// touches again after each one.
var productionPostgres = []string{"shared_buffers=1GB", "max_wal_size=8GB", "checkpoint_timeout=15min"}

// benchConfigs is the shipped config.yaml, with the pprof extension layered
// on at BENCH_PPROF (host:port) when set, to profile the collector under load:
//
//	go tool pprof -seconds 20 http://$BENCH_PPROF/debug/pprof/profile
func benchConfigs(b *testing.B) []string {
	addr := os.Getenv("BENCH_PPROF")
	if addr == "" {
		return []string{"config.yaml"}
	}
	extra := filepath.Join(b.TempDir(), "pprof.yaml")
	yaml := fmt.Sprintf("extensions:\n  pprof:\n    endpoint: %s\nservice:\n  extensions: [health_check, file_storage, pprof]\n", addr)
	if err := os.WriteFile(extra, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	return []string{"config.yaml", extra}
}

// cpuSeconds reads the user and system CPU time a process used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// clusterCPUSeconds is the CPU time the PostgreSQL cluster serving dsn
// used so far: its postmaster, the children it reaped, and those running.
func clusterCPUSeconds(dsn string) float64 {
	u, err := url.Parse(dsn)
	if err != nil {
		return 0
	}
	port := []byte("\x00-p\x00" + u.Port() + "\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*")
	postmaster := 0
	for _, p := range procs {
		if cmd, err := os.ReadFile(p + "/cmdline"); err == nil && bytes.Contains(cmd, port) {
			postmaster, _ = strconv.Atoi(filepath.Base(p))
			break
		}
	}
	if postmaster == 0 {
		return 0
	}
	total := 0.0
	for _, p := range procs {
		f := procStat(p)
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		ppid, _ := strconv.Atoi(f[1])
		switch {
		case pid == postmaster:
			for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
				v, _ := strconv.ParseFloat(f[i], 64)
				total += v
			}
		case ppid == postmaster:
			utime, _ := strconv.ParseFloat(f[11], 64)
			stime, _ := strconv.ParseFloat(f[12], 64)
			total += utime + stime
		}
	}
	return total / 100 // USER_HZ
}

// procStat reads the fields of /proc/<pid>/stat after the command name
// (state is [0]).
func procStat(dir string) []string {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// loadAvg is the machine's one-minute load average: the steady-rate
// figures depend on how much of the machine other work takes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
