package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// procMechPoll polls the process table: the mechanism of process rules where
// the kernel offers no exec notification without a kernel extension or an
// entitlement (macOS, Windows), and the last fallback on Linux. A process
// that starts and exits between two polls is missed.
const procMechPoll = "poll"

// DefaultProcessPollInterval is how often the process table is polled.
const DefaultProcessPollInterval = time.Second

// procEntry is one row of the process table as a polling mechanism lists it.
type procEntry struct {
	PID, PPID int
	UID       int    // -1: unknown
	Start     uint64 // OS-specific start stamp; with PID it names one process
	Comm      string // executable name without directory (nor .exe)
	Exe       string // full executable path, once detailed
	Args      []byte // NUL-separated argv, once detailed; nil if unknown
}

// procKey names one process across polls: a PID reused by a new process has
// a new start stamp or name.
type procKey struct {
	pid   int
	start uint64
	comm  string
}

func (p *procEntry) key() procKey { return procKey{p.PID, p.Start, p.Comm} }

// procTable is an OS's process table: list is cheap and runs every poll;
// detail fills Exe, Args and UID of a new process only.
type procTable interface {
	list() ([]procEntry, error)
	detail(p *procEntry)
	// missing lists the attribute keys this OS's table cannot fill.
	missing() []string
}

// newProcs returns the entries of cur that seen does not hold, and leaves
// seen holding exactly cur, so exited processes are forgotten.
func newProcs(seen map[procKey]bool, cur []procEntry) []procEntry {
	var fresh []procEntry
	now := make(map[procKey]bool, len(cur))
	for _, p := range cur {
		k := p.key()
		now[k] = true
		if !seen[k] {
			fresh = append(fresh, p)
		}
	}
	clear(seen)
	for k := range now {
		seen[k] = true
	}
	return fresh
}

// execPoll is the process watcher that polls a procTable.
type execPoll struct {
	rules    *execRules
	table    procTable
	interval time.Duration
	procRoot string
	log      *slog.Logger

	polls, started, tripped, errors atomic.Uint64
}

func newExecPoll(rules *execRules, table procTable, opts Options) *execPoll {
	iv := opts.PollInterval
	if iv <= 0 {
		iv = DefaultProcessPollInterval
	}
	return &execPoll{rules: rules, table: table, interval: iv, procRoot: execProcRoot(opts), log: execNetLogger(opts)}
}

func (w *execPoll) Kind() string      { return "process" }
func (w *execPoll) Mechanism() string { return procMechPoll }
func (w *execPoll) Missing() []string { return w.table.missing() }

func (w *execPoll) Counters() map[string]uint64 {
	return map[string]uint64{"polls": w.polls.Load(), "started": w.started.Load(),
		"tripped": w.tripped.Load(), "poll_errors": w.errors.Load()}
}

// Start takes the first snapshot, so processes already running trip
// nothing, and polls until ctx ends.
func (w *execPoll) Start(ctx context.Context, sink Sink) error {
	cur, err := w.table.list()
	if err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	seen := map[procKey]bool{}
	newProcs(seen, cur)
	w.log.Info("process watcher started", "mechanism", procMechPoll, "interval", w.interval.String(),
		"names", len(w.rules.names))
	go func() {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.poll(seen, sink)
			}
		}
	}()
	return nil
}

func (w *execPoll) poll(seen map[procKey]bool, sink Sink) {
	cur, err := w.table.list()
	w.polls.Add(1)
	if err != nil {
		if w.errors.Add(1) == 1 {
			w.log.Warn("listing processes", "error", err)
		}
		return
	}
	at := time.Now()
	for _, p := range newProcs(seen, cur) {
		w.started.Add(1)
		w.table.detail(&p)
		for _, e := range w.trips(&p, at) {
			w.tripped.Add(1)
			sink.Trip(e)
		}
	}
}

// trips matches one new process against the rules. The time is the poll's:
// the process started at most one interval before.
func (w *execPoll) trips(p *procEntry, at time.Time) []*event.Event {
	s := &execSighting{PID: p.PID, PPID: p.PPID, UID: p.UID, Comm: p.Comm, Exe: p.Exe,
		Args: p.Args, Time: at}
	if p.Exe != "" {
		if _, id, size, err := statExec(p.Exe); err == nil {
			s.ID, s.Size = id, size
		}
	}
	proc := event.Process{PID: int64(p.PID), PPID: int64(p.PPID), ExecutablePath: p.Exe,
		Ancestry: execAncestry(w.procRoot, p.PID, p.PPID)}
	missing := append([]string(nil), w.table.missing()...)
	if p.Args != nil {
		proc.CommandLine, proc.ArgsTruncated = procfs.CommandLine(p.Args)
	} else {
		missing = appendMissing(missing, procfs.KeyCommandLine)
	}
	if p.Exe == "" {
		missing = appendMissing(missing, procfs.KeyExecutable)
	}
	if p.UID >= 0 {
		proc.UserID = strconv.Itoa(p.UID)
		proc.UserName = procfs.UserName(proc.UserID)
	} else {
		missing = appendMissing(missing, procfs.KeyUserID, procfs.KeyUserName)
	}
	return w.rules.trips(s, proc, procMechPoll, missing, w.procRoot)
}

func appendMissing(missing []string, keys ...string) []string {
	for _, k := range keys {
		if !strings.Contains(","+strings.Join(missing, ",")+",", ","+k+",") {
			missing = append(missing, k)
		}
	}
	return missing
}

// commOf is the name a process table shows for an executable path: its base
// name, without a Windows .exe suffix, so one rule name serves every OS.
func commOf(exe string) string {
	base := exe
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	if ext := filepath.Ext(base); strings.EqualFold(ext, ".exe") {
		base = base[:len(base)-len(ext)]
	}
	return base
}
