package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// TestRetireHost: only an Admin retires a host (POST, through the plugin's
// read-only database role and the schema's one function for it); a retired
// host shows RETIRED, not OFFLINE, so the offline alert series stops for it.
func TestRetireHost(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	for _, c := range []struct {
		method, path, role string
		want               int
	}{
		{"POST", "/api/v1/hosts/db-01/retire", "Viewer", 403},
		{"POST", "/api/v1/hosts/db-01/retire", "Editor", 403},
		{"POST", "/api/v1/hosts/db-01/retire", "", 403},
		{"GET", "/api/v1/hosts/db-01/retire", "Admin", 405},
		{"POST", "/api/v1/hosts/nope/retire", "Admin", 404},
		{"POST", "/api/v1/hosts/db-01/retire", "Admin", 200},
		{"POST", "/api/v1/hosts/db-01/retire", "Admin", 200}, // again: still retired
	} {
		if code, body := e.call(t, c.method, c.path, c.role); code != c.want {
			t.Errorf("%s %s as %q: %d %s, want %d", c.method, c.path, c.role, code, body, c.want)
		}
	}
	_, body := e.call(t, "GET", "/api/v1/hosts", "Viewer")
	hosts := decode[struct {
		Hosts []Host `json:"hosts"`
	}](t, body).Hosts
	for _, h := range hosts {
		// db-01 was silent (OFFLINE) before it was retired.
		if h.HostName == "db-01" && h.Status != contract.StatusRetired {
			t.Errorf("db-01 is %s after retiring", h.Status)
		}
		if h.HostName == "web-01" && h.Status != contract.StatusOnline {
			t.Errorf("web-01 is %s", h.Status)
		}
	}
}

// TestRefusedHostsListed: the identities the collector refused are listed
// beside the hosts, most recent first, with their reason and count; none is
// an empty list, not null.
func TestRefusedHostsListed(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	type list struct {
		Hosts   []Host        `json:"hosts"`
		Refused []RefusedHost `json:"refused_hosts"`
	}
	code, body := e.call(t, "GET", "/api/v1/hosts", "Viewer")
	if code != 200 || !strings.Contains(string(body), `"refused_hosts":[]`) {
		t.Fatalf("no refusals: %d %s", code, body)
	}
	e.exec(t, `INSERT INTO refused_hosts (cert_name, reason, claimed_name, detail, cert_serial, ip_address, first_seen, last_seen, refusals)
VALUES ('web-07', 'host_mismatch', 'db-02', 'permission denied: resource host.name "db-02" is not the client certificate''s host "web-07"', '1f', '10.0.0.7', $1, $2, 42),
       ('lost-laptop', 'revoked', NULL, 'client certificate is revoked: serial 2a', '2a', NULL, $1, $1, 3)`,
		e.now.Add(-time.Hour), e.now.Add(-time.Minute))
	code, body = e.call(t, "GET", "/api/v1/hosts", "Viewer")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := decode[list](t, body)
	if len(got.Hosts) != len(seedHosts) || len(got.Refused) != 2 {
		t.Fatalf("%d hosts, %d refused: %s", len(got.Hosts), len(got.Refused), body)
	}
	r := got.Refused[0]
	if r.CertName != "web-07" || r.Reason != "host_mismatch" || r.ClaimedName == nil || *r.ClaimedName != "db-02" ||
		r.Refusals != 42 || r.IPAddress == nil || *r.IPAddress != "10.0.0.7" || !strings.Contains(r.Detail, "is not the client certificate's host") {
		t.Errorf("first refused: %+v", r)
	}
	if r := got.Refused[1]; r.CertName != "lost-laptop" || r.ClaimedName != nil || r.Refusals != 3 {
		t.Errorf("second refused: %+v", r)
	}
}
