package main

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tripwire-sec/tripwire/agent/health"
)

// TestStatusExitCodes: status exits 0 only for ok. The agent behind the
// address is a health.Handler (the agent's own handler) with a report that
// says degraded, which a real agent says when a rule cannot be served.
func TestStatusExitCodes(t *testing.T) {
	for _, tc := range []struct {
		status string
		code   int
	}{{health.StatusOK, 0}, {health.StatusDegraded, 1}, {health.StatusStopping, 1}} {
		srv := httptest.NewServer(health.Handler(func() health.Report {
			return health.Report{Status: tc.status, Unserved: []string{`rule "nc": process watcher needs CAP_BPF`},
				Watchers: []health.Watcher{{Kind: "network", Mechanism: "honeyport", Rules: []string{"db"}}}}
		}, prometheus.NewRegistry()))
		var out, errOut bytes.Buffer
		code := run([]string{"status", "--address", strings.TrimPrefix(srv.URL, "http://")}, &out, &errOut)
		srv.Close()
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s%s)", tc.status, code, tc.code, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), "status: "+tc.status+"\n") ||
			!strings.Contains(out.String(), "unserved: rule \"nc\"") ||
			!strings.Contains(out.String(), "watcher: network honeyport rules=db missing=none") {
			t.Errorf("%s: output %q", tc.status, out.String())
		}
	}
}
