package agent

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// slot is one watcher the config asks for: file, process, honeyport or
// observe. A reload restarts a slot only when its spec (rules and forced
// mechanism) changed, so a network watcher that fails to restart never takes
// the file or process watchers with it.
type slot struct {
	name  string
	kind  string // file, process or network
	rules []string
	spec  any // compared with reflect.DeepEqual across reloads
	build func() (watcher.Watcher, error)
}

// plan lists the slots of cfg's enabled rules; only kinds with rules get one.
func (a *Agent) plan(cfg *config.Config) []slot {
	opts := func(mech string) watcher.Options {
		return watcher.Options{Mechanism: mech, Logger: a.log}
	}
	var out []slot
	if rules := cfg.FileRules(); len(rules) > 0 {
		out = append(out, slot{name: "file", kind: "file", rules: names(rules, func(r watcher.FileRule) string { return r.Name }),
			spec:  []any{rules, cfg.Watchers.File},
			build: func() (watcher.Watcher, error) { return watcher.NewFileWatcher(rules, opts(cfg.Watchers.File)) }})
	}
	if rules := cfg.ProcessRules(); len(rules) > 0 {
		out = append(out, slot{name: "process", kind: "process", rules: names(rules, func(r watcher.ProcessRule) string { return r.Name }),
			spec:  []any{rules, cfg.Watchers.Process},
			build: func() (watcher.Watcher, error) { return watcher.NewProcessWatcher(rules, opts(cfg.Watchers.Process)) }})
	}
	var honey, observe []watcher.NetworkRule
	for _, r := range cfg.NetworkRules() {
		if r.Mode == "honeyport" {
			honey = append(honey, r)
		} else {
			observe = append(observe, r)
		}
	}
	if len(honey) > 0 {
		out = append(out, slot{name: "honeyport", kind: "network", rules: names(honey, func(r watcher.NetworkRule) string { return r.Name }),
			spec:  []any{honey},
			build: func() (watcher.Watcher, error) { return watcher.NewHoneyportWatcher(honey, opts("")) }})
	}
	if len(observe) > 0 {
		out = append(out, slot{name: "observe", kind: "network", rules: names(observe, func(r watcher.NetworkRule) string { return r.Name }),
			spec:  []any{observe, cfg.Watchers.Network},
			build: func() (watcher.Watcher, error) { return watcher.NewObserveWatcher(observe, opts(cfg.Watchers.Network)) }})
	}
	return out
}

func names[R any](rules []R, name func(R) string) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, name(r))
	}
	return out
}

// applyRules brings the running watchers to cfg: slots whose spec is
// unchanged keep running, changed ones start their new watcher beside the old
// one (a honeyport takes over the old one's sockets) and only then stop the
// old one. A watcher that cannot be built or started leaves its rules
// unserved, reported, and never stops the agent; on a reload the previous
// watcher of that slot keeps running, since it still watches something.
func (a *Agent) applyRules(ctx context.Context, cfg *config.Config) {
	a.mu.Lock()
	old := map[string]running{}
	for _, r := range a.watchers {
		old[r.slot] = r
	}
	a.mu.Unlock()

	var next, stop []running
	var unserved []string
	for _, s := range a.plan(cfg) {
		prev, had := old[s.name]
		delete(old, s.name)
		if had && reflect.DeepEqual(prev.spec, s.spec) {
			next = append(next, prev)
			continue
		}
		r, err := a.startSlot(ctx, s, prev.w)
		if err != nil {
			a.log.Error("watcher cannot start; its rules are unserved", "tripwire.watcher.slot", s.name, "error", err)
			for _, rule := range s.rules {
				unserved = append(unserved, fmt.Sprintf("%s rule %q: %v", s.kind, rule, err))
			}
			if had {
				next = append(next, prev)
			}
			continue
		}
		next = append(next, r)
		if had {
			stop = append(stop, prev)
		}
	}
	for _, r := range old {
		stop = append(stop, r) // no rules of its kind left
	}
	unserved = append(unserved, watcher.Unserved(cfg.FileRules(), cfg.ProcessRules(), cfg.NetworkRules())...)
	logged := slices.Clone(unserved)
	// Rules a running watcher does not serve: a decoy port another process
	// holds, a decoy it could not plant safely. Asked again at each status
	// check (unservedNow): a honeyport binds a squatted port once it is free.
	for _, r := range next {
		if ps, ok := r.w.(watcher.PartlyServed); ok {
			logged = append(logged, ps.Unserved()...)
		}
	}
	for _, u := range logged {
		a.log.Warn("rule unserved", "tripwire.agent.unserved_rules", u)
	}
	a.mu.Lock()
	for _, r := range stop {
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(0)
	}
	for _, r := range next {
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(1)
	}
	a.watchers, a.unserved = next, unserved
	a.mu.Unlock()
	// The new watchers are in place before the old ones stop, so a reload
	// leaves no gap; a trip both see is coalesced into one.
	for _, r := range stop {
		r.cancel()
	}
	a.statusChanged()
}

// startSlot builds and starts the watcher of s; prev is the watcher it
// replaces, if any, whose sockets a honeyport takes over.
func (a *Agent) startSlot(ctx context.Context, s slot, prev watcher.Watcher) (running, error) {
	w, err := s.build()
	if err != nil {
		a.metrics.WatcherErrors.WithLabelValues(s.name, "").Inc()
		return running{}, err
	}
	if in, ok := w.(watcher.Inheritor); ok && prev != nil {
		in.Inherit(prev)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := w.Start(wctx, a.pipe.Sink(w.Mechanism(), w.Missing())); err != nil {
		cancel()
		a.metrics.WatcherErrors.WithLabelValues(w.Kind(), w.Mechanism()).Inc()
		return running{}, fmt.Errorf("starting %s watcher (%s): %w", w.Kind(), w.Mechanism(), err)
	}
	a.log.Info("watcher started", "tripwire.watcher.kind", w.Kind(),
		event.KeyMechanism, w.Mechanism(), event.KeyMissing, w.Missing(),
		event.KeyRule, s.rules)
	return running{slot: s.name, spec: s.spec, w: w, rules: s.rules, cancel: cancel}, nil
}

// stopWatchers stops every watcher, the rule watchers and the extras.
func (a *Agent) stopWatchers() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range slices.Concat(a.watchers, a.extras) {
		r.cancel()
		a.metrics.Watchers.WithLabelValues(r.w.Kind(), r.w.Mechanism()).Set(0)
	}
	a.watchers, a.extras = nil, nil
}

// unservedNow lists the rules not served now: those no watcher could take
// at the last start or reload, and what the running watchers report. The
// caller holds a.mu.
func (a *Agent) unservedNow() []string {
	out := slices.Clone(a.unserved)
	for _, r := range a.watchers {
		if ps, ok := r.w.(watcher.PartlyServed); ok {
			out = append(out, ps.Unserved()...)
		}
	}
	return out
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
