package watcher

import (
	"errors"
	"slices"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

type fanActor struct {
	procfs.Actor
	missing []string
}

// fanTrip emits trips for one event, reading the actor at most once.
type fanTrip struct {
	w    *fanotifyWatcher
	pid  int32
	now  time.Time
	seen time.Duration
	sink Sink
}

func (t *fanTrip) emit(name event.Name, r *fileRule, path, renameTo string) {
	a, ok := t.w.actors[t.pid]
	if !ok {
		a = t.w.actor(t.pid, t.now, t.seen)
		t.w.actors[t.pid] = a
	}
	if r.excl.excludes(&a.Process, a.Comm) {
		t.w.excluded.Add(1)
		return
	}
	proc := a.Process
	t.sink.Trip(fileTrip(name, r, MechanismFanotify, path, renameTo, t.now, &proc, a.missing))
}

// cachedActor is a fully read actor, reused while the same process (PID,
// start time and command name: an exec changes the name) keeps tripping.
type cachedActor struct {
	fanActor
	at time.Time
	// opened: read by the capture loop while the process waited in open(2).
	// Its user name and ancestry are filled by the read loop on first use.
	opened   bool
	complete bool
}

func (c *cachedActor) ttl() time.Duration {
	if c.opened {
		return permActorTTL
	}
	return fanActorTTL
}

func (w *fanotifyWatcher) cachedActor(pid int32) (cachedActor, bool) {
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	c, ok := w.actorCache[pid]
	return c, ok
}

func (w *fanotifyWatcher) cacheActor(pid int32, c cachedActor) {
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	if _, ok := w.actorCache[pid]; !ok && len(w.actorCache) >= fanActorCacheSize {
		clear(w.actorCache)
	}
	w.actorCache[pid] = c
}

// actor reads who acted. A burst of trips usually comes from few processes:
// a cached actor costs one read of /proc/<pid>/stat instead of about twenty
// system calls, and outlives the process's exit while it is a zombie.
func (w *fanotifyWatcher) actor(pid int32, now time.Time, seen time.Duration) fanActor {
	if c, ok := w.cachedActor(pid); ok && now.Sub(c.at) < c.ttl() {
		st, err := procfs.ReadStat(w.procRoot, int(pid))
		switch {
		case err == nil && st.StartTime == c.StartTime && (st.Comm == c.Comm || c.opened):
			// An actor captured at open stays right for that open even if
			// the process has exec'd since.
			return w.completeCaptured(pid, c)
		case c.opened && errors.Is(err, procfs.ErrGone):
			// Captured while it waited in open(2), gone since: the common
			// fate of a short-lived reader. Its PID cannot have been taken
			// by another opener of a watched file, whose capture would have
			// replaced this entry.
			return w.completeCaptured(pid, c)
		}
		w.cacheMu.Lock()
		delete(w.actorCache, pid)
		w.cacheMu.Unlock()
	}
	p, err := procfs.ReadActor(w.procRoot, int(pid), seen)
	a := fanActor{Actor: p, missing: procfs.MissingKeys(err)}
	if pid <= 0 {
		// An actor in a PID namespace the agent cannot see.
		a.missing = append(a.missing, "process.pid")
		slices.Sort(a.missing)
	}
	if err != nil {
		w.actorGone.Add(1)
	}
	if a.PPID > 0 {
		// Who started the actor matters to an analyst, and the parents
		// usually outlive a short-lived actor.
		a.Ancestry = procfs.AncestryFrom(w.procRoot, int(a.PPID), fanAncestryDepth)
	}
	if err == nil {
		w.cacheActor(pid, cachedActor{fanActor: a, at: now})
	}
	return a
}

// completeCaptured fills in what the capture loop leaves out, so it never
// waits on the user database or walks the ancestry while a process is held in
// open(2): the user name (cached by procfs) and the ancestry.
func (w *fanotifyWatcher) completeCaptured(pid int32, c cachedActor) fanActor {
	if !c.opened || c.complete {
		return c.fanActor
	}
	if c.UserID != "" && c.UserName == "" {
		if c.UserName = procfs.UserName(c.UserID); c.UserName == "" {
			c.missing = append(slices.Clone(c.missing), procfs.KeyUserName)
			slices.Sort(c.missing)
		}
	}
	if c.PPID > 0 && c.Ancestry == "" {
		c.Ancestry = procfs.AncestryFrom(w.procRoot, int(c.PPID), fanAncestryDepth)
	}
	c.complete = true
	w.cacheMu.Lock()
	// Unless the capture loop has meanwhile seen a newer open.
	if cur, ok := w.actorCache[pid]; ok && cur.at.Equal(c.at) {
		w.actorCache[pid] = c
	}
	w.cacheMu.Unlock()
	return c.fanActor
}
