package plugin

import (
	"bytes"
	"net/url"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// A chained event's payload is stored once, in its audit entry (migration
// 0018): the alert detail and free text read it from there, byte for byte.
func TestAlertPayloadFromAuditEntry(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	const id = "0190b000-0000-7000-8000-000000000018"
	at := e.now.Add(-10 * time.Minute)
	// Canonical bytes jsonb would not keep: key order, and \u0000.
	payload := `{"tripwire.alert_id":"` + id + `","event.name":"tripwire.process.exec",` +
		`"process.command_line":"nc -lvp 4444 quokka\u0000x","process.user.name":"mallory"}`
	summary := "tripwire.process.exec nc on mac-01"
	words := contract.SearchWords(contract.SearchText(summary, "nc-exec", "mac-01", "nc -lvp 4444 quokka\x00x", "mallory"))
	e.exec(t, `INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail, search_words)
SELECT $1, $2, $2, host_id, host_name, 'tripwire.process.exec', 'process', 'nc-exec', 'CRITICAL', 900, $3, NULL, $4
FROM hosts WHERE host_name = 'mac-01'`, id, at, summary, words)
	e.exec(t, `INSERT INTO audit_entries (host_id, seq, alert_id, event_time, prev_hash, hash, payload)
SELECT host_id, 900, $1, $2, repeat('0', 64), repeat('1', 64), $3 FROM hosts WHERE host_name = 'mac-01'`, id, at, payload)

	code, body := e.call(t, "GET", "/api/v1/alerts/"+id, "Viewer")
	if code != 200 {
		t.Fatalf("GET alert: %d %s", code, body)
	}
	if got := decode[Alert](t, body).Detail; !bytes.Equal(got, []byte(payload)) {
		t.Errorf("event_detail = %s, want the audit entry's bytes %s", got, payload)
	}

	// "quokka" is only in the command line, which only the payload holds.
	from := "&from=" + url.QueryEscape(e.now.Add(-time.Hour).Format(time.RFC3339))
	code, body = e.call(t, "GET", "/api/v1/alerts?q=quokka"+from, "Viewer")
	if code != 200 {
		t.Fatalf("search: %d %s", code, body)
	}
	if got := decode[AlertPage](t, body).Alerts; len(got) != 1 || got[0].AlertID != id {
		t.Errorf("q=quokka found %v, want alert %s", got, id)
	}
	// Typed as it is not in the text ("lvp 4444" is): the words match, the
	// recheck on the payload's command line does not.
	code, body = e.call(t, "GET", "/api/v1/alerts?q=lvp-4444"+from, "Viewer")
	if got := decode[AlertPage](t, body).Alerts; code != 200 || len(got) != 0 {
		t.Errorf("q=lvp-4444: %d, %d alerts, want none", code, len(got))
	}
	code, body = e.call(t, "GET", "/api/v1/alerts?q="+url.QueryEscape("lvp 4444")+from, "Viewer")
	if got := decode[AlertPage](t, body).Alerts; code != 200 || len(got) != 1 {
		t.Errorf("q=lvp 4444: %d, %d alerts, want 1", code, len(got))
	}
}
