package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// File watcher mechanisms, best first.
const (
	// MechanismEBPF: fentry programs on the kernel's security_file_open and
	// security_inode_* checks (bpf/file.bpf.c). Needs BTF and ftrace direct
	// calls, not the BPF LSM.
	MechanismEBPF = "ebpf"
	// MechanismEBPFLSM: the same programs as BPF LSM hooks, where "bpf" is an
	// active LSM.
	MechanismEBPFLSM = "ebpf_lsm"
	// MechanismEBPFSyscall: for kernels that refuse fentry and LSM programs.
	// Opens are caught by the same eBPF program at the exit of the open
	// system calls (their tracepoints); attribute changes, creates, deletes
	// and renames come from fanotify notification events (their events say
	// fanotify).
	MechanismEBPFSyscall = "ebpf_syscall"
	MechanismFanotify    = "fanotify"
	MechanismFsnotify    = "fsnotify"
)

// fileMechanisms is the order NewFileWatcher tries them in.
var fileMechanisms = []string{MechanismEBPF, MechanismEBPFLSM, MechanismEBPFSyscall, MechanismFanotify, MechanismFsnotify}

// fsnotifyMissing is what fsnotify cannot tell: who did it.
var fsnotifyMissing = procfs.NoActorKeys

// probeFileMechanism reports why mech cannot run here, or nil.
func probeFileMechanism(mech string) error {
	switch mech {
	case MechanismEBPF, MechanismEBPFLSM:
		return fileEBPFProbe(mech)
	case MechanismEBPFSyscall:
		if err := fileEBPFProbe(mech); err != nil {
			return err
		}
		return fanotifyProbe()
	case MechanismFanotify:
		return fanotifyProbe()
	}
	return nil
}

// NewFileWatcher returns the one watcher serving all file rules, on the best
// mechanism this host can run, in the order of fileMechanisms: eBPF on the
// kernel's file checks (fentry, then BPF LSM), which sees every open, change
// and actor without holding anyone; fanotify notification events, which see
// reads and the actor's PID but may miss a short-lived actor's details; and
// fsnotify (writes, creates, deletes, renames, attribute changes and, on
// Linux, reads, without the actor). Each fallback is logged at WARN, and Mechanism and Missing say
// which is in use. opts.Mechanism forces one; a forced mechanism that cannot
// start is an error. Honeyfiles (rules with Plant) are planted by Start
// before any watch is placed.
func NewFileWatcher(rules []FileRule, opts Options) (Watcher, error) {
	rs, err := compileFileRules(rules)
	if err != nil {
		return nil, err
	}
	w := &fileWatcher{rules: rs, opts: opts, log: opts.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.opts.ProcRoot == "" {
		w.opts.ProcRoot = procfs.DefaultRoot
	}
	if opts.Mechanism != "" {
		if !slices.Contains(fileMechanisms, opts.Mechanism) {
			return nil, fmt.Errorf("file watcher: unknown mechanism %q: want one of %s", opts.Mechanism, strings.Join(fileMechanisms, ", "))
		}
		if err := probeFileMechanism(opts.Mechanism); err != nil {
			return nil, fmt.Errorf("file watcher: %s was asked for: %w", opts.Mechanism, err)
		}
		w.mech, w.forced = opts.Mechanism, true
		return w, nil
	}
	w.mech = w.firstUsable(0)
	return w, nil
}

// firstUsable returns the first mechanism from fileMechanisms[from:] that
// probes well, logging why each one before it cannot run.
func (w *fileWatcher) firstUsable(from int) string {
	for _, m := range fileMechanisms[from:] {
		err := probeFileMechanism(m)
		if err == nil {
			if m == MechanismFsnotify {
				w.log.Warn("file watcher falls back to fsnotify: events carry no actor, and reads are seen on Linux only",
					"tripwire.watcher.mechanism", m, "os", runtime.GOOS)
			}
			return m
		}
		w.log.Warn("file watcher cannot use "+m+"; trying the next mechanism",
			"tripwire.watcher.mechanism", m, "reason", err.Error(), "os", runtime.GOOS)
	}
	return MechanismFsnotify
}

// fileWatcher starts the chosen mechanism and reports which one runs.
type fileWatcher struct {
	rules  *fileRules
	opts   Options
	log    *slog.Logger
	forced bool

	mu      sync.Mutex
	mech    string
	backend interface{ counters() map[string]uint64 }
}

func (w *fileWatcher) Kind() string { return "file" }

func (w *fileWatcher) Mechanism() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mech
}

func (w *fileWatcher) Missing() []string {
	if w.Mechanism() == MechanismFsnotify {
		return append([]string(nil), fsnotifyMissing...)
	}
	return nil
}

// Counters reports skipped records, unresolved paths and the like for
// /metrics.
func (w *fileWatcher) Counters() map[string]uint64 {
	w.mu.Lock()
	b := w.backend
	w.mu.Unlock()
	if b == nil {
		return map[string]uint64{}
	}
	return b.counters()
}

func (w *fileWatcher) Start(ctx context.Context, sink Sink) error {
	if err := plantHoneyfiles(w.rules, w.log); err != nil {
		return err
	}
	if err := w.rules.classify(); err != nil {
		return err
	}
	for {
		mech := w.Mechanism()
		b, err := w.startBackend(ctx, mech, sink)
		if err == nil {
			w.setBackend(b)
			w.log.Info("file watcher started", "tripwire.watcher.mechanism", mech, "rules", len(w.rules.rules),
				event.KeyMissing, w.Missing())
			return nil
		}
		i := slices.Index(fileMechanisms, mech)
		if w.forced || i == len(fileMechanisms)-1 {
			return err
		}
		w.log.Warn("file watcher cannot start "+mech+"; trying the next mechanism",
			"tripwire.watcher.mechanism", mech, "reason", err.Error())
		next := w.firstUsable(i + 1)
		w.mu.Lock()
		w.mech = next
		w.mu.Unlock()
	}
}

