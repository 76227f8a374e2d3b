package tripwireexporter

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/migrations"
	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

const (
	benchBatch = 1000 // events per ConsumeLogs / per COPY
	benchHosts = 100  // hosts per batch, each with its own chain
)

// fleet produces batches of chained events from many hosts, each host's
// chain continuing from one batch to the next.
type fleet struct {
	agents []*agent
}

func newFleet(b *testing.B, prefix string) *fleet {
	f := &fleet{}
	for i := 0; i < benchHosts; i++ {
		f.agents = append(f.agents, newAgent(b, fmt.Sprintf("%s-%03d", prefix, i)))
	}
	return f
}

func (f *fleet) next() (plog.Logs, [][]*event.Event) {
	ld := plog.NewLogs()
	per := benchBatch / len(f.agents)
	all := make([][]*event.Event, len(f.agents))
	for i, a := range f.agents {
		all[i] = a.trips(per)
		appendResource(ld, a.host, all[i]...)
	}
	return ld, all
}

// withoutSearchIndex drops migration 0012's free-text index when
// TRIPWIRE_BENCH_SEARCH_INDEX=off, so bench/search can measure ingest with
// and without it.
func withoutSearchIndex(b *testing.B, ctx context.Context, dsn string) {
	if os.Getenv("TRIPWIRE_BENCH_SEARCH_INDEX") != "off" {
		return
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP INDEX alerts_search_idx"); err != nil {
		b.Fatal(err)
	}
}

func durability() string {
	if os.Getenv("PGTEST_DURABLE") == "1" {
		return "fsync on"
	}
	return "fsync off (PGTEST_DURABLE=1 for on)"
}

func report(b *testing.B, what string, events int, elapsed time.Duration) {
	rate := float64(events) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	if b.N == 1 {
		return // the probe run before the real one
	}
	fmt.Printf("%s: %d events in %s = %.0f events/s (batches of %d from %d hosts, PostgreSQL 15, %s)\n",
		what, events, elapsed.Round(time.Millisecond), rate, benchBatch, benchHosts, durability())
}

// BenchmarkExport measures events/s through the exporter's consume path
// (exporterhelper, decode, host upsert, chain check, alert and audit rows,
// NOTIFY) into PostgreSQL; workers are concurrent ConsumeLogs callers, like
// the sending queue's consumers, each with its own hosts.
func BenchmarkExport(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			dsn := pgtest.NewDB(b)
			ctx := context.Background()
			exp, err := NewFactory().CreateLogs(ctx, exportertest.NewNopSettings(metadata.Type), testConfig(dsn))
			if err != nil {
				b.Fatal(err)
			}
			if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
				b.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			fleets := make([]*fleet, workers)
			for w := range fleets {
				fleets[w] = newFleet(b, fmt.Sprintf("bench-w%d", w))
				// Warm up: hosts and chain heads exist, as in steady state.
				ld, _ := fleets[w].next()
				if err := exp.ConsumeLogs(ctx, ld); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := runWorkers(b, fleets, nil, func(_ *fleet, ld plog.Logs, _ *copyBatch) error {
				return exp.ConsumeLogs(ctx, ld)
			})
			report(b, fmt.Sprintf("BenchmarkExport workers=%d", workers), b.N*benchBatch, elapsed)
		})
	}
}

// BenchmarkRawCopy measures a plain pgx CopyFrom of the same rows into alerts
// and audit_entries, one transaction per batch: the ceiling for the exporter.
func BenchmarkRawCopy(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			fleets := make([]*fleet, workers)
			for w := range fleets {
				fleets[w] = newFleet(b, fmt.Sprintf("copy-w%d", w))
			}
			pool, hostIDs := copyTarget(b, ctx, fleets)
			// The rows are built before the clock runs: this is the COPY alone.
			prep := func(f *fleet, evs [][]*event.Event) *copyBatch { return copyRows(f, evs, hostIDs) }
			elapsed := runWorkers(b, fleets, prep, func(_ *fleet, _ plog.Logs, rows *copyBatch) error {
				return pgx.BeginFunc(ctx, pool, rows.copy)
			})
			report(b, fmt.Sprintf("BenchmarkRawCopy workers=%d", workers), b.N*benchBatch, elapsed)
		})
	}
}

