package collector

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// startFleetAgent starts the real agent named name with the certificate
// issued for certHost (the same name, or another for a misconfigured host),
// a honeyport rule on a free port (no root needed) and extra transport
// settings.
func (s *stack) startFleetAgent(t *testing.T, name, certHost, transportExtra, dir string) (*agentProc, string) {
	t.Helper()
	return s.launchAgent(t, certHost, dir, func(certFile, keyFile, healthSock string) string {
		return fmt.Sprintf(`
host:
  name: %s
rules:
  - {name: decoy, type: network, mode: honeyport, severity: CRITICAL, ports: [%d], address: 127.0.0.1}
transport:
  endpoint: %s
  ca: %s
  cert: %s
  key: %s
  server_name: localhost
  %s
spool: {path: %s}
audit: {path: %s}
health: {socket: "%s"}
heartbeat_interval: 1s
`, name, freePort(t), s.endpoint, filepath.Join(s.pki, pki.CACertFile), certFile, keyFile, transportExtra,
			filepath.Join(dir, "spool.db"), filepath.Join(dir, "audit.log"), healthSock)
	})
}

// eventually polls cond every 100 ms until it holds, failing after timeout
// with what the logs say.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(tail(l.String(), 3000) + "\n---\n")
			}
			t.Fatalf("%s: not within %s\n%s", what, timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFleetRefusedIdentity: a real agent whose certificate names another
// host than its configuration is refused by the real collector, which
// records the refused identity in PostgreSQL (refused_hosts) with the
// claimed name, the reason and the agent's address; no host row is made
// for either name, and the agent's own events are not stored.
func TestFleetRefusedIdentity(t *testing.T) {
	s := newStack(t)
	agent, _ := s.startFleetAgent(t, "db-02", "web-07", "", t.TempDir())
	db := dbConn(t, s.db)
	var claimed, reason, ip, detail string
	var refusals int64
	eventually(t, "a refused_hosts row for web-07", 60*time.Second, func() bool {
		err := db.QueryRow(context.Background(), `SELECT claimed_name, reason, host(ip_address), detail, refusals
			FROM refused_hosts WHERE cert_name = 'web-07'`).Scan(&claimed, &reason, &ip, &detail, &refusals)
		return err == nil
	}, agent.log, s.col.log)
	if claimed != "db-02" || reason != "host_mismatch" || ip != "127.0.0.1" || refusals < 1 ||
		!strings.Contains(detail, `is not the client certificate's host "web-07"`) {
		t.Errorf("refused row: claimed %q reason %q ip %q refusals %d detail %q", claimed, reason, ip, refusals, detail)
	}
	var hosts, alerts int64
	if err := db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM hosts), (SELECT count(*) FROM alerts)`).Scan(&hosts, &alerts); err != nil {
		t.Fatal(err)
	}
	if hosts != 0 || alerts != 0 {
		t.Errorf("a refused agent made %d hosts and %d alerts rows", hosts, alerts)
	}
	// Refused again and again (a heartbeat a second), it stays one row.
	time.Sleep(3 * time.Second)
	var rows int64
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM refused_hosts`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d refused rows (%v), want 1", rows, err)
	}
}

// TestFleetShippingDegradedAndBack: the real agent ships to the real
// collector; the collector is killed and the agent turns DEGRADED once
// shipping has failed longer than transport.degraded_after; the collector
// comes back and the agent is ONLINE again, and both status changes, chained
// while the collector was away, land in PostgreSQL.
func TestFleetShippingDegradedAndBack(t *testing.T) {
	s := newStack(t)
	agent, sock := s.startFleetAgent(t, "ship-01", "ship-01", "degraded_after: 2s", t.TempDir())
	db, err := pgxpool.New(context.Background(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hostStatus := func() string {
		var st string
		_ = db.QueryRow(context.Background(), `SELECT status FROM hosts WHERE host_name = 'ship-01'`).Scan(&st)
		return st
	}
	healthIs := func(status, reason string) func() bool {
		return func() bool {
			rep, err := health.Fetch(context.Background(), sock)
			return err == nil && rep.Status == status && strings.Contains(strings.Join(rep.Reasons, "\n"), reason)
		}
	}
	eventually(t, "host ONLINE in PostgreSQL", 60*time.Second, func() bool { return hostStatus() == event.StatusOnline }, agent.log, s.col.log)

	_ = s.col.cmd.Process.Signal(syscall.SIGKILL)
	<-s.col.done
	down := time.Now()
	eventually(t, "agent DEGRADED for shipping", 30*time.Second,
		healthIs(health.StatusDegraded, "shipping: the collector has not acknowledged anything for more than 2s"), agent.log)
	t.Logf("DEGRADED %s after the collector went away", time.Since(down).Round(100*time.Millisecond))

	s.col = startCollectorOn(t, s.configs, s.health, s.env...)
	up := time.Now()
	eventually(t, "agent ONLINE again", 60*time.Second, healthIs(health.StatusOK, ""), agent.log, s.col.log)
	t.Logf("ONLINE %s after the collector came back", time.Since(up).Round(100*time.Millisecond))

	var statusRows string
	statusLog := syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("status events stored:\n%s", statusRows)
		}
	}()
	// The DEGRADED status event, chained while nothing was acknowledged,
	// and the ONLINE one after it are both stored.
	eventually(t, "DEGRADED then ONLINE status events stored", 60*time.Second, func() bool {
		var ok bool
		err := db.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM alerts o
			WHERE o.host_name = 'ship-01' AND o.event_name = $1 AND alert_detail(o.host_id, o.seq, o.alert_id, o.event_detail)->>'tripwire.agent.status' = $3
			  AND o.event_time > (SELECT min(d.event_time) FROM alerts d
			                      WHERE d.host_name = 'ship-01' AND d.event_name = $1
			                        AND alert_detail(d.host_id, d.seq, d.alert_id, d.event_detail)->>'tripwire.agent.status' = $2
			                        AND alert_detail(d.host_id, d.seq, d.alert_id, d.event_detail)->>'tripwire.agent.status_reasons' LIKE 'shipping:%'))`,
			string(event.AgentStatus), event.StatusDegraded, event.StatusOnline).Scan(&ok)
		if !ok {
			statusRows = fmt.Sprintf("query: %v\n", err)
			rows, _ := db.Query(context.Background(), `SELECT event_time, alert_detail(host_id, seq, alert_id, event_detail)->>'tripwire.agent.status', coalesce(alert_detail(host_id, seq, alert_id, event_detail)->>'tripwire.agent.status_reasons', '')
				FROM alerts WHERE host_name = 'ship-01' AND event_name = $1 ORDER BY event_time`, string(event.AgentStatus))
			for rows.Next() {
				var at time.Time
				var st, why string
				_ = rows.Scan(&at, &st, &why)
				statusRows += fmt.Sprintf("%s %s %s\n", at.Format(time.RFC3339Nano), st, why)
			}
			rows.Close()
		}
		return err == nil && ok
	}, agent.log, s.col.log, &statusLog)
	eventually(t, "host ONLINE in PostgreSQL after the outage", 30*time.Second, func() bool { return hostStatus() == event.StatusOnline }, agent.log, s.col.log)
}
