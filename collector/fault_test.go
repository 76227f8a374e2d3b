package collector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// The fault tests of the delivery issue: a known number of trips, a fault in
// the middle of the stream, and at the end every trip in PostgreSQL exactly
// once. They need root (fanotify) and take a minute or more each: the
// outage lasts TRIPWIRE_FAULT_OUTAGE (default 60s, as the issue asks).

func outage(t *testing.T) time.Duration {
	if v := os.Getenv("TRIPWIRE_FAULT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRIPWIRE_FAULT_OUTAGE: %v", err)
		}
		return d
	}
	return 60 * time.Second
}

// tripFiles is a directory of files watched by one recursive rule; reading
// file i is trip i (different paths, so nothing is coalesced).
type tripFiles struct {
	dir  string
	n    int
	rule string
}

func newTripFiles(t testing.TB, n int) *tripFiles {
	t.Helper()
	tf := &tripFiles{dir: filepath.Join(t.TempDir(), "trips"), n: n, rule: "fault"}
	if err := os.Mkdir(tf.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(tf.path(i), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tf
}

func (tf *tripFiles) path(i int) string { return filepath.Join(tf.dir, fmt.Sprintf("f%05d", i)) }

func (tf *tripFiles) rules() string {
	return fmt.Sprintf(`
  - name: %s
    type: file
    severity: WARN
    paths: [%s]
    recursive: true
`, tf.rule, tf.dir)
}

// read trips files [from, to) at about perSecond reads a second.
func (tf *tripFiles) read(t testing.TB, from, to, perSecond int) {
	t.Helper()
	tick := time.Second / time.Duration(perSecond)
	next := time.Now()
	for i := from; i < to; i++ {
		if _, err := os.ReadFile(tf.path(i)); err != nil {
			t.Fatal(err)
		}
		next = next.Add(tick)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
}

// tally is what PostgreSQL holds for the trips.
type tally struct {
	rows, alertIDs, paths int
}

func (s *stack) tally(t *testing.T, rule string) tally {
	t.Helper()
	db := dbConn(t, s.db)
	var c tally
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := db.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT alert_id), count(DISTINCT alert_detail(host_id, seq, alert_id, event_detail)->>'file.path')
		FROM alerts WHERE rule_name = $1`, rule).Scan(&c.rows, &c.alertIDs, &c.paths)
	if err != nil {
		t.Logf("counting alerts: %v", err) // e.g. tables not migrated yet
	}
	db.Close(ctx)
	return c
}

// waitAll polls until every trip file has a row, then checks there is
// exactly one row per trip.
func (s *stack) waitAll(t *testing.T, tf *tripFiles, timeout time.Duration, logs ...*syncBuffer) {
	t.Helper()
	s.waitPaths(t, tf, timeout, logs...)
	c := s.tally(t, tf.rule)
	t.Logf("trips %d, alert rows %d, distinct alert ids %d, distinct paths %d", tf.n, c.rows, c.alertIDs, c.paths)
	if c.paths != tf.n || c.rows != tf.n || c.alertIDs != tf.n {
		t.Errorf("want exactly one row per trip: %d trips, %d rows, %d alert ids, %d paths\n%s",
			tf.n, c.rows, c.alertIDs, c.paths, s.extraRows(t, tf.rule))
	}
}

// waitPaths polls until every trip file has at least one row, then waits a
// moment more for a late duplicate to show up.
func (s *stack) waitPaths(t *testing.T, tf *tripFiles, timeout time.Duration, logs ...*syncBuffer) {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(timeout)
	for {
		c := s.tally(t, tf.rule)
		if c.paths >= tf.n {
			t.Logf("every trip in PostgreSQL %s after the last read", time.Since(begin).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("after %s: %d of %d trips in PostgreSQL (%d rows)", timeout, c.paths, tf.n, c.rows)
			for _, l := range logs {
				msg += "\n--- log:\n" + tail(l.String(), 6000)
			}
			t.Fatal(msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
}

// extraRows describes the rows of paths that have more than one.
func (s *stack) extraRows(t *testing.T, rule string) string {
	db := dbConn(t, s.db)
	rows, err := db.Query(context.Background(), `
		SELECT alert_detail(host_id, seq, alert_id, event_detail)->>'file.path', event_name, seq, alert_detail(host_id, seq, alert_id, event_detail)->>'process.pid',
		       coalesce(alert_detail(host_id, seq, alert_id, event_detail)->>'process.executable.path', ''), event_time, received_at
		FROM alerts a WHERE rule_name = $1 AND (SELECT count(*) FROM alerts b
			WHERE b.rule_name = $1 AND alert_detail(b.host_id, b.seq, b.alert_id, b.event_detail)->>'file.path' = alert_detail(a.host_id, a.seq, a.alert_id, a.event_detail)->>'file.path') > 1
		ORDER BY 1, event_time LIMIT 40`, rule)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var path, name, pid, exe string
		var seq int64
		var et, rt time.Time
		if err := rows.Scan(&path, &name, &seq, &pid, &exe, &et, &rt); err != nil {
			return err.Error()
		}
		out += fmt.Sprintf("  %s %s seq=%d pid=%s exe=%s event_time=%s received_at=%s\n", path, name, seq, pid, exe,
			et.Format(time.RFC3339Nano), rt.Format(time.RFC3339Nano))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's fanotify watcher needs root")
	}
}

// TestFaultCollectorDown kills the collector (SIGKILL, the harsh form of
// "stopped") in the middle of the stream, keeps tripping while it is down,
// and starts it again on the same persistent queue.
func TestFaultCollectorDown(t *testing.T) {
	requireRoot(t)
	s := newStack(t)
	tf := newTripFiles(t, 1500)
	agent := s.startAgent(t, "fault-col", tf.rules(), t.TempDir())

	tf.read(t, 0, 500, 200)
	_ = s.col.cmd.Process.Signal(syscall.SIGKILL)
	<-s.col.done
	down := time.Now()
	tf.read(t, 500, 1000, 200)
	time.Sleep(time.Until(down.Add(outage(t))))
	s.col = startCollectorOn(t, s.configs, s.health, s.env...)
	tf.read(t, 1000, 1500, 200)
	s.waitAll(t, tf, 3*time.Minute, agent.log, s.col.log)
}

// TestFaultDatabaseDown stops PostgreSQL for the outage mid-stream; the
// exporter's persistent queue and retries carry the events over.
func TestFaultDatabaseDown(t *testing.T) {
	requireRoot(t)
	cluster := pgtest.NewCluster(t)
	db := cluster.NewDB(t)
	s := newStackOn(t, db)
	tf := newTripFiles(t, 1500)
	agent := s.startAgent(t, "fault-db", tf.rules(), t.TempDir())

	tf.read(t, 0, 500, 200)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	tf.read(t, 500, 1000, 200)
	time.Sleep(time.Until(down.Add(outage(t))))
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	tf.read(t, 1000, 1500, 200)
	s.waitAll(t, tf, 3*time.Minute, agent.log, s.col.log)
}

// TestFaultAgentKilled SIGKILLs the agent in the middle of a burst and
// restarts it. Trips the kernel had queued for the dead agent are not
// events; every event the agent recorded in its audit chain must land once.
func TestFaultAgentKilled(t *testing.T) {
	requireRoot(t)
	s := newStack(t)
	tf := newTripFiles(t, 2000)
	state := t.TempDir()
	agent := s.startAgent(t, "fault-agent", tf.rules(), state)

	tf.read(t, 0, 1000, 1000)
	_ = agent.cmd.Process.Signal(syscall.SIGKILL)
	<-agent.done
	agent.done <- nil
	agent = s.startAgent(t, "fault-agent", tf.rules(), state)
	tf.read(t, 1000, 2000, 1000)

	// What the agent recorded: the file events in its audit chain.
	want := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		want = chainAlerts(t, filepath.Join(state, "audit.log"), tf.rule)
		if len(want) >= tf.n-50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Everything read after the restart was seen, so nearly everything is.
	if len(want) < 1000 {
		t.Fatalf("only %d of %d reads in the audit chain", len(want), tf.n)
	}
	s.compareChain(t, tf, filepath.Join(state, "audit.log"), agent)
}

// compareChain checks PostgreSQL against the events the agent recorded in
// its audit chain: every one stored exactly once, nothing else. The chain is
// read until it stops growing and PostgreSQL holds as many alerts: a loaded
// agent may still be chaining its last reads when the caller first looks.
func (s *stack) compareChain(t *testing.T, tf *tripFiles, auditLog string, agent *agentProc) {
	t.Helper()
	var want map[string]bool
	for deadline, last := time.Now().Add(3*time.Minute), -1; ; {
		want = chainAlerts(t, auditLog, tf.rule)
		if c := s.tally(t, tf.rule); c.alertIDs >= len(want) && len(want) == last || time.Now().After(deadline) {
			break
		}
		last = len(want)
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second) // a duplicate would arrive after the count is reached
	dbc := dbConn(t, s.db)
	rows, err := dbc.Query(context.Background(), `SELECT alert_id::text FROM alerts WHERE rule_name = $1`, tf.rule)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost, dups, extra := 0, 0, 0
	for id := range want {
		if got[id] == 0 {
			lost++
		}
	}
	for id, n := range got {
		if n > 1 {
			dups += n - 1
		}
		if !want[id] {
			extra++
		}
	}
	t.Logf("reads %d, events in the agent's chain %d, alert rows %d: lost %d, duplicates %d, not in chain %d",
		tf.n, len(want), len(got), lost, dups, extra)
	if lost != 0 || dups != 0 || extra != 0 {
		t.Errorf("lost %d, duplicates %d, rows not in the chain %d\nagent log:\n%s", lost, dups, extra, tail(agent.log.String(), 6000))
	}
}

// chainAlerts returns the alert ids of the rule's events in an audit log.
func chainAlerts(t *testing.T, path, rule string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := auditchain.ReadEntries(path, 1, func(e auditchain.Entry) error {
		ev, err := event.ParseCanonical(e.Payload)
		if err != nil {
			return err
		}
		if ev.Rule == rule {
			out[ev.AlertID.String()] = true
		}
		return nil
	})
	if err != nil {
		t.Logf("reading audit log: %v", err)
	}
	return out
}

// TestFaultCertRotation issues a new certificate mid-stream, SIGHUPs the
// agent, then revokes the old certificate: the stream goes on with the new
// one and nothing is lost.
func TestFaultCertRotation(t *testing.T) {
	requireRoot(t)
	s := newStack(t)
	tf := newTripFiles(t, 1500)
	const host = "fault-rotate"
	old, err := pki.IssueAgent(s.pki, host, 0)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	agent := s.startAgent(t, host, tf.rules(), state)

	tf.read(t, 0, 500, 200)
	fresh, err := pki.IssueAgent(s.pki, host, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tf.read(t, 500, 1000, 200)
	// Revoke only the old serial: from now on the old certificate is refused
	// at the handshake and on open connections.
	if _, err := pki.Revoke(s.pki, old.Serial); err != nil {
		t.Fatal(err)
	}
	tf.read(t, 1000, 1500, 200)
	// Every read landed once, and the central side holds exactly the events
	// of the agent's chain. The rule reload on SIGHUP runs old and new
	// watchers side by side for a moment; the pipeline keeps a read both see
	// once.
	s.waitPaths(t, tf, 3*time.Minute, agent.log, s.col.log)
	s.compareChain(t, tf, filepath.Join(state, "audit.log"), agent)
	if c := s.tally(t, tf.rule); c.rows != tf.n {
		t.Errorf("the agent recorded %d events for %d reads across the SIGHUP reload:\n%s", c.rows, tf.n, s.extraRows(t, tf.rule))
	}

	// The host's stored certificate expiry is the new one's.
	t.Logf("checking hosts.cert_not_after")
	dbc := dbConn(t, s.db)
	var notAfter time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := dbc.QueryRow(context.Background(), `SELECT cert_not_after FROM hosts WHERE host_name = $1`, host).Scan(&notAfter); err != nil {
			t.Fatal(err)
		}
		if notAfter.Unix() == fresh.NotAfter.Unix() || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if notAfter.Unix() != fresh.NotAfter.Unix() {
		t.Errorf("hosts.cert_not_after %s, want the new certificate's %s", notAfter, fresh.NotAfter)
	}
}

// newStackOn is newStack on a given database (a private cluster), with the
// shipped config files given (default config.yaml alone).
func newStackOn(t testing.TB, db string, configs ...string) *stack {
	t.Helper()
	if len(configs) == 0 {
		configs = []string{"config.yaml"}
	}
	s := &stack{pki: pkiDir(t), db: db, sink: startSink(t), queue: t.TempDir(), configs: configs}
	s.endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.opamp = fmt.Sprintf("127.0.0.1:%d", freePort(t)) // used by opamp.yaml only
	s.health = freePort(t)
	s.env = []string{
		"TRIPWIRE_PKI_DIR=" + s.pki,
		"TRIPWIRE_PG_DSN=" + s.db,
		"TRIPWIRE_QUEUE_DIR=" + s.queue,
		"TRIPWIRE_ENDPOINT=" + s.endpoint,
		"TRIPWIRE_OPAMP_ENDPOINT=" + s.opamp,
		"TRIPWIRE_OPAMP_CA_KEY_FILE=" + filepath.Join(s.pki, pki.CAKeyFile),
		fmt.Sprintf("TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:%d", s.health),
		"TRIPWIRE_FORWARD_ENDPOINT=" + s.sink.addr,
		"TRIPWIRE_FORWARD_INSECURE=true",
		fmt.Sprintf("TRIPWIRE_METRICS_PORT=%d", freePort(t)),
		"GOGC=400", // as the image and the demo run it
	}
	s.col = startCollectorOn(t, s.configs, s.health, s.env...)
	return s
}
