package watcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func (w *fanotifyWatcher) handleEvent(m fanMeta, info []byte, now time.Time, seen time.Duration, sink Sink) {
	if m.mask&unix.FAN_Q_OVERFLOW != 0 {
		w.overflows.Add(1)
		// The kernel drops events past its queue limit without counting them;
		// at least one was lost. Open sessions may have lost their close.
		sink.Lost(event.LossKernelOverflow, 1)
		clear(w.sessions)
		return
	}
	if m.pid == w.self {
		return // the agent's own accesses: planting, marking, resolving
	}
	recs, err := parseFanInfo(info)
	if err != nil {
		w.malformed.Add(1)
		return
	}
	t := fanTrip{w: w, pid: m.pid, now: now, seen: seen, sink: sink}
	if m.mask&unix.FAN_RENAME != 0 {
		w.handleRename(m.mask, recs, &t)
	}
	if m.mask&(unix.FAN_CREATE|unix.FAN_DELETE) != 0 {
		w.handleEntry(m.mask, recs, &t)
	}
	if m.mask&fanFileMask != 0 {
		w.handleContent(m.mask, recs, &t)
	}
}

// dirPath resolves a directory handle to its path.
func (w *fanotifyWatcher) dirPath(f *fanFID) (string, bool) {
	if n := w.nodes[string(f.key)]; n != nil {
		return n.path, true
	}
	return w.openByHandle(f)
}

