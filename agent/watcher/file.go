package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// File watcher mechanisms.
const (
	MechanismFanotify = "fanotify"
	MechanismFsnotify = "fsnotify"
)

// fsnotifyMissing is what fsnotify cannot tell: who did it.
var fsnotifyMissing = []string{"process.command_line", "process.executable.path", "process.parent_pid",
	"process.pid", "user.id", "user.name"}

// NewFileWatcher returns the one watcher serving all file rules. It picks
// fanotify, which sees reads and names the actor, and falls back to fsnotify
// (writes, creates, deletes, renames and attribute changes, without the
// actor) when fanotify cannot start: no CAP_SYS_ADMIN, a kernel without
// FAN_REPORT_FID/FAN_RENAME (5.17+), or another OS. The fallback is logged at
// WARN, and Mechanism and Missing say which is in use. opts.Mechanism
// "fanotify" or "fsnotify" forces one; a forced mechanism that cannot start is
// an error. Honeyfiles (rules with Plant) are planted by Start before any watch
// is placed.
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
	switch opts.Mechanism {
	case MechanismFanotify:
		if err := fanotifyProbe(); err != nil {
			return nil, fmt.Errorf("file watcher: fanotify was asked for: %w", err)
		}
		w.mech, w.forced = MechanismFanotify, true
	case MechanismFsnotify:
		w.mech, w.forced = MechanismFsnotify, true
	case "":
		if err := fanotifyProbe(); err != nil {
			w.fallBack(err)
		} else {
			w.mech = MechanismFanotify
		}
	default:
		return nil, fmt.Errorf("file watcher: unknown mechanism %q: want %s or %s", opts.Mechanism, MechanismFanotify, MechanismFsnotify)
	}
	return w, nil
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

func (w *fileWatcher) fallBack(why error) {
	w.log.Warn("file watcher falls back to fsnotify: reads are not seen and events carry no actor",
		"tripwire.watcher.mechanism", MechanismFsnotify, "reason", why.Error(), "os", runtime.GOOS)
	w.mu.Lock()
	w.mech = MechanismFsnotify
	w.mu.Unlock()
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
	if w.Mechanism() == MechanismFanotify {
		fw := newFanotifyWatcher(w.rules, w.opts, w.log)
		err := fw.start(ctx, sink)
		if err == nil {
			w.setBackend(fw)
			w.log.Info("file watcher started", "tripwire.watcher.mechanism", MechanismFanotify, "rules", len(w.rules.rules))
			return nil
		}
		if w.forced {
			return err
		}
		w.fallBack(err)
	}
	fw := newFsnotifyWatcher(w.rules, w.log)
	if err := fw.start(ctx, sink); err != nil {
		return err
	}
	w.setBackend(fw)
	w.log.Info("file watcher started", "tripwire.watcher.mechanism", MechanismFsnotify, "rules", len(w.rules.rules),
		"tripwire.missing_fields", fsnotifyMissing)
	return nil
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
// neither mechanism timestamps its events.
func fileTrip(name event.Name, r *fileRule, mech, path, renameTo string, at time.Time, actor *event.Process, missing []string) *event.Event {
	return &event.Event{
		Name:         name,
		Severity:     r.Severity,
		Rule:         r.Name,
		Time:         at,
		ObservedTime: at,
		Mechanism:    mech,
		Missing:      missing,
		Process:      actor,
		File:         &event.File{Path: procfs.Printable(path), RenameTo: procfs.Printable(renameTo)},
	}
}
