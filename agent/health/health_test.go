package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	m := NewMetrics()
	m.Events.WithLabelValues("file", "secrets").Add(3)
	m.GaugeFunc("tripwire_agent_spool_depth", "test", func() float64 { return 7 })
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	status := StatusOK
	srv := httptest.NewServer(Handler(func() Report {
		return Report{Status: status, UptimeS: 1.5, QueueDepth: 2, SpoolDepth: 7, LastAlertAt: &at,
			Watchers: []Watcher{{Kind: "file", Mechanism: "fanotify", Missing: []string{}, Rules: []string{"secrets"}}},
			Unserved: []string{}}
	}, m.Registry))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	r, err := Fetch(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusOK || r.SpoolDepth != 7 || !r.LastAlertAt.Equal(at) || r.Watchers[0].Mechanism != "fanotify" {
		t.Errorf("report %+v", r)
	}
	// The wire form uses the documented keys.
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, k := range []string{"status", "uptime_s", "queue_depth", "last_alert_at", "watchers", "unserved"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("/healthz lacks %q: %v", k, raw)
		}
	}

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`tripwire_agent_events_total{rule="secrets",type="file"} 3`, "tripwire_agent_spool_depth 7", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	status = StatusStopping
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stopping agent answered %s", resp.Status)
	}
	if resp, err := http.Post(srv.URL+"/healthz", "text/plain", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /healthz: %s", resp.Status)
		}
	}
}
