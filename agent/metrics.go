package agent

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// observe updates metrics for each chained batch.
func (a *Agent) observe(batch []*event.Event) {
	for _, e := range batch {
		a.metrics.Events.WithLabelValues(string(e.Type()), e.Rule).Inc()
		switch e.Type() {
		case event.TypeFile, event.TypeProcess, event.TypeNetwork:
			a.lastAlert.Store(e.Time.UnixNano())
		}
		if e.Name == event.AgentLoss && e.Agent != nil {
			a.metrics.Losses.WithLabelValues(e.Agent.LossReason).Add(float64(e.Agent.LossCount))
			switch e.Agent.LossReason {
			case event.LossKernelOverflow, event.LossRingbuf:
				a.metrics.KernelOverflow.Add(float64(e.Agent.LossCount))
			case event.LossInvalidEvent:
				a.metrics.WatcherErrors.WithLabelValues(a.kindOf(e.Mechanism), e.Mechanism).Add(float64(e.Agent.LossCount))
			}
		}
	}
}

func (a *Agent) kindOf(mechanism string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.watchers {
		if r.w.Mechanism() == mechanism {
			return r.w.Kind()
		}
	}
	return ""
}

func (a *Agent) registerGauges() {
	m := a.metrics
	m.GaugeFunc("tripwire_agent_spool_depth", "Events in the spool, not yet acknowledged.", func() float64 { return float64(a.spool.Stats().Depth) })
	m.GaugeFunc("tripwire_agent_spool_bytes", "Stored event bytes in the spool.", func() float64 { return float64(a.spool.Stats().Bytes) })
	m.GaugeFunc("tripwire_agent_spool_over_limit", "1 while the spool exceeds its limits holding only CRITICAL and loss events.", func() float64 {
		if a.spool.Stats().OverLimit {
			return 1
		}
		return 0
	})
	m.CounterFunc("tripwire_agent_spool_shed_info_total", "INFO events shed from a full spool.", func() float64 { return float64(a.spool.Stats().ShedInfo) })
	m.CounterFunc("tripwire_agent_spool_shed_warn_total", "WARN events shed from a full spool.", func() float64 { return float64(a.spool.Stats().ShedWarn) })
	m.GaugeFunc("tripwire_agent_queue_depth", "Events between the watchers and the spool.", func() float64 { return float64(a.pipe.Stats().Queued) })
	m.CounterFunc("tripwire_agent_trips_total", "Trips received from watchers.", func() float64 { return float64(a.pipe.Stats().Trips) })
	m.CounterFunc("tripwire_agent_coalesced_total", "Repeated trips counted into summary events.", func() float64 { return float64(a.pipe.Stats().Coalesced) })
	m.CounterFunc("tripwire_agent_dropped_total", "Trips dropped because the pipeline was full (reported as loss).", func() float64 { return float64(a.pipe.Stats().Dropped) })
	m.GaugeFunc("tripwire_agent_degraded", "1 while the agent is DEGRADED (see /healthz reasons).", func() float64 {
		if a.observedStatus().Status == event.StatusDegraded {
			return 1
		}
		return 0
	})
	m.GaugeFunc("tripwire_agent_uptime_seconds", "Seconds since the agent started.", func() float64 { return time.Since(a.started).Seconds() })
}

// Report is the /healthz body.
func (a *Agent) Report() health.Report {
	st := a.observedStatus()
	a.mu.Lock()
	defer a.mu.Unlock()
	r := health.Report{
		Status:     health.StatusOK,
		UptimeS:    time.Since(a.started).Seconds(),
		QueueDepth: a.pipe.Stats().Queued,
		SpoolDepth: a.spool.Depth(),
		Unserved:   a.unservedNow(),
		Watchers:   []health.Watcher{},
		Version:    a.opts.Version,
	}
	if r.Unserved == nil {
		r.Unserved = []string{}
	}
	if ns := a.lastAlert.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		r.LastAlertAt = &t
	}
	for _, w := range slices.Concat(a.watchers, a.extras) {
		missing := slices.Clone(w.w.Missing())
		if missing == nil {
			missing = []string{}
		}
		rules := w.rules
		if rules == nil {
			rules = []string{}
		}
		r.Watchers = append(r.Watchers, health.Watcher{Kind: w.w.Kind(), Mechanism: w.w.Mechanism(), Missing: missing, Rules: rules})
	}
	r.Reasons = st.Reasons
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	if st.Status == event.StatusDegraded {
		r.Status = health.StatusDegraded
	}
	if a.stopping.Load() {
		r.Status = health.StatusStopping
	}
	return r
}

// watcherCounters exports what each running watcher's mechanism counted
// (kernel-side matches and ring-buffer losses, malformed records, ...) as
// tripwire_agent_watcher_counter; a reload restarts the counts, which
// Prometheus treats as a counter reset.
type watcherCounters struct{ a *Agent }

var watcherCounterDesc = prometheus.NewDesc("tripwire_agent_watcher_counter",
	"What a watcher's mechanism counted, by kind, mechanism and counter name.",
	[]string{"kind", "mechanism", "name"}, nil)

func (c watcherCounters) Describe(ch chan<- *prometheus.Desc) { ch <- watcherCounterDesc }

func (c watcherCounters) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	ws := append([]running(nil), c.a.watchers...)
	c.a.mu.Unlock()
	// Summed per label set: two watchers may share a kind and mechanism.
	sums := map[[3]string]uint64{}
	for _, r := range ws {
		if wc, ok := r.w.(watcher.Counters); ok {
			for name, v := range wc.Counters() {
				sums[[3]string{r.w.Kind(), r.w.Mechanism(), name}] += v
			}
		}
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(watcherCounterDesc, prometheus.CounterValue, float64(v), k[0], k[1], k[2])
	}
}
