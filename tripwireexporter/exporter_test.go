package tripwireexporter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/migrations"
)

func TestTripLandsWithItsFields(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	feed := listen(t, dsn)

	a := newAgent(t, "web-1")
	ev := a.trips(1)[0]
	push(t, e, a.logs(ev))

	var (
		host, user, path, sev, typ, rule, summary, detail string
		pid, seq                                          int64
		eventTime                                         time.Time
	)
	var stored bool
	err := pool.QueryRow(context.Background(), `SELECT host_name, `+detailSQL+`->>$2, `+detailSQL+`->>$3,
			(`+detailSQL+`->>$4)::bigint, severity, tripwire_type, rule_name, seq, summary,
			alert_payload(host_id, seq, alert_id, event_detail), event_time, event_detail IS NOT NULL
		FROM alerts WHERE alert_id = $1`, ev.AlertID, event.KeyProcessUserName, event.KeyFilePath, event.KeyProcessPID).
		Scan(&host, &user, &path, &pid, &sev, &typ, &rule, &seq, &summary, &detail, &eventTime, &stored)
	if err != nil {
		t.Fatalf("reading the alert row: %v", err)
	}
	if host != "web-1" || user != "mallory" || path != "/etc/shadow" || pid != ev.Process.PID ||
		sev != "CRITICAL" || typ != "file" || rule != "shadow" || seq != 1 || summary != ev.Summary() {
		t.Errorf("row = host %q user %q path %q pid %d severity %q type %q rule %q seq %d summary %q",
			host, user, path, pid, sev, typ, rule, seq, summary)
	}
	if !eventTime.Equal(ev.Time) {
		t.Errorf("event_time = %s, want %s", eventTime, ev.Time)
	}
	// The payload is stored once: the audit entry keeps the exact canonical
	// bytes, and the alert reads them from there (migration 0018).
	if stored {
		t.Error("alerts.event_detail holds a second copy of a chained event's payload")
	}
	if detail != string(ev.Canonical()) {
		t.Errorf("alert_payload is not the canonical bytes:\n%s\n%s", detail, ev.Canonical())
	}
	back, err := event.ParseCanonical([]byte(detail))
	if err != nil {
		t.Fatalf("event_detail does not parse as a canonical event: %v", err)
	}
	if string(back.Canonical()) != string(ev.Canonical()) {
		t.Errorf("event_detail round trip differs:\n%s\n%s", back.Canonical(), ev.Canonical())
	}

	var platform, arch, version, ip, status string
	var certNotAfter, lastAlert time.Time
	err = pool.QueryRow(context.Background(), `SELECT platform, arch, agent_version, host(ip_address), status, cert_not_after, last_alert_at
		FROM hosts WHERE host_name = 'web-1'`).Scan(&platform, &arch, &version, &ip, &status, &certNotAfter, &lastAlert)
	if err != nil {
		t.Fatal(err)
	}
	if platform != "linux" || arch != "amd64" || version != "0.1.0-test" || ip != "127.0.0.1" || status != event.StatusOnline ||
		!certNotAfter.Equal(time.Date(2027, 11, 26, 12, 0, 0, 0, time.UTC)) || !lastAlert.Equal(ev.Time) {
		t.Errorf("host = %s %s %s %s %s %s %s", platform, arch, version, ip, status, certNotAfter, lastAlert)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 1 {
		t.Errorf("%d audit entries, want 1", n)
	}
	if s, h := head(t, pool, "web-1"); s != 1 || h != ev.Hash {
		t.Errorf("head = %d %s, want 1 %s", s, h, ev.Hash)
	}

	got := notifications(t, feed, 1)
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	p := got[0]
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := "alert_id event_name event_time host_name received_at rule_name seq severity summary tripwire_type"; strings.Join(keys, " ") != want {
		t.Errorf("payload keys %v, want %s", keys, want)
	}
	if p["alert_id"] != ev.AlertID.String() || p["host_name"] != "web-1" || p["severity"] != "CRITICAL" ||
		p["event_name"] != string(event.FileAccess) || p["tripwire_type"] != "file" || p["rule_name"] != "shadow" ||
		p["seq"] != float64(1) || p["summary"] != ev.Summary() {
		t.Errorf("payload = %v", p)
	}
	if ts, err := time.Parse(time.RFC3339Nano, p["event_time"].(string)); err != nil || !ts.Equal(ev.Time) {
		t.Errorf("payload event_time %v (%v), want %s", p["event_time"], err, ev.Time)
	}
	if _, err := time.Parse(time.RFC3339Nano, p["received_at"].(string)); err != nil {
		t.Errorf("payload received_at: %v", err)
	}
}

func TestReplayStoresNothingTwice(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "db-1")
	batch := a.trips(20)
	push(t, e, a.logs(batch...))
	feed := listen(t, dsn)
	push(t, e, a.logs(batch...))
	push(t, e, a.logs(batch[5:10]...)) // a partial replay, as after a lost ack
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 20 {
		t.Errorf("%d alert rows after replays, want 20", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 20 {
		t.Errorf("%d audit entries after replays, want 20", n)
	}
	if n := breakAlerts(t, pool, "db-1"); n != 0 {
		t.Errorf("%d chain_break alerts for a replay, want 0", n)
	}
	if got := notifications(t, feed, 0); len(got) != 0 {
		t.Errorf("a replay sent %d notifications", len(got))
	}
	if s, _ := head(t, pool, "db-1"); s != 20 {
		t.Errorf("head %d, want 20", s)
	}
	if n := e.insertRetries.Load(); n != 0 {
		t.Errorf("replays took the INSERT fallback %d times: the chain check should have skipped them", n)
	}
}

func TestHeartbeatUpdatesHostOnly(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "hb-1")
	push(t, e, a.logs(a.heartbeat(event.StatusDegraded, "file=fsnotify,process=proc_connector")))
	var status, watchers string
	if err := pool.QueryRow(context.Background(), "SELECT status, watchers FROM hosts WHERE host_name = 'hb-1'").Scan(&status, &watchers); err != nil {
		t.Fatal(err)
	}
	if status != event.StatusDegraded || watchers != "file=fsnotify,process=proc_connector" {
		t.Errorf("host status %q watchers %q", status, watchers)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 0 {
		t.Errorf("a heartbeat made %d alert rows", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 0 {
		t.Errorf("a heartbeat made %d audit entries", n)
	}
	push(t, e, a.logs(a.heartbeat(event.StatusOnline, "file=fanotify")))
	if err := pool.QueryRow(context.Background(), "SELECT status FROM hosts WHERE host_name = 'hb-1'").Scan(&status); err != nil || status != event.StatusOnline {
		t.Errorf("status %q after an ONLINE heartbeat (%v)", status, err)
	}
}

func TestSweepMarksSilentHostsOffline(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.HostOfflineAfter = time.Minute
	e := startExporter(t, cfg)
	pool := openPool(t, dsn)
	a := newAgent(t, "quiet-1")
	push(t, e, a.logs(a.trips(1)...))
	b := newAgent(t, "busy-1")
	push(t, e, b.logs(b.trips(1)...))
	if _, err := pool.Exec(context.Background(), "UPDATE hosts SET last_seen = now() - interval '2 minutes' WHERE host_name = 'quiet-1'"); err != nil {
		t.Fatal(err)
	}
	if err := e.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	status := func(host string) (s string) {
		pool.QueryRow(context.Background(), "SELECT status FROM hosts WHERE host_name = $1", host).Scan(&s)
		return s
	}
	if s := status("quiet-1"); s != event.StatusOffline {
		t.Errorf("silent host is %s", s)
	}
	if s := status("busy-1"); s != event.StatusOnline {
		t.Errorf("active host is %s", s)
	}
	push(t, e, a.logs(a.trips(1)...))
	if s := status("quiet-1"); s != event.StatusOnline {
		t.Errorf("host is %s after sending again", s)
	}
}

func TestInvalidRecordsAreDroppedNotTheBatch(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "mixed-1")
	good := a.trips(2)
	ld := a.logs(good...)
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	bad := a.trip()
	bad.File = nil // a file trip without a path
	bad.CopyTo(lrs.AppendEmpty())
	lrs.AppendEmpty().SetEventName("tripwire.unknown")
	wrongType := lrs.AppendEmpty()
	a.trip().CopyTo(wrongType)
	wrongType.Attributes().PutStr("process.pid", "not a number")
	forged := lrs.AppendEmpty()
	(&event.Event{Name: event.AuditChainBreak, AlertID: event.NewAlertID(), Severity: event.SeverityCritical,
		Time: baseTime, ObservedTime: baseTime, Audit: &event.AuditBreak{Kind: event.BreakGap}}).CopyTo(forged)
	// Records of a resource without a bound host.
	anon := ld.ResourceLogs().AppendEmpty()
	a.trip().CopyTo(anon.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty())

	if err := e.pushLogs(context.Background(), ld); err != nil {
		t.Fatalf("a batch with bad records failed as a whole: %v", err)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 2 {
		t.Errorf("%d alert rows, want the 2 good ones", n)
	}
}

func TestNULBytesAreStored(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "nul-1")
	ev := a.trip()
	ev.Process.CommandLine = "sh\x00-c\x00id"
	ev.Rule = "r\x00"
	push(t, e, a.logs(a.chained(ev)...))
	var cmd, rule string
	if err := pool.QueryRow(context.Background(), "SELECT "+detailSQL+"->>'process.command_line', rule_name FROM alerts").Scan(&cmd, &rule); err != nil {
		t.Fatal(err)
	}
	if cmd != "sh\uFFFD-c\uFFFDid" || rule != "r\uFFFD" {
		t.Errorf("command line %q rule %q", cmd, rule)
	}
	if n := breakAlerts(t, pool, "nul-1"); n != 0 {
		t.Errorf("%d chain_break alerts: the hash is checked on the received bytes, not the stored ones", n)
	}
	// The audit entry keeps the exact bytes, so it still verifies centrally.
	var payload, prev, hash string
	if err := pool.QueryRow(context.Background(), "SELECT payload, prev_hash, hash FROM audit_entries").Scan(&payload, &prev, &hash); err != nil {
		t.Fatal(err)
	}
	if payload != string(ev.Canonical()) || event.ChainHash(prev, []byte(payload)) != hash {
		t.Errorf("audit entry payload %q is not the canonical event that hashes to %s", payload, hash)
	}
}

func TestManyHostsInOneBatch(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	feed := listen(t, dsn)
	ld := plog.NewLogs()
	agents := make([]*agent, 20)
	for i := range agents {
		agents[i] = newAgent(t, fmt.Sprintf("fleet-%02d", i))
		appendResource(ld, agents[i].host, agents[i].trips(10)...)
	}
	push(t, e, ld)
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 200 {
		t.Errorf("%d alerts, want 200", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_heads WHERE seq = 10"); n != 20 {
		t.Errorf("%d heads at 10, want 20", n)
	}
	// The live feed hears of every alert once, packed into few notifications.
	ids := map[any]int{}
	for _, m := range notifications(t, feed, 200) {
		ids[m["alert_id"]]++
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE alert_id::text = ANY($1)", slices.Collect(maps.Keys(ids))); len(ids) != 200 || n != 200 {
		t.Errorf("%d distinct alert ids notified, %d of them stored; want 200 and 200", len(ids), n)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("alert %v notified %d times", id, n)
		}
	}
}

// Two collector replicas get the same stream of one host (a retried request
// landing on the other replica) and race: the chain stays whole and nothing
// is stored twice.
func TestTwoExportersRaceOnOneHost(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e1 := startExporter(t, testConfig(dsn))
	e2 := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "race-1")
	var batches [][]*event.Event
	for i := 0; i < 40; i++ {
		batches = append(batches, a.trips(25))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, e := range []*tripwireExporter{e1, e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range batches {
				if err := e.pushLogs(context.Background(), a.logs(b...)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("push: %v", err)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 1000 {
		t.Errorf("%d alerts, want 1000", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 1000 {
		t.Errorf("%d audit entries, want 1000", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_breaks"); n != 0 {
		t.Errorf("%d chain breaks, want 0: %v", n, breakKinds(t, pool, "race-1"))
	}
	if s, h := head(t, pool, "race-1"); s != 1000 || h != batches[39][24].Hash {
		t.Errorf("head %d, want 1000", s)
	}
}

func TestPushWhileDatabaseDownIsRetryable(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := c.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	a := newAgent(t, "outage-1")
	push(t, e, a.logs(a.trips(1)...))
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.pushLogs(ctx, a.logs(a.trips(1)...))
	if err == nil {
		t.Fatal("push succeeded with PostgreSQL stopped")
	}
	if consumererror.IsPermanent(err) {
		t.Fatalf("outage error is permanent, so the batch would be dropped: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	push(t, e, a.logs(a.trips(1)...))
}

// When PostgreSQL refuses one record (here a CHECK a DBA added), the batch
// is stored record by record and only that one is dropped.
func TestRefusedRecordDropsOnlyItself(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	if _, err := pool.Exec(context.Background(), "ALTER TABLE alerts ADD CONSTRAINT no_evil CHECK (rule_name <> 'evil')"); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, "refuse-1")
	evs := make([]*event.Event, 6)
	for i := range evs {
		evs[i] = a.trip()
	}
	evs[5].Rule = "evil"
	push(t, e, a.logs(a.chained(evs...)...))
	b := newAgent(t, "refuse-2")
	push(t, e, b.logs(b.trips(3)...))
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = 'refuse-1'"); n != 5 {
		t.Errorf("%d alerts of refuse-1, want the 5 good ones", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = 'refuse-2'"); n != 3 {
		t.Errorf("%d alerts of refuse-2, want 3", n)
	}
	// Only one good batch for refuse-2 means no fallback was needed there;
	// now a mixed batch of two hosts.
	ld := a.logs(a.trips(2)...)
	bad := a.trip()
	bad.Rule = "evil"
	appendResource(ld, "refuse-2", b.trips(2)...)
	appendResource(ld, a.host, a.chained(bad)...)
	push(t, e, ld)
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE tripwire_type = 'file'"); n != 12 {
		t.Errorf("%d trips in all, want 12", n)
	}
	// The dropped seq 6 is missing from the chain, and says so.
	if k := breakKinds(t, pool, "refuse-1"); fmt.Sprint(k) != "[gap:6:7]" {
		t.Errorf("breaks %v, want [gap:6:7]", k)
	}
}

func TestStartPreparesSchemaAndPartitions(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.PartitionsAhead = 3
	startExporter(t, cfg)
	startExporter(t, cfg) // a second replica starting on the same database
	pool := openPool(t, dsn)
	now := time.Now().UTC()
	for i := 0; i <= 3; i++ {
		d := now.AddDate(0, 0, i)
		name := fmt.Sprintf("alerts_%04d_%02d_%02d", d.Year(), int(d.Month()), d.Day())
		if n := queryInt(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", name); n != 1 {
			t.Errorf("partition %s missing after start", name)
		}
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM schema_migrations"); n != int64(len(migrations.Versions())) {
		t.Errorf("%d migrations recorded, want %d", n, len(migrations.Versions()))
	}
}

// Issue 12 item 8: a host sending an event with the alert id and time of
// another host's event must not make either disappear: alert ids are unique
// per host, so both rows are stored, and each host's replay stays a replay.
func TestAlertIDCollisionAcrossHosts(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a, b := newAgent(t, "twin-1"), newAgent(t, "twin-2")
	ea, eb := a.trip(), b.trip()
	eb.AlertID, eb.Time = ea.AlertID, ea.Time
	push(t, e, b.logs(b.chained(eb)...)) // the copy first: it must not shadow the original
	push(t, e, a.logs(a.chained(ea)...))
	push(t, e, a.logs(ea)) // a replay
	for _, host := range []string{"twin-1", "twin-2"} {
		if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = $1 AND alert_id = $2", host, ea.AlertID); n != 1 {
			t.Errorf("%d alerts of %s with the shared id, want 1", n, host)
		}
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 2 {
		t.Errorf("%d audit entries, want one per host", n)
	}
}

// Issue 12 item 3: one host's bad resource must not cost the other hosts of
// a batch their events or turn the batch into a transaction per record.
func TestBadHostIsIsolatedFromTheBatch(t *testing.T) {
	const hosts, perHost = 20, 100
	build := func(prefix, badOS string) plog.Logs {
		ld := plog.NewLogs()
		for h := range hosts {
			a := newAgent(t, fmt.Sprintf("%s-%02d", prefix, h))
			appendResource(ld, a.host, a.trips(perHost)...)
			if h == 7 {
				ld.ResourceLogs().At(h).Resource().Attributes().PutStr(event.ResourceOSType, badOS)
			}
		}
		return ld
	}
	dsn := pgtest.NewDB(t)
	const lanes = 4 // a batch is split by host into one transaction per pool connection
	e := startExporter(t, testConfig(fmt.Sprintf("%s&pool_max_conns=%d", dsn, lanes)))
	pool := openPool(t, dsn)
	// Count the hosts upserts, one per transaction tried; a sequence is not
	// rolled back with the transaction.
	for _, sql := range []string{
		`CREATE SEQUENCE upserts`,
		`CREATE FUNCTION count_upsert() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM nextval('upserts'); RETURN NULL; END$$`,
		`CREATE TRIGGER count_upsert BEFORE INSERT ON hosts FOR EACH STATEMENT EXECUTE FUNCTION count_upsert()`,
		`ALTER TABLE hosts ADD CONSTRAINT no_evil CHECK (platform <> 'evil')`,
	} {
		if _, err := pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	upserts := func() int64 {
		return queryInt(t, pool, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM upserts`)
	}

	// Invalid UTF-8 in os.type: stored without it, nothing lost.
	push(t, e, build("utf8", "linux\xff"))
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name LIKE 'utf8-%'"); n != hosts*perHost {
		t.Errorf("%d alerts stored, want %d", n, hosts*perHost)
	}
	if n := upserts(); n < 1 || n > lanes {
		t.Errorf("%d transactions for a batch with a bad os.type, want one per lane (at most %d)", n, lanes)
	}

	// A value PostgreSQL refuses (a DBA's CHECK): the other hosts keep
	// their events, and only the bad host goes record by record.
	before := upserts()
	push(t, e, build("check", "evil"))
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name LIKE 'check-%'"); n != (hosts-1)*perHost {
		t.Errorf("%d alerts stored, want the other hosts' %d", n, (hosts-1)*perHost)
	}
	if n := upserts() - before; n > lanes+hosts+perHost {
		t.Errorf("%d transactions, want at most %d (the lanes, each host, the bad host's records)", n, lanes+hosts+perHost)
	}
}

// Issue 12 item 12: a heartbeat carries the agent's chain head (its
// tripwire.seq and tripwire.audit.hash). Cutting the not-yet-shipped tail of
// the local log, or rewriting it, shows as the head going backwards or
// forking from what the collector stored or was told before.
func TestHeartbeatHeadRollbackIsABreak(t *testing.T) {
	cases := []struct {
		name  string
		grace time.Duration
		// sends pushes batches and returns the alerts they must raise.
		sends func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string)
	}{
		{"unshipped tail cut after a heartbeat announced it", 0, func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string) {
			push(a.trips(5)...)
			tail := a.trips(5) // 6..10, written, not yet shipped
			push(a.heartbeatAt(tail[4]))
			push(a.heartbeatAt(tail[1])) // the log now ends at 7
			return 1, "[truncated:10:7]"
		}},
		{"head behind what was stored", 0, func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string) {
			evs := a.trips(10)
			push(evs...)
			push(a.heartbeatAt(evs[4]))
			push(a.heartbeatAt(evs[4])) // the same claim again: no second alert
			return 1, "[truncated:10:5]"
		}},
		{"head forks from a stored entry", 0, func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string) {
			evs := a.trips(5)
			push(evs...)
			other := newAgent(t, a.host).trips(3)
			push(a.heartbeatAt(other[2]))
			return 1, "[fork:3:3]"
		}},
		{"head ahead, then further ahead: the unshipped tail", 0, func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string) {
			push(a.trips(3)...)
			tail := a.trips(4)
			push(a.heartbeatAt(tail[0]))
			push(a.heartbeatAt(tail[3]))
			push(tail...)
			push(a.heartbeatAt(tail[3]))
			return 0, "[]"
		}},
		{"a heartbeat built before the last batch was stored", time.Hour, func(t *testing.T, a *agent, push func(...*event.Event)) (int64, string) {
			early := a.trips(3)
			hb := a.heartbeatAt(early[2])
			push(early...)
			push(a.trips(3)...)
			push(hb)
			return 0, "[]"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDB(t)
			cfg := testConfig(dsn)
			cfg.ChainGapGrace = tc.grace
			e := startExporter(t, cfg)
			pool := openPool(t, dsn)
			a := newAgent(t, "rollback-1")
			want, kinds := tc.sends(t, a, func(evs ...*event.Event) { push(t, e, a.logs(evs...)) })
			if n := breakAlerts(t, pool, a.host); n != want {
				t.Errorf("%d chain_break alerts, want %d", n, want)
			}
			if k := fmt.Sprint(breakKinds(t, pool, a.host)); k != kinds {
				t.Errorf("breaks %s, want %s", k, kinds)
			}
		})
	}
}

// Issue 12 item 3: the exporter, which may sit behind another receiver,
// caps an event's canonical size as the tripwire receiver does: six 64 KiB
// fields of escaped bytes on a file trip are not hashed and stored.
func TestOversizeEventIsDropped(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "huge-1")
	evs := []*event.Event{a.trip(), a.trip(), a.trip()}
	junk := strings.Repeat("\x01", 60<<10)
	evs[1].Process.CommandLine, evs[1].Process.Ancestry = junk, junk
	evs[1].Agent = &event.Agent{Watchers: junk, Unserved: junk}
	evs[1].Network = &event.Network{FirstBytes: junk, DestinationPort: 22}
	evs[1].Missing = nil
	if n := len(evs[1].Canonical()); n <= 1<<20 {
		t.Fatalf("test event is only %d bytes in canonical form", n)
	}
	push(t, e, a.logs(a.chained(evs...)...))
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = 'huge-1' AND tripwire_type = 'file'"); n != 2 {
		t.Errorf("%d trips stored, want the 2 of normal size", n)
	}
	if n := queryInt(t, pool, "SELECT coalesce(max(length(alert_payload(host_id, seq, alert_id, event_detail))), 0) FROM alerts"); n > 1<<20 {
		t.Errorf("an event of %d bytes was stored", n)
	}
}
