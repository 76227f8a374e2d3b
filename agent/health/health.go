// Package health serves the agent's /healthz (JSON status) and /metrics
// (Prometheus) on a Unix socket of mode 0660 and, opt-in, on TCP behind a
// bearer token: both name the rules and count trips.
//
// Start with [NewMetrics] for the registry and counters the agent updates,
// then [Listen] and [Server.Serve] to serve them with a [Report] function,
// and [Fetch] to read a running agent's /healthz (tripwire status).
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Statuses of a Report.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded" // running, but some rule is not served as configured
	StatusStopping = "stopping"
)

// Report is the /healthz body.
type Report struct {
	Status      string     `json:"status"`
	UptimeS     float64    `json:"uptime_s"`
	QueueDepth  int        `json:"queue_depth"` // events between the watchers and the spool
	SpoolDepth  int        `json:"spool_depth"` // events not yet acknowledged by the collector
	LastAlertAt *time.Time `json:"last_alert_at"`
	Watchers    []Watcher  `json:"watchers"`
	Unserved    []string   `json:"unserved"` // rules the agent cannot serve, and why
	Reasons     []string   `json:"reasons"`  // why the status is degraded
	Version     string     `json:"version,omitempty"`
}

// Watcher is one running watcher.
type Watcher struct {
	Kind      string   `json:"kind"`
	Mechanism string   `json:"mechanism"`
	Missing   []string `json:"missing"`
	Rules     []string `json:"rules"`
}

// Handler serves /healthz from report and /metrics from gatherer.
func Handler(report func() Report, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		r := report()
		w.Header().Set("Content-Type", "application/json")
		if r.Status != StatusOK {
			// Still 200 for degraded: the agent is up; the body says what is
			// missing. Only a stopping agent fails a probe.
			if r.Status == StatusStopping {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Fetch reads /healthz from a running agent at address: a Unix socket path
// (starting with /) or, with token, a TCP host:port.
func Fetch(ctx context.Context, address string, token ...string) (Report, error) {
	var r Report
	body, status, err := Get(ctx, address, "/healthz", token...)
	if err != nil {
		return r, fmt.Errorf("reading agent health: %w", err)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("reading agent health: %s answered %s: %w", address, status, err)
	}
	return r, nil
}

// Get requests path (/healthz or /metrics) from a running agent at address (a
// Unix socket path or a TCP host:port), with a bearer token if one is given,
// and returns the body (at most 8 MiB) and the status line.
func Get(ctx context.Context, address, path string, token ...string) ([]byte, string, error) {
	client, url := http.DefaultClient, "http://"+address+path
	if strings.HasPrefix(address, "/") {
		client = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", address)
			},
		}}
		url = "http://tripwire" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	if len(token) > 0 && token[0] != "" {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if t, ok := client.Transport.(*http.Transport); ok {
		defer t.CloseIdleConnections()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, resp.Status, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return body, resp.Status, fmt.Errorf("%s answered %s: a valid bearer token is needed", address, resp.Status)
	}
	return body, resp.Status, nil
}

// Metrics are the agent's own counters; the shipper registers its metrics on
// Registry too.
type Metrics struct {
	Registry *prometheus.Registry

	Events         *prometheus.CounterVec // chained events by type and rule
	Losses         *prometheus.CounterVec // lost events by reason (kernel_overflow, ringbuf, spool_shed, ...)
	KernelOverflow prometheus.Counter     // FAN_Q_OVERFLOW and ring-buffer losses reported by watchers
	WatcherErrors  *prometheus.CounterVec // watcher failures by kind and mechanism
	Watchers       *prometheus.GaugeVec   // 1 per running watcher, by kind and mechanism
}

// NewMetrics builds a registry with the Go and process collectors and the
// agent's counters. Gauges read from the spool and pipeline are added by the
// caller with GaugeFunc, so they are computed at scrape time.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tripwire_agent_events_total", Help: "Events appended to the audit chain, by type and rule.",
		}, []string{"type", "rule"}),
		Losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tripwire_agent_lost_events_total", Help: "Events lost and reported as tripwire.agent.loss, by reason.",
		}, []string{"reason"}),
		KernelOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tripwire_agent_kernel_overflows_total", Help: "Events the kernel dropped (fanotify queue overflow, ring buffer full).",
		}),
		WatcherErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tripwire_agent_watcher_errors_total", Help: "Watcher failures: start errors and invalid events, by kind and mechanism.",
		}, []string{"kind", "mechanism"}),
		Watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tripwire_agent_watchers", Help: "Running watchers by kind and mechanism.",
		}, []string{"kind", "mechanism"}),
	}
	reg.MustRegister(m.Events, m.Losses, m.KernelOverflow, m.WatcherErrors, m.Watchers)
	return m
}

// GaugeFunc registers a gauge computed at scrape time.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// CounterFunc registers a counter read at scrape time.
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}