// openByHandle asks the kernel for the current path of a handle the map does
// not know. A deleted directory has no path.
func (w *fanotifyWatcher) openByHandle(f *fanFID) (string, bool) {
	mfd, ok := w.mounts[f.fsid()]
	if !ok {
		w.unresolved.Add(1)
		return "", false
	}
	fd, err := unix.OpenByHandleAt(mfd, f.handle(), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		w.unresolved.Add(1)
		return "", false
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || strings.HasSuffix(p, " (deleted)") || !filepath.IsAbs(p) {
		w.unresolved.Add(1)
		return "", false
	}
	return p, true
}

// entryRule is the rule covering the entry name of directory n.
func entryRule(n *fanNode, name string) *fileRule {
	if n == nil {
		return nil
	}
	if r := n.files[name]; r != nil {
		return r
	}
	if r := n.roots[name]; r != nil {
		return r
	}
	if n.dir && n.rule != nil {
		return n.rule
	}
	return nil
}

// handleContent: opens, reads, writes, closes and attribute changes of a file
// or directory.
func (w *fanotifyWatcher) handleContent(mask uint64, recs fanRecords, t *fanTrip) {
	if recs.dfid == nil {
		w.malformed.Add(1)
		return
	}
	var r *fileRule
	var path string
	if recs.dfid.name == "." {
		// The directory itself (listed, or its attributes changed).
		var ok bool
		if path, ok = w.dirPath(recs.dfid); !ok {
			return
		}
		if n := w.nodes[string(recs.dfid.key)]; n != nil && n.rule != nil {
			r = n.rule
		}
	} else {
		var marked *fanNode
		if recs.fid != nil {
			if n := w.nodes[string(recs.fid.key)]; n != nil && !n.dir && n.rule != nil {
				marked, r = n, n.rule // a marked file, wherever it now is
			}
		}
		if dir, ok := w.dirPath(recs.dfid); ok {
			path = filepath.Join(dir, recs.dfid.name)
		} else if marked != nil {
			path = marked.path
		} else {
			return
		}
		if r == nil {
			r = entryRule(w.nodes[string(recs.dfid.key)], recs.dfid.name)
		}
	}
	if r == nil {
		r = w.rules.match(path)
	}
	if r == nil {
		w.unmatched.Add(1)
		return
	}
	key := fanSession{pid: t.pid, path: path}
	st, open := w.sessions[key]
	if mask&unix.FAN_OPEN != 0 {
		// Every open starts a session. The kernel merges a process's unread
		// events on one file, so a close and the next open and read can
		// arrive as one mask: a read after a new open is a new access.
		open, st = true, 0
	}
	if mask&unix.FAN_ACCESS != 0 && st&sessAccessed == 0 {
		t.emit(event.FileAccess, r, path, "")
		st |= sessAccessed
	}
	if mask&unix.FAN_MODIFY != 0 && st&sessModified == 0 {
		t.emit(event.FileModify, r, path, "")
		st |= sessModified
	}
	if mask&unix.FAN_ATTRIB != 0 {
		t.emit(event.FileAttrib, r, path, "")
	}
	// Closing ends the session: an open for writing with no write (a
	// truncation, a touch) is a modify; an open for reading with no read is
	// still an access.
	if mask&unix.FAN_CLOSE_WRITE != 0 && st&sessModified == 0 {
		t.emit(event.FileModify, r, path, "")
		st |= sessModified
	}
	if mask&unix.FAN_CLOSE_NOWRITE != 0 && st&(sessAccessed|sessModified) == 0 {
		t.emit(event.FileAccess, r, path, "")
	}
	switch {
	case mask&(unix.FAN_CLOSE_WRITE|unix.FAN_CLOSE_NOWRITE) != 0:
		delete(w.sessions, key)
	case open || st != 0:
		if len(w.sessions) >= fanMaxSessions {
			// Closes lost to an overflow would otherwise pile up; the cost
			// of forgetting is one repeated trip per open file.
			clear(w.sessions)
		}
		w.sessions[key] = st
	}
}

// handleEntry: an entry created in or deleted from a watched directory.
func (w *fanotifyWatcher) handleEntry(mask uint64, recs fanRecords, t *fanTrip) {
	if recs.dfid == nil || recs.dfid.name == "." {
		w.malformed.Add(1)
		return
	}
	dir, ok := w.dirPath(recs.dfid)
	if !ok {
		return
	}
	path := filepath.Join(dir, recs.dfid.name)
	n := w.nodes[string(recs.dfid.key)]
	r := entryRule(n, recs.dfid.name)
	if r == nil {
		r = w.rules.match(path)
	}
	if r == nil {
		w.unmatched.Add(1)
		return
	}
	if mask&unix.FAN_CREATE != 0 {
		reportFound := w.adopt(n, recs.dfid.name, path, mask, t)
		t.emit(event.FileCreate, r, path, "")
		reportFound()
	}
	if mask&unix.FAN_DELETE != 0 {
		t.emit(event.FileDelete, r, path, "")
		if mask&unix.FAN_ONDIR != 0 {
			w.forget(path)
		}
	}
}

// handleRename: FAN_RENAME carries the old and the new name, each only when
// its directory is watched. A move out of the watch is a rename to wherever
// the file now is (asked of the kernel by its handle); a move in from an
// unwatched directory, whose old name nothing recorded, is a create.
func (w *fanotifyWatcher) handleRename(mask uint64, recs fanRecords, t *fanTrip) {
	if recs.oldDir == nil && recs.newDir == nil {
		w.malformed.Add(1)
		return
	}
	var oldPath, newPath string
	var oldNode, newNode *fanNode
	var oldName, newName string
	if recs.oldDir != nil {
		oldNode, oldName = w.nodes[string(recs.oldDir.key)], recs.oldDir.name
		if d, ok := w.dirPath(recs.oldDir); ok {
			oldPath = filepath.Join(d, oldName)
		}
	}
	if recs.newDir != nil {
		newNode, newName = w.nodes[string(recs.newDir.key)], recs.newDir.name
		if d, ok := w.dirPath(recs.newDir); ok {
			newPath = filepath.Join(d, newName)
		}
	} else if recs.fid != nil {
		newPath, _ = w.openByHandle(recs.fid)
	}
	var r *fileRule
	if recs.fid != nil {
		if n := w.nodes[string(recs.fid.key)]; n != nil && !n.dir && n.rule != nil {
			r = n.rule
			if newPath != "" {
				n.path = newPath
			}
		}
	}
	for _, c := range []func() *fileRule{
		func() *fileRule { return entryRule(oldNode, oldName) },
		func() *fileRule { return entryRule(newNode, newName) },
		func() *fileRule { return w.matchPath(oldPath) },
		func() *fileRule { return w.matchPath(newPath) },
	} {
		if r == nil {
			r = c()
		}
	}
	if r == nil {
		w.unmatched.Add(1)
		return
	}
	if oldPath == "" && newPath == "" {
		return
	}
	if mask&unix.FAN_ONDIR != 0 && oldPath != "" && newPath != "" {
		w.move(oldPath, newPath)
	}
	reportFound := func() {}
	if newPath != "" && recs.newDir != nil {
		reportFound = w.adopt(newNode, newName, newPath, mask, t)
	}
	if oldPath != "" {
		t.emit(event.FileRename, r, oldPath, newPath)
	} else {
		t.emit(event.FileCreate, r, newPath, "")
	}
	reportFound()
}

func (w *fanotifyWatcher) matchPath(p string) *fileRule {
	if p == "" {
		return nil
	}
	return w.rules.match(p)
}

// adopt watches what just appeared at path in directory n: a new
// subdirectory of a recursive tree (with all it already holds), or a file or
// directory put where a watched one was (a replaced decoy). It runs before the
// event is emitted, so whoever sees the trip can rely on the new watch. It
// returns a function that reports what the new subdirectory already held.
func (w *fanotifyWatcher) adopt(n *fanNode, name, path string, mask uint64, t *fanTrip) (reportFound func()) {
	reportFound = func() {}
	if n == nil {
		return
	}
	if r := n.files[name]; r != nil {
		if err := w.markFile(path, r); err != nil {
			w.markErrors.Add(1)
			w.log.Warn("cannot watch replaced file", "file.path", path, "error", err.Error())
		}
		if w.replaced != nil {
			w.replaced()
		}
		return
	}
	if r := n.roots[name]; r != nil && mask&unix.FAN_ONDIR != 0 {
		if w.replaced != nil {
			defer w.replaced()
		}
		if err := w.markDir(path, r, true); err != nil {
			w.markErrors.Add(1)
			w.log.Warn("cannot watch replaced directory", "file.path", path, "error", err.Error())
			return
		}
		if r.Recursive {
			w.markTree(path, r, nil)
		}
		return
	}
	if mask&unix.FAN_ONDIR == 0 || !n.recursive {
		return
	}
	r := n.rule
	if err := w.markDir(path, r, true); err != nil {
		w.markErrors.Add(1)
		w.log.Warn("cannot watch new directory", "file.path", path, "error", err.Error())
		return
	}
	var found []string
	w.markTree(path, r, func(p string) { found = append(found, p) })
	return func() {
		// Created between the directory's creation and its mark: no event
		// could report them, and who made them is unknown.
		for _, p := range found {
			w.synthesized.Add(1)
			t.sink.Trip(fileTrip(event.FileCreate, r, MechanismFanotify, p, "", t.now, nil, fanUnknownActor))
		}
	}
}

// fanUnknownActor: what a synthesized event cannot say.
var fanUnknownActor = procfs.NoActorKeys

// move rewrites the paths of nodes under a renamed directory.
func (w *fanotifyWatcher) move(from, to string) {
	for _, n := range w.nodes {
		if n.path == from {
			n.path = to
		} else if strings.HasPrefix(n.path, from+"/") {
			n.path = to + n.path[len(from):]
		}
	}
}

// forget drops nodes under a deleted directory; their handles are dead.
func (w *fanotifyWatcher) forget(path string) {
	for k, n := range w.nodes {
		if n.path == path || strings.HasPrefix(n.path, path+"/") {
			delete(w.nodes, k)
		}
	}
}
