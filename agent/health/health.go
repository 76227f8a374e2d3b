// Package health serves the agent's /healthz (JSON status) and /metrics
// (Prometheus) on a loopback address.
//
// Start with [NewMetrics] for the registry and counters the agent updates,
// then [Handler] to serve them with a [Report] function, and [Fetch] to read
// a running agent's /healthz (tripwire status).
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// Fetch reads /healthz from a running agent at address (host:port).
func Fetch(ctx context.Context, address string) (Report, error) {
	var r Report
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+address+"/healthz", nil)
	if err != nil {
		return r, fmt.Errorf("reading agent health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("reading agent health: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, fmt.Errorf("reading agent health: %w", err)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("reading agent health: %s answered %s: %w", address, resp.Status, err)
	}
	return r, nil
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
