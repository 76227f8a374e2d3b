package plugin

import (
	"testing"

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
