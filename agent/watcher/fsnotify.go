package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// fsnotifyWatcher is the portable fallback (inotify, kqueue,
// ReadDirectoryChangesW). It sees writes, creates, deletes, renames (the old
// name; the new one arrives as a create) and attribute changes, and on Linux
// reads (fsnotify_reads_linux.go: inotify's IN_ACCESS, which the library
// does not expose), but never who acted: every event
// lists the actor fields in Missing, and exclusions, which name actors, cannot
// apply, so nothing is excluded.
type fsnotifyWatcher struct {
	rules *fileRules
	log   *slog.Logger

	watching               map[string]bool // directories added to the fsnotify watcher
	reads                  *inotifyReads   // Linux: reads; nil elsewhere
	unmatched, watchErrs   atomic.Uint64
	overflows, synthesized atomic.Uint64
}

func newFsnotifyWatcher(rs *fileRules, log *slog.Logger) *fsnotifyWatcher {
	return &fsnotifyWatcher{rules: rs, log: log, watching: map[string]bool{}}
}

func (w *fsnotifyWatcher) counters() map[string]uint64 {
	return map[string]uint64{
		"unmatched_events":   w.unmatched.Load(),
		"watch_errors":       w.watchErrs.Load(),
		"kernel_overflows":   w.overflows.Load(),
		"synthesized_events": w.synthesized.Load(),
	}
}

func (w *fsnotifyWatcher) start(ctx context.Context, sink Sink) error {
	for _, r := range w.rules.rules {
		if !r.excl.empty() {
			w.log.Warn("fsnotify cannot tell who acted: this rule's exclusions cannot apply and every trip is reported",
				event.KeyRule, r.Name)
		}
	}
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("starting fsnotify: %w", err)
	}
	if w.reads, err = newInotifyReads(w.log); err != nil {
		w.log.Warn("reads of watched files are not seen", "error", err.Error())
		w.reads = nil
	}
	for p := range w.rules.files {
		w.watchReads(p, false)
	}
	// A watched file is watched through its directory, as fsnotify advises:
	// a file replaced by rename keeps being watched, and its removal is seen.
	for p := range w.rules.files {
		if err := w.add(fw, filepath.Dir(p)); err != nil {
			fw.Close()
			return err
		}
	}
	for p, r := range w.rules.dirs {
		if err := w.add(fw, p); err != nil {
			fw.Close()
			return err
		}
		if r.Recursive {
			w.addTree(fw, p, nil, nil)
		}
	}
	if w.reads != nil {
		go w.reads.run(w.rules, sink, func() { w.unmatched.Add(1) })
		go func() { <-ctx.Done(); w.reads.close() }()
	}
	go w.run(ctx, fw, sink)
	return nil
}

// watchReads adds a read watch where the platform has one.
func (w *fsnotifyWatcher) watchReads(path string, dir bool) {
	if w.reads == nil {
		return
	}
	if err := w.reads.watch(path, dir); err != nil {
		w.watchErrs.Add(1)
		w.log.Warn("cannot watch reads", "file.path", path, "error", err.Error())
	}
}

func (w *fsnotifyWatcher) add(fw *fsnotify.Watcher, dir string) error {
	if w.watching[dir] {
		return nil
	}
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("watching %s with fsnotify: %w", dir, err)
	}
	w.watching[dir] = true
	if w.rules.dirs[dir] != nil || w.rules.match(filepath.Join(dir, "x")) != nil {
		w.watchReads(dir, true) // a watched directory, not only a watched file's parent
	}
	return nil
}

// addTree watches every directory under root. When trip is set (a directory
// that just appeared), entries already inside were created before the watch
// could see them, so each is reported as a create.
func (w *fsnotifyWatcher) addTree(fw *fsnotify.Watcher, root string, r *fileRule, trip func(*event.Event)) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			w.watchErrs.Add(1)
			return nil
		}
		if p == root {
			return nil
		}
		if trip != nil {
			w.synthesized.Add(1)
			trip(fileTrip(event.FileCreate, r, MechanismFsnotify, p, "", time.Now(), nil, fsnotifyMissing))
		}
		if d.IsDir() {
			if err := w.add(fw, p); err != nil {
				w.watchErrs.Add(1)
				w.log.Warn("cannot watch new directory", "file.path", p, "error", err.Error())
			}
		}
		return nil
	})
}

func (w *fsnotifyWatcher) run(ctx context.Context, fw *fsnotify.Watcher, sink Sink) {
	defer fw.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			w.handle(fw, ev, sink)
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.overflows.Add(1)
				sink.Lost(event.LossKernelOverflow, 1)
				continue
			}
			w.watchErrs.Add(1)
			w.log.Warn("fsnotify error", "error", err.Error())
		}
	}
}

func (w *fsnotifyWatcher) handle(fw *fsnotify.Watcher, ev fsnotify.Event, sink Sink) {
	r := w.rules.match(ev.Name)
	if r == nil {
		// A sibling of a watched file, seen through its directory.
		w.unmatched.Add(1)
		return
	}
	now := time.Now()
	trip := func(name event.Name) {
		sink.Trip(fileTrip(name, r, MechanismFsnotify, ev.Name, "", now, nil, fsnotifyMissing))
	}
	if ev.Has(fsnotify.Create) {
		// Watch a new subdirectory before reporting it, so whoever sees the
		// trip can rely on the watch; then report what it already held.
		var found []*event.Event
		if r.Recursive {
			if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
				if err := w.add(fw, ev.Name); err != nil {
					w.watchErrs.Add(1)
					w.log.Warn("cannot watch new directory", "file.path", ev.Name, "error", err.Error())
				}
				w.addTree(fw, ev.Name, r, func(e *event.Event) { found = append(found, e) })
			}
		}
		trip(event.FileCreate)
		for _, e := range found {
			sink.Trip(e)
		}
	}
	if ev.Has(fsnotify.Write) {
		trip(event.FileModify)
	}
	if ev.Has(fsnotify.Chmod) {
		trip(event.FileAttrib)
	}
	if ev.Has(fsnotify.Rename) {
		trip(event.FileRename)
		delete(w.watching, ev.Name)
	}
	if ev.Has(fsnotify.Remove) {
		trip(event.FileDelete)
		delete(w.watching, ev.Name)
	}
}
