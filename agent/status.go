package agent

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// statusCheckInterval is how often the agent re-evaluates whether it is
// DEGRADED; rule changes and reloads re-evaluate at once.
const statusCheckInterval = 2 * time.Second

// agentStatus is ONLINE or DEGRADED, with why. Reasons are stable strings
// (no counters or times in them), so a change of reasons is a change of
// state worth chaining, and a steady state chains nothing.
type agentStatus struct {
	Status   string // event.StatusOnline or event.StatusDegraded
	Watchers string
	Unserved []string
	Reasons  []string
}

// currentStatus computes the status now. The agent is DEGRADED when a rule
// is unserved, when a rule is served by a mechanism that lacks what a
// tripwire needs (reads of a decoy, the actor), when shipping has failed for
// longer than transport.degraded_after, or when the spool is over its limit.
func (a *Agent) currentStatus() agentStatus {
	now := time.Now()
	a.mu.Lock()
	unserved := a.unservedNow()
	ws := slices.Clone(a.watchers)
	degradedAfter := a.cfg.Transport.DegradedAfter
	a.mu.Unlock()
	st := agentStatus{Status: event.StatusOnline, Watchers: a.watcherModes(), Unserved: unserved}
	for _, u := range unserved {
		st.Reasons = append(st.Reasons, "unserved: "+u)
	}
	for _, r := range ws {
		if lack := lacking(r); lack != "" {
			st.Reasons = append(st.Reasons, lack)
		}
	}
	if sh := a.shipping.Load(); sh != nil && degradedAfter > 0 && sh.FailingFor(now) > degradedAfter {
		st.Reasons = append(st.Reasons, fmt.Sprintf("shipping: the collector has not acknowledged anything for more than %s (transport.degraded_after)", degradedAfter))
	}
	if sp := a.spool.Stats(); sp.OverLimit {
		st.Reasons = append(st.Reasons, fmt.Sprintf("spool: over its limit (max_events %d, max_bytes %d): INFO and WARN events are being shed", a.cfg.Spool.MaxEvents, a.cfg.Spool.MaxBytes))
	}
	if len(st.Reasons) > 0 {
		st.Status = event.StatusDegraded
	}
	return st
}

// lacking says what a running watcher's mechanism cannot see that its rules
// rely on: a file tripwire is mostly a decoy that is read, and every trip
// should name who did it.
func lacking(r running) string {
	kind, mech := r.w.Kind(), r.w.Mechanism()
	rules := strings.Join(r.rules, ",")
	if kind == "file" && mech == "fsnotify" && runtime.GOOS != "linux" {
		// On Linux a second inotify instance gives fsnotify the reads.
		return fmt.Sprintf("lacking: file rules %s are served by fsnotify, which sees no reads and no actor on %s", rules, runtime.GOOS)
	}
	if slices.Contains(r.w.Missing(), "process.pid") {
		return fmt.Sprintf("lacking: %s rules %s are served by %s, which cannot name the actor", kind, rules, mech)
	}
	return ""
}

// observedStatus is currentStatus for readers outside the run loop
// (/healthz, heartbeats, metrics). A status they see that is not the one
// last chained asks the run loop to chain it now: what /healthz or a
// heartbeat said is then also in the audit log, even when it lasted less
// than statusCheckInterval (a collector back within a second).
func (a *Agent) observedStatus() agentStatus {
	st := a.currentStatus()
	a.mu.Lock()
	chained := a.status
	a.mu.Unlock()
	if st.Status != chained.Status || !slices.Equal(st.Reasons, chained.Reasons) {
		a.statusChanged()
	}
	return st
}

// statusChanged asks the run loop to re-evaluate the status now.
func (a *Agent) statusChanged() {
	select {
	case a.recheck <- struct{}{}:
	default:
	}
}

// checkStatus chains a tripwire.agent.status event when the status or its
// reasons changed: CRITICAL when a rule became unserved, WARN for other
// reasons to be DEGRADED, INFO when back to ONLINE; and sends a heartbeat so
// the Hosts page shows it without waiting for the next one.
func (a *Agent) checkStatus() {
	st := a.currentStatus()
	a.mu.Lock()
	prev := a.status
	changed := prev.Status != st.Status || !slices.Equal(prev.Reasons, st.Reasons)
	if changed {
		a.status = st
	}
	a.mu.Unlock()
	if !changed {
		return
	}
	sev := event.SeverityInfo
	if st.Status == event.StatusDegraded {
		sev = event.SeverityWarn
		for _, u := range st.Unserved {
			if !slices.Contains(prev.Unserved, u) {
				sev = event.SeverityCritical
			}
		}
		a.log.Warn("agent DEGRADED", "tripwire.agent.status_reasons", st.Reasons)
	} else {
		a.log.Info("agent ONLINE: nothing degraded any more")
	}
	a.pipe.Emit(&event.Event{
		Name: event.AgentStatus, Severity: sev, Time: time.Now().UTC(),
		Agent: &event.Agent{Status: st.Status, Watchers: st.Watchers, Unserved: strings.Join(st.Unserved, "; "),
			Reasons: strings.Join(st.Reasons, "; ")},
	})
	if sh := a.shipping.Load(); sh != nil {
		sh.BeatSoon()
	}
	if a.mgmt != nil {
		a.mgmt.SetHealth(st.Status == event.StatusOnline, st.Status, strings.Join(st.Reasons, "; "))
	}
}
