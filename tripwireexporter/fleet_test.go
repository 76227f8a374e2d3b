package tripwireexporter

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestHeartbeatShowsWhatTheAgentReportsNow: a DEGRADED heartbeat stores its
// reasons and unserved rules; a later one with no watchers running (every
// watcher failed after a reload) clears the old list instead of keeping it.
func TestHeartbeatShowsWhatTheAgentReportsNow(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "fleet-1")
	push(t, e, a.logs(a.heartbeat(event.StatusOnline, "file=fanotify,network=honeyport")))
	hb := a.heartbeat(event.StatusDegraded, "")
	hb.Agent.Unserved = `network rule "pg": address already in use`
	hb.Agent.Reasons = `unserved: network rule "pg": address already in use`
	push(t, e, a.logs(hb))
	var status string
	var watchers, unserved, reasons *string
	err := pool.QueryRow(context.Background(), `SELECT status, watchers, unserved_rules, status_reasons
		FROM hosts WHERE host_name = 'fleet-1'`).Scan(&status, &watchers, &unserved, &reasons)
	if err != nil {
		t.Fatal(err)
	}
	if status != event.StatusDegraded || watchers != nil || unserved == nil || *unserved != hb.Agent.Unserved ||
		reasons == nil || *reasons != hb.Agent.Reasons {
		t.Errorf("host row: status %q watchers %v unserved %v reasons %v", status, watchers, unserved, reasons)
	}
	push(t, e, a.logs(a.heartbeat(event.StatusOnline, "file=fanotify")))
	err = pool.QueryRow(context.Background(), `SELECT status, watchers, status_reasons FROM hosts WHERE host_name = 'fleet-1'`).
		Scan(&status, &watchers, &reasons)
	if err != nil || status != event.StatusOnline || watchers == nil || *watchers != "file=fanotify" || reasons != nil {
		t.Errorf("after an ONLINE heartbeat: %q %v %v (%v)", status, watchers, reasons, err)
	}
}

// TestRetiredHost: an Admin retires a decommissioned host (through the
// function the plugin's read-only role may call): the sweep no longer marks
// it OFFLINE (no offline alert), its heartbeats and records under the old
// certificate keep it RETIRED with its data, and a record under a new
// certificate for the name re-activates it.
func TestRetiredHost(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.HostOfflineAfter = time.Minute
	e := startExporter(t, cfg)
	pool := openPool(t, dsn)
	ctx := context.Background()
	a := newAgent(t, "old-1")
	push(t, e, a.logs(a.trips(2)...))
	status := func() (s string, retired *time.Time) {
		if err := pool.QueryRow(ctx, "SELECT status, retired_at FROM hosts WHERE host_name = 'old-1'").Scan(&s, &retired); err != nil {
			t.Fatal(err)
		}
		return s, retired
	}
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT tripwire_retire_host('old-1')").Scan(&ok); err != nil || !ok {
		t.Fatalf("retire: %v %v", ok, err)
	}
	if err := pool.QueryRow(ctx, "SELECT tripwire_retire_host('never-seen')").Scan(&ok); err != nil || ok {
		t.Fatalf("retiring an unknown host: %v %v", ok, err)
	}
	if _, err := pool.Exec(ctx, "UPDATE hosts SET last_seen = now() - interval '2 minutes' WHERE host_name = 'old-1'"); err != nil {
		t.Fatal(err)
	}
	if err := e.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s, at := status(); s != event.StatusRetired || at == nil {
		t.Fatalf("after the sweep: %s retired at %v", s, at)
	}
	push(t, e, a.logs(a.heartbeat(event.StatusOnline, "file=fanotify")))
	push(t, e, a.logs(a.trips(1)...))
	if s, _ := status(); s != event.StatusRetired {
		t.Errorf("the old certificate's heartbeat and records made it %s", s)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = 'old-1'"); n != 3 {
		t.Errorf("%d alerts kept, want 3", n)
	}
	// A new certificate is told by its serial, not its expiry: one issued
	// the same day may well have the same not-after.
	ld := a.logs(a.trips(1)...)
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.ResourceClientCertSerial, "3c4d")
	push(t, e, ld)
	if s, at := status(); s != event.StatusOnline || at != nil {
		t.Errorf("a new certificate left it %s (retired at %v)", s, at)
	}

	// Retired again: now the serial it had then is the one that keeps it
	// retired, whatever not-after a record says.
	if err := pool.QueryRow(ctx, "SELECT tripwire_retire_host('old-1')").Scan(&ok); err != nil || !ok {
		t.Fatalf("retire: %v %v", ok, err)
	}
	ld = a.logs(a.trips(1)...)
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.ResourceClientCertSerial, "3c4d")
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.ResourceClientCertNotAfter, "2029-01-01T00:00:00Z")
	push(t, e, ld)
	if s, _ := status(); s != event.StatusRetired {
		t.Errorf("the retired certificate's serial with another not-after made it %s", s)
	}
}

