package plugin

import (
	"testing"
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
