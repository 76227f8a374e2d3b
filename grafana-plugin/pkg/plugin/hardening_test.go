package plugin

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// Issue 12 item 8: an alert id is unique per host. Another host reusing an
// id must neither be refused by the schema nor shadow the original in the
// detail view: with two rows the caller names the host.
func TestAlertIDSharedByTwoHosts(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	const id = "0190a000-0000-7000-8000-000000000001" // web-01's
	orig := seedAlerts()[0]
	copyOf := orig
	copyOf.host, copyOf.summary = "mac-01", "forged by mac-01"
	e.insertAlert(t, copyOf)

	if code, body := e.call(t, "GET", "/api/v1/alerts/"+id, "Viewer"); code != 409 {
		t.Errorf("without host: %d %s, want 409", code, body)
	}
	for _, host := range []string{"web-01", "mac-01"} {
		code, body := e.call(t, "GET", "/api/v1/alerts/"+id+"?host="+host, "Viewer")
		if code != 200 {
			t.Fatalf("host %s: %d %s", host, code, body)
		}
		if a := decode[Alert](t, body); a.HostName != host {
			t.Errorf("asked for %s's alert, got %s's", host, a.HostName)
		}
	}
	if code, _ := e.call(t, "GET", "/api/v1/alerts/"+id+"?host=db-01", "Viewer"); code != 404 {
		t.Errorf("host without that alert: %d, want 404", code)
	}
}

// Issue 12 item 10: the live feed delivers only what is in the alerts table,
// as it is there. A NOTIFY any database role can send, naming an alert that
// does not exist or rewriting one that does, is not delivered.
func TestForgedNotificationIsNotDelivered(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := e.stream(t, "alerts")
	e.waitSubscribers(t, 1)

	real := seedAlerts()[0] // stored by seed
	at := e.now.Add(-real.ago).UTC().Format(contract.NotifyTimeLayout)
	forged := []contract.Notification{
		{AlertID: "0190c000-0000-7000-8000-000000000666", EventTime: at, ReceivedAt: at, HostName: "web-01",
			EventName: "tripwire.process.exec", TripwireType: "process", RuleName: "nc-exec", Severity: "CRITICAL", Summary: "forged: not stored"},
		{AlertID: real.id, EventTime: at, ReceivedAt: at, HostName: real.host, EventName: real.event, TripwireType: real.typ,
			RuleName: real.rule, Severity: "INFO", Summary: "forged: all is well"},
	}
	b, _ := json.Marshal(forged)
	e.exec(t, `SELECT pg_notify($1, $2)`, contract.NotifyChannel, string(b))

	next := seedAlert{id: "0190c000-0000-7000-8000-000000000001", host: "web-01", typ: "file", event: "tripwire.file.access",
		rule: "shadow-read", severity: "CRITICAL", summary: "real one", seq: 500}
	e.notifyAlert(t, next)
	var got []Alert
	for len(got) == 0 || got[len(got)-1].AlertID != next.id {
		got = append(got, frameAlerts(t, nextFrame(t, all))...)
	}
	for _, a := range got {
		switch {
		case a.AlertID == forged[0].AlertID:
			t.Errorf("an alert that is not stored was delivered: %+v", a)
		case a.AlertID == real.id && a.Summary != real.summary:
			t.Errorf("a stored alert was delivered as the notification told it: summary %q, severity %s", a.Summary, a.Severity)
		}
	}
	if got[len(got)-1].Summary != next.summary {
		t.Errorf("real alert delivered with summary %q", got[len(got)-1].Summary)
	}
}

// Issue 12 items 10, 11: the plugin reads as tripwire_reader, which may
// SELECT what the plugin needs and nothing else, whatever the login user.
func TestPluginReadsWithTheReaderRole(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	var user string
	if err := e.ds.store.pool.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != "tripwire_reader" {
		t.Errorf("plugin queries run as %q, want tripwire_reader", user)
	}
	for _, sql := range []string{
		`BEGIN READ WRITE; INSERT INTO hosts (host_name) VALUES ('planted'); COMMIT`,
		`BEGIN READ WRITE; UPDATE alerts SET severity = 'INFO'; COMMIT`,
		`BEGIN READ WRITE; DELETE FROM chain_breaks; COMMIT`,
		`SELECT count(*) FROM chain_forks`,
	} {
		if _, err := e.ds.store.pool.Exec(ctx, sql); err == nil {
			t.Errorf("the plugin's session could run %q", sql)
		}
	}
	if code, body := e.call(t, "GET", "/api/v1/hosts", "Viewer"); code != 200 {
		t.Errorf("hosts as the reader: %d %s", code, body)
	}
}

// Issue 12 item 9: a Viewer cannot make the plugin scan without bounds: free
// text needs a time range no wider than a month, stats at most a quarter.
func TestViewerWorkIsBounded(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ms := func(d time.Duration) string { return strconv.FormatInt(e.now.Add(-d).UnixMilli(), 10) }
	cases := []struct {
		path string
		want int
	}{
		{"/api/v1/alerts?q=shadow", 400},
		{"/api/v1/alerts?q=shadow&from=" + ms(60*24*time.Hour), 400},
		{"/api/v1/alerts?q=shadow&from=" + ms(time.Hour), 200},
		{"/api/v1/alerts?from=" + ms(365*24*time.Hour), 200}, // indexed filters need no bound
		{"/api/v1/stats?from=" + ms(2*365*24*time.Hour), 400},
		{"/api/v1/stats?from=" + ms(30*24*time.Hour), 200},
	}
	for _, c := range cases {
		if code, body := e.call(t, "GET", c.path, "Viewer"); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.path, code, body, c.want)
		}
	}
}

// Issue 12 item 9: verifying a chain re-hashes only what was not verified
// before; a change at the verified end, or the cache's age, sends it back to
// the start.
func TestVerifyReusesTheVerifiedPrefix(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	g := e.seedChain(t, "web-01")
	verify := func() ChainStatus {
		code, body := e.call(t, "GET", "/api/v1/audit/verify?host=web-01", "Viewer")
		if code != 200 {
			t.Fatalf("verify: %d %s", code, body)
		}
		return decode[ChainStatus](t, body)
	}
	if st := verify(); !st.Intact || st.Rehashed != int64(len(g)) {
		t.Fatalf("first verify: intact %v rehashed %d, want %d", st.Intact, st.Rehashed, len(g))
	}
	if st := verify(); !st.Intact || st.Rehashed != 0 || st.VerifiedUpTo != int64(len(g)) {
		t.Fatalf("second verify: intact %v rehashed %d up to %d", st.Intact, st.Rehashed, st.VerifiedUpTo)
	}
	// The verified end rewritten: everything is hashed again, and it shows.
	e.exec(t, `UPDATE audit_entries SET payload = payload || ' ' WHERE seq = $1`, len(g))
	if st := verify(); st.Intact || st.Rehashed != int64(len(g)) {
		t.Fatalf("after a rewrite: intact %v rehashed %d", st.Intact, st.Rehashed)
	}
	e.exec(t, `UPDATE audit_entries SET payload = $2 WHERE seq = $1`, len(g), g[len(g)-1].Canonical)
	verify()
	// An earlier entry rewritten is found once the cache has aged.
	e.exec(t, `UPDATE audit_entries SET payload = payload || ' ' WHERE seq = 1`)
	e.ds.store.verifyMaxAge = 0
	if st := verify(); st.Intact {
		t.Fatal("a rewritten first entry went unnoticed after the cache aged")
	}
}
