package tripwireexporter

import (
	"context"
	"testing"
	"time"

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
	ld := a.logs(a.trips(1)...)
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.ResourceClientCertNotAfter, "2028-11-26T12:00:00Z")
	push(t, e, ld)
	if s, at := status(); s != event.StatusOnline || at != nil {
		t.Errorf("a new certificate left it %s (retired at %v)", s, at)
	}
}
