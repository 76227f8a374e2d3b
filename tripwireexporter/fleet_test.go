package tripwireexporter

import (
	"context"
	"testing"

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
