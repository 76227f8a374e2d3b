package plugin

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/contract/schema"
)

// benchAlerts is how many alerts BenchmarkAlertsAPI seeds:
// $TRIPWIRE_BENCH_ALERTS, default 5,000,000 (the figure).
func benchAlerts() int {
	if n, err := strconv.Atoi(os.Getenv("TRIPWIRE_BENCH_ALERTS")); err == nil && n > 0 {
		return n
	}
	return 5_000_000
}

var (
	benchOnce    sync.Once
	benchEnv     *env
	benchCluster *pgtest.Cluster
)

// benchPostgres are the settings of seedBench's cluster: the shared_buffers
// docs/operations.md recommends. With the tests' 64 MB, a search under
// ingest read most of its pages from the OS and wrote out pages the writers
// had dirtied to make room (p95 74 ms, against 48-55 ms with 1 GB). fsync
// stays off, as in every test cluster: this measures the search, and the
// writers only have to keep up.
var benchPostgres = []string{"shared_buffers=1GB"}

// seedBench fills one database with n alerts over the last 90 days, across
// 200 hosts, 5 types, 3 severities and 50 rules, in server-side batches.
// Host, type and rule vary independently (g%200, g/200%5, g/1000%50): a
// correlated fixture would leave some filter combinations empty and turn
// them into full scans no real data would see. Each row carries a file
// trip's summary, command line and user, and the search words the exporter
// would store for them (benchWordsSQL).
//
// $TRIPWIRE_BENCH_DSN names a database with the schema to use instead of a
// new one; it is seeded only if it holds fewer than n alerts, so one seeding
// serves many runs (the live alerts BenchmarkSearchUnderIngest adds stay).
func seedBench(b *testing.B) *env {
	benchOnce.Do(func() {
		n := benchAlerts()
		var e *env
		if dsn := os.Getenv("TRIPWIRE_BENCH_DSN"); dsn != "" {
			e = newEnvAt(&keepTB{B: b}, dsn)
			var have int
			if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE rule_name <> 'rule-live'`).Scan(&have); err != nil {
				b.Fatal(err)
			}
			if have >= n {
				b.Logf("using the %d alerts at $TRIPWIRE_BENCH_DSN", have)
				benchEnv = e
				return
			}
		} else {
			c, err := pgtest.StartWith(pgtest.Options{Settings: benchPostgres})
			if err != nil {
				b.Fatal(err)
			}
			benchCluster = c
			e = newEnvAt(&keepTB{B: b}, c.NewSchemaDB(&keepTB{B: b}))
		}
		start := time.Now()
		// Every seeded day in its partition, as the exporter keeps them.
		for d := time.Now().AddDate(0, 0, -91); !d.After(time.Now().AddDate(0, 0, 2)); d = d.AddDate(0, 0, 1) {
			name, steps := schema.Partition(d)
			if err := pgx.BeginFunc(context.Background(), e.conn, func(tx pgx.Tx) error {
				var exists bool
				if err := tx.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil || exists {
					return err
				}
				for _, sql := range steps {
					if _, err := tx.Exec(context.Background(), sql); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatalf("creating partition %s: %v", name, err)
			}
		}
		e.exec(b, `INSERT INTO hosts (host_name, status, last_seen)
SELECT 'host-' || lpad(g::text, 3, '0'), $1, now() FROM generate_series(1, 200) g`, contract.StatusOnline)
		const batch = 500_000
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			// Stored as the exporter stores a chained event (migration 0018):
			// the payload in the audit entry, none in the alert row.
			e.exec(b, `WITH h AS (SELECT array_agg(host_id ORDER BY host_name) ids, array_agg(host_name ORDER BY host_name) names FROM hosts),
r AS (
SELECT md5(g::text)::uuid AS alert_id, t, h.ids[1 + g % 200] AS host_id, h.names[1 + g % 200] AS host_name, g,
       'tripwire.' || (ARRAY['file','process','network','agent','audit'])[1 + (g / 200) % 5] || '.x' AS ev,
       (ARRAY['file','process','network','agent','audit'])[1 + (g / 200) % 5] AS typ,
       'rule-' || ((g / 1000) % 50) AS rule, (ARRAY['INFO','WARN','CRITICAL'])[1 + (g / 7) % 3] AS sev,
       'tripwire.file.access /srv/data/file-' || (g % 1000) || ' by pid ' || (g % 65536) || ' (' || x.exe || ')' AS summary,
       jsonb_build_object('file.path', '/srv/data/file-' || (g % 1000), 'process.pid', g % 65536, 'process.executable.path', x.exe,
         'process.command_line', 'cat /srv/data/file-' || (g % 1000) || ' --flag', 'process.user.name', 'u' || (g % 30))::text AS payload,
       `+withPairsSQL(benchWordsSQL)+` AS words
FROM h, generate_series($1::bigint, $2::bigint) g,
     LATERAL (SELECT now() - (g::float8 / $3) * interval '90 days' AS t,
                     (ARRAY['/usr/bin/cat','/usr/bin/vim','/usr/bin/python3','/bin/bash','/usr/sbin/sshd'])[1 + g % 5] AS exe) x),
a AS (
INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type, rule_name, severity, seq, summary, search_words)
SELECT alert_id, t, t, host_id, host_name, ev, typ, rule, sev, g, summary, words FROM r)
INSERT INTO audit_entries (host_id, seq, alert_id, event_time, prev_hash, hash, payload)
SELECT host_id, g, alert_id, t, repeat('0', 64), repeat('1', 64), payload FROM r`,
				lo+1, hi, float64(n))
			b.Logf("seeded %d/%d alerts (%s)", hi, n, time.Since(start).Round(time.Second))
		}
		e.exec(b, `VACUUM ANALYZE alerts`)
		b.Logf("seeded %d alerts in %s", n, time.Since(start).Round(time.Second))
		benchEnv = e
	})
	if benchEnv == nil {
		b.Fatal("seeding failed")
	}
	return benchEnv
}

// benchWordsSQL is contract.SearchWords of a seeded row's search text, built
// from its parts (g, x.exe and the host name) in the text's order, then its
// neighbouring pairs (withPairsSQL): splitting the text in SQL would make
// seeding several times slower. Order and repeats differ from the
// exporter's; the index holds the same terms.
const benchWordsSQL = `(ARRAY['tripwire', 'file', 'access', 'srv', 'data', 'file', (g % 1000)::text, 'by', 'pid', (g % 65536)::text]
         || string_to_array(ltrim(x.exe, '/'), '/')
         || ARRAY['rule', ((g / 1000) % 50)::text, 'host', lpad((1 + g % 200)::text, 3, '0'),
                  'cat', 'srv', 'data', 'file', (g % 1000)::text, 'flag', 'u' || (g % 30)])`

// withPairsSQL appends to the words array w the pairs of its neighbours.
func withPairsSQL(w string) string {
	return `(SELECT w || ARRAY(SELECT w[i] || ' ' || w[i + 1] FROM generate_series(1, cardinality(w) - 1) i) FROM (SELECT ` + w + ` AS w) ws)`
}

// insertLive stores n chained file trips of one host from seq g on, as the
// exporter stores them (migration 0018: the payload in the audit entry).
func insertLive(ctx context.Context, conn *pgx.Conn, host pgtype.UUID, hostName string, g int64, n int) error {
	now := time.Now()
	alerts := make([][]any, 0, n)
	audit := make([][]any, 0, n)
	for seq := g; seq < g+int64(n); seq++ {
		id := uuid.Must(uuid.NewV7())
		path := fmt.Sprintf("/srv/live/file-%d", seq%1000)
		user, cmd := fmt.Sprintf("u%d", seq%30), "cat "+path
		summary := fmt.Sprintf("trip %d on %s", seq, path)
		payload := fmt.Sprintf(`{"file.path":%q,"process.pid":%d,"process.user.name":%q,"process.command_line":%q}`, path, seq%65536, user, cmd)
		alerts = append(alerts, []any{id, now, now, host, hostName, "tripwire.file.access", "file", "rule-live", "WARN", seq, summary,
			contract.SearchWords(contract.SearchText(summary, "rule-live", hostName, cmd, user))})
		audit = append(audit, []any{host, seq, id, now, strings.Repeat("0", 64), strings.Repeat("1", 64), payload})
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"alerts"}, []string{"alert_id", "event_time", "received_at", "host_id", "host_name",
			"event_name", "tripwire_type", "rule_name", "severity", "seq", "summary", "search_words"}, pgx.CopyFromRows(alerts)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"}, []string{"host_id", "seq", "alert_id", "event_time", "prev_hash", "hash", "payload"},
			pgx.CopyFromRows(audit))
		return err
	})
}

// keepTB drops Cleanup so the seeded database outlives the first
// benchmark that asked for it.
type keepTB struct {
	*testing.B
}

func (k *keepTB) Cleanup(func()) {}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkAlertsAPI measures GET /api/v1/alerts through CallResource over
// the seeded table, per filter. It reports p50/p95 in ms (target p95 ≤ 50 ms).
func BenchmarkAlertsAPI(b *testing.B) {
	e := seedBench(b)
	day := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
	cases := []struct{ name, query string }{
		{"newest", ""},
		{"host", "host=host-017"},
		{"severity", "severity=CRITICAL"},
		{"type+rule", "type=process&rule=rule-6"},
		{"host+severity+24h", "host=host-042&severity=WARN&from=" + day},
		{"two-hosts+type", "host=host-001,host-002&type=file"},
		{"rule+24h", "rule=rule-7&from=" + day},
	}
	// Free text by how many rows hold q and how far back the range goes.
	for _, r := range []struct {
		name string
		back time.Duration
	}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}} {
		from := strconv.FormatInt(time.Now().Add(-r.back).UnixMilli(), 10)
		for _, q := range []struct{ name, q string }{
			{"rare", "file-123"},      // 1 row in 1,000
			{"rare-pid", "pid 4242"},  // 1 in 65,536
			{"common", "vim"},         // 1 in 5
			{"everywhere", "access"},  // every row
			{"phrase", "rule-6 host"}, // 1 in 50, in runs of 1,000
			{"none", "no-such-thing"}, // no row
		} {
			cases = append(cases, struct{ name, query string }{"text-" + q.name + "-" + r.name, "q=" + url.QueryEscape(q.q) + "&from=" + from})
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			path := "/api/v1/alerts?limit=100"
			if c.query != "" {
				path += "&" + c.query
			}
			// Warm the cache and take the cursor for a deep page.
			status, body := e.call(b, "GET", path, "Viewer")
			if status != 200 {
				b.Fatalf("%s: %d %s", path, status, body)
			}
			// How many rows the page holds: a fast search that finds
			// nothing would say little.
			found := len(decode[AlertPage](b, body).Alerts)
			var lat []time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				status, _ := e.call(b, "GET", path, "Viewer")
				lat = append(lat, time.Since(t0))
				if status != 200 {
					b.Fatalf("status %d", status)
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
			b.ReportMetric(float64(found), "rows") // after ResetTimer, which clears metrics
		})
	}
	b.Run("page-10-by-cursor", func(b *testing.B) {
		// Walk 10 pages of a filter; report per-page latency.
		var lat []time.Duration
		for b.Loop() {
			path := "/api/v1/alerts?limit=100&severity=CRITICAL"
			for range 10 {
				t0 := time.Now()
				status, body := e.call(b, "GET", path, "Viewer")
				lat = append(lat, time.Since(t0))
				if status != 200 {
					b.Fatalf("status %d", status)
				}
				page := decode[AlertPage](b, body)
				path = "/api/v1/alerts?limit=100&severity=CRITICAL&cursor=" + page.Next
			}
		}
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
	})
}

// BenchmarkStreamLatency measures the time from the start of an INSERT +
// NOTIFY transaction to the frame leaving RunStream, and reports p50/p99 in
// ms (target p99 ≤ 100 ms).
func BenchmarkStreamLatency(b *testing.B) {
	e := newEnv(b)
	e.seed(b)
	sink := make(packetSink, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.ds.RunStream(ctx, &backend.RunStreamRequest{Path: "alerts"}, backend.NewStreamSender(sink))
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.ds.feed.mu.Lock()
		n := len(e.ds.feed.subs)
		e.ds.feed.mu.Unlock()
		ready := false
		select {
		case <-e.ds.feed.Ready():
			ready = true
		default:
		}
		if n == 1 && ready {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("feed not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		a := seedAlert{id: fmt.Sprintf("0190e000-0000-7000-8000-%012d", i), host: "web-01", typ: "file",
			event: "tripwire.file.access", rule: "shadow-read", severity: "CRITICAL", summary: "bench", seq: int64(1000 + i)}
		t0 := time.Now()
		e.notifyAlert(b, a)
		select {
		case <-sink:
			lat = append(lat, time.Since(t0))
		case <-time.After(30 * time.Second):
			b.Fatal("no frame within 30 s")
		}
	}
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
}

// BenchmarkSearchUnderIngest measures free-text search (24 h range) over the
// seeded alerts while alerts are inserted at 15,000 rows/s (the ingest goal;
// $TRIPWIRE_BENCH_INGEST sets another), each with its audit entry, and
// reports both: search p50/p95 and the insert rate reached. Two writers, as
// two collectors, store the rows as the exporter does: built in Go (the
// search words by contract.SearchWords), COPYed into alerts and
// audit_entries, one transaction per batch of ingestBatch rows (what the
// receiver's group commit makes of 50 agents' requests at that rate).
// This measures what the search index costs the table writes and what the
// writes cost the search; the collector's own work is BenchmarkIngestRate's.
func BenchmarkSearchUnderIngest(b *testing.B) {
	e := seedBench(b)
	goal := 15_000 // $TRIPWIRE_BENCH_INGEST rows/s
	if n, err := strconv.Atoi(os.Getenv("TRIPWIRE_BENCH_INGEST")); err == nil && n > 0 {
		goal = n
	}
	const ingestBatch = 200
	ctx, cancel := context.WithCancel(context.Background())
	var inserted atomic.Int64
	var insertErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 2 {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, e.dsn)
			if err != nil {
				insertErr = err
				return
			}
			defer conn.Close(context.Background())
			var host pgtype.UUID
			var hostName string
			if err := conn.QueryRow(ctx, `SELECT host_id, host_name FROM hosts ORDER BY host_name LIMIT 1 OFFSET $1`, w).Scan(&host, &hostName); err != nil {
				insertErr = err
				return
			}
			// Above the seeded seqs, and after an earlier run's on a
			// reused database.
			first := int64(w+1) << 40
			if err := conn.QueryRow(ctx, `SELECT greatest(coalesce(max(seq), 0) + 1, $2) FROM audit_entries WHERE host_id = $1`,
				host, first).Scan(&first); err != nil {
				insertErr = err
				return
			}
			// Each writer owes half the goal since the start: it catches
			// up after a slow batch instead of skipping a beat.
			perWriter := float64(goal) / 2
			for g, done := first, 0; ; g, done = g+ingestBatch, done+ingestBatch {
				due := start.Add(time.Duration(float64(done+ingestBatch) / perWriter * float64(time.Second)))
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(due)):
				}
				if err := insertLive(ctx, conn, host, hostName, g, ingestBatch); err != nil {
					if ctx.Err() == nil {
						insertErr = err
					}
					return
				}
				inserted.Add(ingestBatch)
			}
		})
	}
	day := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
	words := []string{"file-123", "rule-6", "srv/live/file-42", "pid 4242", "/data/file-77"}
	var lat []time.Duration
	byWord := make([][]time.Duration, len(words))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		path := "/api/v1/alerts?limit=100&from=" + day + "&q=" + url.QueryEscape(words[i%len(words)])
		t0 := time.Now()
		status, body := e.call(b, "GET", path, "Viewer")
		lat = append(lat, time.Since(t0))
		byWord[i%len(words)] = append(byWord[i%len(words)], lat[len(lat)-1])
		if status != 200 {
			b.Fatalf("%s: %d %s", path, status, body)
		}
		time.Sleep(20 * time.Millisecond) // an analyst's pace, not a flood
	}
	b.StopTimer()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	if insertErr != nil {
		b.Fatal(insertErr)
	}
	rate := float64(inserted.Load()) / elapsed.Seconds()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
	b.ReportMetric(rate, "inserted-rows/s")
	b.Logf("free-text search over %d alerts (24 h range) while inserting: p50 %.1f ms, p95 %.1f ms over %d searches; inserts reached %.0f rows/s of the %d goal",
		benchAlerts(), float64(percentile(lat, 0.50).Microseconds())/1000, float64(percentile(lat, 0.95).Microseconds())/1000, len(lat), rate, goal)
	for i, w := range words {
		if len(byWord[i]) > 0 {
			b.Logf("q=%q: p50 %.1f ms, p95 %.1f ms", w, float64(percentile(byWord[i], 0.50).Microseconds())/1000,
				float64(percentile(byWord[i], 0.95).Microseconds())/1000)
		}
	}
}