func (w *fileWatcher) startBackend(ctx context.Context, mech string, sink Sink) (interface{ counters() map[string]uint64 }, error) {
	switch mech {
	case MechanismEBPF, MechanismEBPFLSM:
		b := newFileEBPF(w.rules, mech, w.opts, w.log)
		return b, b.start(ctx, sink)
	case MechanismEBPFSyscall:
		// The eBPF half gets its own context: if the fanotify half cannot
		// start, it must stop before the next mechanism starts.
		octx, stopOpens := context.WithCancel(ctx)
		opens := newFileEBPF(w.rules, mech, w.opts, w.log)
		if err := opens.start(octx, sink); err != nil {
			stopOpens()
			return nil, err
		}
		rest := newFanotifyNoOpens(w.rules, w.opts, w.log)
		rest.replaced = opens.rewatch
		if err := rest.start(ctx, sink); err != nil {
			stopOpens()
			return nil, fmt.Errorf("ebpf_syscall's fanotify half: %w", err)
		}
		context.AfterFunc(ctx, stopOpens)
		return pairedBackends{opens, rest}, nil
	case MechanismFanotify:
		b := newFanotifyWatcher(w.rules, w.opts, w.log)
		return b, b.start(ctx, sink)
	}
	b := newFsnotifyWatcher(w.rules, w.log)
	return b, b.start(ctx, sink)
}

// pairedBackends reports the counters of both halves of ebpf_syscall.
type pairedBackends [2]interface{ counters() map[string]uint64 }

func (p pairedBackends) counters() map[string]uint64 {
	out := p[0].counters()
	for k, v := range p[1].counters() {
		out["fanotify_"+k] = v
	}
	return out
}

func (w *fileWatcher) setBackend(b interface{ counters() map[string]uint64 }) {
	w.mu.Lock()
	w.backend = b
	w.mu.Unlock()
}

// fileRule is a FileRule ready for matching.
type fileRule struct {
	FileRule
	excl exclusionSet
}

// fileRules finds the rule a path falls under. Paths are classified as files
// or directories at Start, after honeyfiles are planted.
type fileRules struct {
	rules     []*fileRule
	exact     map[string]*fileRule // every configured path: files and directories themselves
	dirs      map[string]*fileRule // configured directories: their direct children
	recursive map[string]*fileRule // recursive directories: every descendant
	files     map[string]*fileRule // configured files
	refused   []string             // decoys not planted because another user could redirect them (plantHoneyfiles)
}

func compileFileRules(rules []FileRule) (*fileRules, error) {
	rs := &fileRules{exact: map[string]*fileRule{}}
	for _, r := range rules {
		if r.Name == "" {
			return nil, errors.New("file rule without a name")
		}
		if len(r.Paths) == 0 {
			return nil, fmt.Errorf("file rule %q: no paths", r.Name)
		}
		cr := &fileRule{FileRule: r, excl: compileExclusions(r.Exclude)}
		cr.Paths = make([]string, len(r.Paths))
		for i, p := range r.Paths {
			if !filepath.IsAbs(p) {
				return nil, fmt.Errorf("file rule %q: path %q is not absolute", r.Name, p)
			}
			cr.Paths[i] = filepath.Clean(p)
			if prev := rs.exact[cr.Paths[i]]; prev != nil {
				return nil, fmt.Errorf("file rule %q: path %s is also in rule %q", r.Name, cr.Paths[i], prev.Name)
			}
			rs.exact[cr.Paths[i]] = cr
		}
		rs.rules = append(rs.rules, cr)
	}
	return rs, nil
}

// classify stats every configured path: a path that does not exist cannot be
// watched, and is an error rather than a silent gap.
func (rs *fileRules) classify() error {
	rs.dirs, rs.recursive, rs.files = map[string]*fileRule{}, map[string]*fileRule{}, map[string]*fileRule{}
	for _, r := range rs.rules {
		for _, p := range r.Paths {
			fi, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("file rule %q: %w", r.Name, err)
			}
			switch {
			case !fi.IsDir():
				rs.files[p] = r
			case r.Recursive:
				rs.recursive[p] = r
				rs.dirs[p] = r
			default:
				rs.dirs[p] = r
			}
		}
	}
	return nil
}

// match returns the rule whose paths cover p, the most specific first.
func (rs *fileRules) match(p string) *fileRule {
	if r := rs.exact[p]; r != nil {
		return r
	}
	d := filepath.Dir(p)
	if r := rs.dirs[d]; r != nil {
		return r
	}
	for {
		if r := rs.recursive[d]; r != nil {
			return r
		}
		up := filepath.Dir(d)
		if up == d {
			return nil
		}
		d = up
	}
}

// fileTrip builds one file event; Time and ObservedTime are the same because
// neither mechanism timestamps its events. fanotify and inotify merge an
// access, change or attribute event into an identical one still queued, so
// theirs say the count is a lower bound.
func fileTrip(name event.Name, r *fileRule, mech, path, renameTo string, at time.Time, actor *event.Process, missing []string) *event.Event {
	merges := (mech == MechanismFanotify || mech == MechanismFsnotify) &&
		(name == event.FileAccess || name == event.FileModify || name == event.FileAttrib)
	return &event.Event{
		CountLowerBound: merges,
		Name:            name,
		Severity:        r.Severity,
		Rule:            r.Name,
		Time:            at,
		ObservedTime:    at,
		Mechanism:       mech,
		Missing:         missing,
		Process:         actor,
		File:            &event.File{Path: procfs.Printable(path), RenameTo: procfs.Printable(renameTo)},
	}
}