// alertCols and auditCols are the columns of a copyBatch.
var (
	alertCols = []string{"alert_id", "event_time", "host_id", "host_name", "event_name", "tripwire_type",
		"rule_name", "severity", "seq", "summary", "search_words"}
	auditCols = []string{"host_id", "seq", "alert_id", "event_time", "prev_hash", "hash", "payload"}
)

// copyBatch is a fleet's batch as the exporter stores it, for a raw COPY
// baseline: an alert row and an audit entry per (chained) event, the
// payload once, in the audit entry (migration 0018).
type copyBatch struct {
	alerts, audit [][]any
}

func (c *copyBatch) copy(tx pgx.Tx) error {
	ctx := context.Background()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"alerts"}, alertCols, pgx.CopyFromRows(c.alerts)); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"}, auditCols, pgx.CopyFromRows(c.audit))
	return err
}

// copyRows are the rows of a fleet's batch, for a raw COPY baseline.
func copyRows(f *fleet, evs [][]*event.Event, hostIDs map[string]pgtype.UUID) *copyBatch {
	c := &copyBatch{alerts: make([][]any, 0, benchBatch), audit: make([][]any, 0, benchBatch)}
	for i, hostEvents := range evs {
		host := f.agents[i].host
		for _, ev := range hostEvents {
			var cmd, user string
			if ev.Process != nil {
				cmd, user = ev.Process.CommandLine, ev.Process.UserName
			}
			c.alerts = append(c.alerts, []any{dbUUID(ev.AlertID), ev.Time, hostIDs[host], host, string(ev.Name),
				string(ev.Type()), ev.Rule, ev.Severity.String(), int64(ev.Seq), ev.Summary(),
				event.SearchWords(ev.Summary(), ev.Rule, host, cmd, user)})
			c.audit = append(c.audit, []any{hostIDs[host], int64(ev.Seq), dbUUID(ev.AlertID), ev.Time, ev.PrevHash, ev.Hash,
				string(ev.Canonical())})
		}
	}
	return c
}

