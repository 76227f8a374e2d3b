package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/watcher"
)

// buildWatchers creates the watchers for cfg's enabled rules; only kinds
// with rules get one.
func (a *Agent) buildWatchers(cfg *config.Config) ([]running, error) {
	opts := func(mech string) watcher.Options {
		return watcher.Options{Mechanism: mech, Logger: a.log}
	}
	var out []running
	if rules := cfg.FileRules(); len(rules) > 0 {
		w, err := watcher.NewFileWatcher(rules, opts(cfg.Watchers.File))
		if err != nil {
			return nil, watcherErr("file watcher", err)
		}
		var names []string
		for _, r := range rules {
			names = append(names, r.Name)
		}
		out = append(out, running{w: w, rules: names})
	}
	if rules := cfg.ProcessRules(); len(rules) > 0 {
		w, err := watcher.NewProcessWatcher(rules, opts(cfg.Watchers.Process))
		if err != nil {
			return nil, watcherErr("process watcher", err)
		}
		var names []string
		for _, r := range rules {
			names = append(names, r.Name)
		}
		out = append(out, running{w: w, rules: names})
	}
	if rules := cfg.NetworkRules(); len(rules) > 0 {
		ws, err := watcher.NewNetworkWatchers(rules, opts(cfg.Watchers.Network))
		if err != nil {
			return nil, watcherErr("network watcher", err)
		}
		for _, w := range ws {
			var names []string
			for _, r := range rules {
				// The honeyport watcher serves honeyport rules; the other serves observe rules.
				if (w.Mechanism() == "honeyport") == (r.Mode == "honeyport") {
					names = append(names, r.Name)
				}
			}
			out = append(out, running{w: w, rules: names})
		}
	}
	return out, nil
}

// startWatchers builds and starts watchers for cfg. On any error the ones
// already started are stopped: a rule that cannot be watched at all is an
// error at start, not a silent gap.
func (a *Agent) startWatchers(ctx context.Context, cfg *config.Config) error {
	ws, err := a.buildWatchers(cfg)
	if err != nil {
		a.metrics.WatcherErrors.WithLabelValues("", "").Inc()
		return err
	}
	for i := range ws {
		r := &ws[i]
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r.cancel = cancel
		sink := a.pipe.Sink(r.w.Mechanism(), r.w.Missing())
		if err := r.w.Start(wctx, sink); err != nil {
			a.metrics.WatcherErrors.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Inc()
			for _, started := range ws[:i+1] {
				started.cancel()
			}
			return fmt.Errorf("starting %s watcher (%s): %w", r.w.Kind(), r.w.Mechanism(), err)
		}
		a.log.Info("watcher started", "tripwire.watcher.kind", r.w.Kind(),
			"tripwire.watcher.mechanism", r.w.Mechanism(), "tripwire.missing_fields", r.w.Missing(),
			"tripwire.rule.name", r.rules)
	}
	unserved := watcher.Unserved(cfg.FileRules(), cfg.ProcessRules(), cfg.NetworkRules())
	for _, u := range unserved {
		a.log.Warn("rule cannot be served with this agent's capabilities", "tripwire.agent.unserved_rules", u)
	}
	// Rules a watcher dropped at start (a decoy it could not plant safely), logged
	// by the watcher.
	for _, r := range ws {
		if u, ok := r.w.(interface{ Unserved() []string }); ok {
			unserved = append(unserved, u.Unserved()...)
		}
	}
	a.mu.Lock()
	old := a.watchers
	a.watchers, a.unserved = ws, unserved
	for _, r := range old {
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(0)
	}
	for _, r := range ws {
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(1)
	}
	a.mu.Unlock()
	// The new watchers are in place before the old ones stop, so a reload
	// leaves no gap; a trip both see is coalesced into one.
	for _, r := range old {
		r.cancel()
	}
	return nil
}

func (a *Agent) stopWatchers() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.watchers {
		r.cancel()
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(0)
	}
	a.watchers = nil
}

func (a *Agent) stopExtras() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.extras {
		r.cancel()
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(0)
	}
	a.extras = nil
}

// startWatchersRetrying gives released ports and marks a moment to go.
func (a *Agent) startWatchersRetrying(ctx context.Context, cfg *config.Config) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = a.startWatchers(ctx, cfg); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func (a *Agent) watcherModes() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var parts []string
	for _, r := range slices.Concat(a.watchers, a.extras) {
		parts = append(parts, r.w.Kind()+"="+r.w.Mechanism())
	}
	return strings.Join(parts, ",")
}

// watcherErr prefixes err with the watcher it came from, unless the watcher
// package said so already.
func watcherErr(name string, err error) error {
	if strings.HasPrefix(err.Error(), name) {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}
