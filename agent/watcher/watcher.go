// Package watcher defines what every tripwire mechanism provides: one small
// interface, implemented once per mechanism (fanotify, fsnotify, ebpf,
// honeyport, sockdiag, ...), each in a file named after it.
//
// A watcher is built from the rules it serves, started once, and reports
// trips and losses to a Sink until its context ends.
package watcher

import (
	"context"
	"log/slog"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Watcher watches one kind of tripwire with one mechanism.
type Watcher interface {
	// Kind is what it watches: "file", "process" or "network".
	Kind() string
	// Mechanism names the kernel or user-space mechanism in use, as carried in
	// events (tripwire.watcher.mechanism) and in /healthz.
	Mechanism() string
	// Missing lists the event attribute keys this mechanism cannot fill
	// (for example fsnotify cannot fill process.pid). Events carry it.
	Missing() []string
	// Start begins watching and returns once the watch is in place, or with an
	// error if it cannot be. Trips go to sink until ctx is done; then the
	// watcher releases everything it holds.
	Start(ctx context.Context, sink Sink) error
}

// Inheritor is a watcher that takes over what the watcher it replaces holds
// (a honeyport's bound sockets), so a reload never frees a decoy port that
// another process could bind. Inherit is called before Start; the previous
// watcher is stopped after Start returns.
type Inheritor interface {
	Inherit(prev Watcher)
}

// PartlyServed is a watcher that can start while some of its rules are not
// served (a decoy port another process holds); Unserved lists them, one line
// per rule with the reason, once Start has returned.
type PartlyServed interface {
	Unserved() []string
}

// Sink receives what watchers see. Implementations are safe for concurrent use
// and never drop silently: Trip blocks briefly under back-pressure and counts
// what it cannot take as loss.
type Sink interface {
	// Trip reports one trip. The watcher fills Name, Rule, Severity, Time,
	// Mechanism, Missing and what it knows of Process/File/Network; the
	// pipeline assigns AlertID, Seq and ObservedTime if unset.
	Trip(e *event.Event)
	// Lost reports n events the mechanism lost (kernel queue overflow, ring
	// buffer reserve failures, ...) with one of the event.Loss* reasons.
	Lost(reason string, n int64)
}

// Options are what every watcher constructor takes besides its rules.
type Options struct {
	// Mechanism forces a mechanism instead of the best available one, e.g.
	// "fsnotify" for file rules, "fanotify" or "proc_connector" for process
	// rules, "sockdiag" for observed ports. Empty picks the best and falls back,
	// logging why.
	Mechanism string
	// PollInterval is how often a polling mechanism (process rules on macOS
	// and Windows) lists the processes; 0 means DefaultProcessPollInterval.
	PollInterval time.Duration
	// ProcRoot is where /proc is mounted; empty means "/proc".
	ProcRoot string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}
