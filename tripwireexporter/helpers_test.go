package tripwireexporter

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// runWithPostgres runs the tests (from the generated TestMain) and then
// stops the shared PostgreSQL cluster.
func runWithPostgres(m *testing.M) { pgtest.Main(m) }

// testConfig is a configuration without queue or retry, so a push returns
// the exporter's own verdict.
func testConfig(dsn string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.DSN = configopaque.String(dsn)
	cfg.ChainGapGrace = 0
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	return cfg
}

// startExporter starts the exporter's core on the database and stops it
// when the test ends.
func startExporter(t testing.TB, cfg *Config) *tripwireExporter {
	t.Helper()
	e, err := newTripwireExporter(cfg, componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.shutdown(context.Background()) })
	if err := e.ensureReady(context.Background()); err != nil {
		t.Fatalf("preparing schema: %v", err)
	}
	return e
}

func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// agent is a host's agent side: it builds events and appends them to a real
// audit chain (internal/auditchain), which sets seq, prev_hash and hash.
type agent struct {
	t     testing.TB
	host  string
	chain *auditchain.Writer
	n     atomic.Int64
}

func newAgent(t testing.TB, host string) *agent {
	t.Helper()
	w, err := auditchain.Open(filepath.Join(t.TempDir(), "audit.log"), auditchain.Options{Sync: auditchain.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &agent{t: t, host: host, chain: w}
}

var baseTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// trip is an unchained file access trip.
func (a *agent) trip() *event.Event {
	i := a.n.Add(1)
	at := baseTime.Add(time.Duration(i) * time.Millisecond)
	return &event.Event{
		Name: event.FileAccess, AlertID: event.NewAlertID(), Severity: event.SeverityCritical,
		Rule: "shadow", Time: at, ObservedTime: at.Add(time.Microsecond), Mechanism: "fanotify",
		Process: &event.Process{PID: 4000 + i, PPID: 1, ExecutablePath: "/usr/bin/cat",
			CommandLine: fmt.Sprintf("cat /etc/shadow #%d", i), UserName: "mallory", UserID: "1001"},
		File: &event.File{Path: "/etc/shadow"},
	}
}

// chained appends events to the chain and returns them.
func (a *agent) chained(events ...*event.Event) []*event.Event {
	a.t.Helper()
	if err := a.chain.Append(events); err != nil {
		a.t.Fatal(err)
	}
	return events
}

// trips appends n trips to the chain.
func (a *agent) trips(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = a.trip()
	}
	return a.chained(evs...)
}

// loss appends a spool_shed loss event for [first, last].
func (a *agent) loss(first, last int64) *event.Event {
	return a.lossCounted(first, last, last-first+1)
}

// lossCounted appends a spool_shed loss event for [first, last] that says
// count events were shed.
func (a *agent) lossCounted(first, last, count int64) *event.Event {
	at := baseTime.Add(time.Duration(a.n.Add(1)) * time.Millisecond)
	ev := &event.Event{
		Name: event.AgentLoss, AlertID: event.NewAlertID(), Severity: event.SeverityWarn,
		Time: at, ObservedTime: at,
		Agent: &event.Agent{LossCount: count, LossReason: event.LossSpoolShed, LossFirstSeq: first, LossLastSeq: last},
	}
	return a.chained(ev)[0]
}

func (a *agent) heartbeat(status, watchers string) *event.Event {
	at := baseTime.Add(time.Duration(a.n.Add(1)) * time.Millisecond)
	return &event.Event{
		Name: event.AgentHeartbeat, AlertID: event.NewAlertID(), Severity: event.SeverityInfo,
		Time: at, ObservedTime: at, Agent: &event.Agent{Status: status, Watchers: watchers},
	}
}

// heartbeatAt is a heartbeat announcing the chain head at entry: the
// agent's head when that entry was the last it had written.
func (a *agent) heartbeatAt(entry *event.Event) *event.Event {
	hb := a.heartbeat(event.StatusOnline, "file=fanotify")
	hb.Seq, hb.Hash = entry.Seq, entry.Hash
	return hb
}

// logs wraps events in one ResourceLogs of the host, with the resource the
// agent and the receiver set.
func (a *agent) logs(events ...*event.Event) plog.Logs {
	ld := plog.NewLogs()
	appendResource(ld, a.host, events...)
	return ld
}

func appendResource(ld plog.Logs, host string, events ...*event.Event) {
	rl := ld.ResourceLogs().AppendEmpty()
	attrs := rl.Resource().Attributes()
	attrs.PutStr(event.ResourceHostName, host)
	attrs.PutStr(event.ResourceHostID, "id-"+host)
	attrs.PutStr(event.ResourceOSType, "linux")
	attrs.PutStr(event.ResourceHostArch, "amd64")
	attrs.PutStr(event.ResourceServiceName, event.ServiceName)
	attrs.PutStr(event.ResourceServiceVersion, "0.1.0-test")
	attrs.PutStr(event.ResourceClientCertNotAfter, "2027-11-26T12:00:00Z")
	attrs.PutStr(event.ResourceClientCertSerial, "1a2b")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, ev := range events {
		lr := lrs.AppendEmpty()
		ev.CopyTo(lr)
		lr.Attributes().PutStr(event.KeyClientAddress, "127.0.0.1")
	}
}

func push(t testing.TB, e *tripwireExporter, ld plog.Logs) {
	t.Helper()
	if err := e.pushLogs(context.Background(), ld); err != nil {
		t.Fatalf("pushLogs: %v", err)
	}
}

func queryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// breakAlerts counts the CRITICAL chain_break alerts of a host.
func breakAlerts(t testing.TB, pool *pgxpool.Pool, host string) int64 {
	t.Helper()
	return queryInt(t, pool, `SELECT count(*) FROM alerts
		WHERE host_name = $1 AND event_name = 'tripwire.audit.chain_break' AND severity = 'CRITICAL'`, host)
}

func head(t testing.TB, pool *pgxpool.Pool, host string) (int64, string) {
	t.Helper()
	var seq int64
	var hash string
	err := pool.QueryRow(context.Background(), `SELECT c.seq, c.hash FROM chain_heads c
		JOIN hosts h USING (host_id) WHERE h.host_name = $1`, host).Scan(&seq, &hash)
	if err != nil {
		t.Fatalf("reading head of %s: %v", host, err)
	}
	return seq, hash
}

func breakKinds(t testing.TB, pool *pgxpool.Pool, host string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT b.kind || ':' || coalesce(b.expected_seq, 0) || ':' || coalesce(b.got_seq, 0)
		FROM chain_breaks b JOIN hosts h USING (host_id) WHERE h.host_name = $1 ORDER BY b.break_id`, host)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var kinds []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	return kinds
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// detailSQL is an alerts row's event as jsonb, wherever it is stored
// (migration 0018).
const detailSQL = "alert_detail(host_id, seq, alert_id, event_detail)"