// copyTarget is a fresh migrated database for a raw COPY baseline, with the
// fleets' hosts registered; it returns their ids by name (as the exporter
// passes uuids: a string costs pgx a failed encoding and a parse).
func copyTarget(b *testing.B, ctx context.Context, fleets []*fleet) (*pgxpool.Pool, map[string]pgtype.UUID) {
	pool, err := pgxpool.New(ctx, pgtest.NewDB(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := migrations.Apply(ctx, pool); err != nil {
		b.Fatal(err)
	}
	withoutSearchIndex(b, ctx, pool.Config().ConnString())
	if _, err := migrations.EnsurePartitions(ctx, pool, baseTime, 1); err != nil {
		b.Fatal(err)
	}
	hostIDs := map[string]pgtype.UUID{}
	for _, f := range fleets {
		for _, a := range f.agents {
			var id pgtype.UUID
			if err := pool.QueryRow(ctx, "INSERT INTO hosts (host_name) VALUES ($1) RETURNING host_id", a.host).Scan(&id); err != nil {
				b.Fatal(err)
			}
			hostIDs[a.host] = id
		}
	}
	return pool, hostIDs
}

// runWorkers gives b.N batches to the workers, generating each batch (the
// agents' side, not measured) and its COPY rows, if prep is set, before the
// clock runs.
func runWorkers(b *testing.B, fleets []*fleet, prep func(*fleet, [][]*event.Event) *copyBatch,
	send func(*fleet, plog.Logs, *copyBatch) error) time.Duration {
	type job struct {
		f    *fleet
		ld   plog.Logs
		rows *copyBatch
	}
	jobs := make([][]job, len(fleets))
	for i := 0; i < b.N; i++ {
		w := i % len(fleets)
		ld, evs := fleets[w].next()
		j := job{f: fleets[w], ld: ld}
		if prep != nil {
			j.rows = prep(fleets[w], evs)
		}
		jobs[w] = append(jobs[w], j)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(fleets))
	for w := range fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, j := range jobs[w] {
				if err := send(j.f, j.ld, j.rows); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return elapsed
}

// BenchmarkExportVsRawCopy alternates rounds of exporter batches and raw
// COPY batches (each round `workers` batches in parallel) and sums each
// kind's wall time, so load from other work on the machine falls on both
// alike; it prints the exporter's rate as a share of raw COPY's.
func BenchmarkExportVsRawCopy(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			dsn := pgtest.NewDB(b)
			exp, err := NewFactory().CreateLogs(ctx, exportertest.NewNopSettings(metadata.Type), testConfig(dsn))
			if err != nil {
				b.Fatal(err)
			}
			if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
				b.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			withoutSearchIndex(b, ctx, dsn)
			expFleets, copyFleets := make([]*fleet, workers), make([]*fleet, workers)
			for w := 0; w < workers; w++ {
				expFleets[w] = newFleet(b, fmt.Sprintf("vs-exp-w%d", w))
				ld, _ := expFleets[w].next()
				if err := exp.ConsumeLogs(ctx, ld); err != nil {
					b.Fatal(err)
				}
				copyFleets[w] = newFleet(b, fmt.Sprintf("vs-copy-w%d", w))
			}
			pool, hostIDs := copyTarget(b, ctx, copyFleets)
			round := func(n int, do func(w int) error) time.Duration {
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for w := 0; w < n; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := do(w); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var tExp, tCopy time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				lds := make([]plog.Logs, workers)
				rows := make([]*copyBatch, workers)
				for w := 0; w < workers; w++ {
					lds[w], _ = expFleets[w].next()
					_, evs := copyFleets[w].next()
					rows[w] = copyRows(copyFleets[w], evs, hostIDs)
				}
				b.StartTimer()
				tExp += round(workers, func(w int) error { return exp.ConsumeLogs(ctx, lds[w]) })
				tCopy += round(workers, func(w int) error {
					return pgx.BeginFunc(ctx, pool, rows[w].copy)
				})
			}
			b.StopTimer()
			events := float64(b.N * workers * benchBatch)
			expRate, copyRate := events/tExp.Seconds(), events/tCopy.Seconds()
			b.ReportMetric(expRate, "export-events/s")
			b.ReportMetric(copyRate, "copy-events/s")
			b.ReportMetric(100*expRate/copyRate, "%-of-copy")
			alertBytes, auditBytes, stored := storedBytes(b, ctx, dsn)
			b.ReportMetric(float64(alertBytes+auditBytes)/float64(stored), "bytes/event")
			b.Logf("exporter's database: %d events, alerts %d B/event, audit_entries %d B/event, %d B/event in all (pg_total_relation_size)",
				stored, alertBytes/stored, auditBytes/stored, (alertBytes+auditBytes)/stored)
			if b.N > 1 {
				fmt.Printf("BenchmarkExportVsRawCopy workers=%d: exporter %.0f events/s, raw COPY %.0f events/s, exporter = %.0f%% of COPY (%d events each, interleaved rounds, %s)\n",
					workers, expRate, copyRate, 100*expRate/copyRate, int(events), durability())
			}
		})
	}
}

// storedBytes is what the alerts (every partition, with indexes and TOAST)
// and audit_entries of the database at dsn take, and how many alerts it
// holds, after a VACUUM (so free space left by nothing but the writes
// counts).
func storedBytes(b *testing.B, ctx context.Context, dsn string) (alerts, audit, events int64) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM alerts, audit_entries"); err != nil {
		b.Fatal(err)
	}
	err = conn.QueryRow(ctx, `SELECT
		(SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'alerts'::regclass),
		pg_total_relation_size('audit_entries'), (SELECT count(*) FROM alerts)`).Scan(&alerts, &audit, &events)
	if err != nil {
		b.Fatal(err)
	}
	return alerts, audit, events
}