// TestRetiredWithoutSerial: a host retired before serials were stored
// (no retired serial) is re-activated by another not-after, as before.
func TestRetiredWithoutSerial(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	ctx := context.Background()
	a := newAgent(t, "legacy-1")
	push(t, e, a.logs(a.trips(1)...))
	if _, err := pool.Exec(ctx, "UPDATE hosts SET cert_serial = NULL WHERE host_name = 'legacy-1'"); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT tripwire_retire_host('legacy-1')").Scan(&ok); err != nil || !ok {
		t.Fatalf("retire: %v %v", ok, err)
	}
	status := func() (s string) {
		if err := pool.QueryRow(ctx, "SELECT status FROM hosts WHERE host_name = 'legacy-1'").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	push(t, e, a.logs(a.trips(1)...))
	if s := status(); s != event.StatusRetired {
		t.Fatalf("the same certificate made it %s", s)
	}
	ld := a.logs(a.trips(1)...)
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.ResourceClientCertNotAfter, "2028-11-26T12:00:00Z")
	push(t, e, ld)
	if s := status(); s != event.StatusOnline {
		t.Errorf("another not-after left it %s", s)
	}
}

// TestRefusedIdentityIsRecorded: the receiver's refusal records become one
// refused_hosts row per certificate name and reason, with the count added
// up and no hosts row; the plugin's role may read them.
func TestRefusedIdentityIsRecorded(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	ctx := context.Background()
	refusal := func(count int64, at time.Time) event.Refusal {
		return event.Refusal{Time: at, CertName: "web-01", CertSerial: "77", ClaimedName: "db-02",
			Reason: "host_mismatch", Detail: `permission denied: resource host.name "db-02" is not the client certificate's host "web-01"`,
			Address: "10.0.0.7", Count: count}
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	ld := plog.NewLogs()
	r := refusal(1, t0)
	r.AppendTo(ld)
	a := newAgent(t, "ok-1")
	appendResource(ld, "ok-1", a.trips(1)...)
	push(t, e, ld)
	ld = plog.NewLogs()
	r = refusal(41, t0.Add(time.Minute))
	r.AppendTo(ld)
	r = refusal(1, t0.Add(time.Second))
	r.AppendTo(ld) // the same identity twice in one batch
	push(t, e, ld)

	var claimed, detail, serial, ip string
	var n int64
	var first, last time.Time
	err := pool.QueryRow(ctx, `SELECT claimed_name, detail, cert_serial, host(ip_address), refusals, first_seen, last_seen
		FROM refused_hosts WHERE cert_name = 'web-01' AND reason = 'host_mismatch'`).
		Scan(&claimed, &detail, &serial, &ip, &n, &first, &last)
	if err != nil {
		t.Fatal(err)
	}
	if claimed != "db-02" || serial != "77" || ip != "10.0.0.7" || n != 43 || !first.Equal(t0) || !last.Equal(t0.Add(time.Minute)) {
		t.Errorf("row: claimed %q serial %q ip %q refusals %d first %v last %v", claimed, serial, ip, n, first, last)
	}
	if !strings.Contains(detail, `is not the client certificate's host "web-01"`) {
		t.Errorf("detail %q", detail)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM refused_hosts"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM hosts WHERE host_name IN ('web-01', 'db-02')"); n != 0 {
		t.Errorf("a refused identity made %d hosts rows", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE host_name = 'ok-1'"); n != 1 {
		t.Errorf("the batch's own records: %d alerts, want 1", n)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE tripwire_reader"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM refused_hosts").Scan(&n); err != nil || n != 1 {
		t.Errorf("tripwire_reader reads %d rows (%v)", n, err)
	}
}
