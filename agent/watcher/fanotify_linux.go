package watcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// fanotify in notification mode with file handles: FAN_REPORT_DFID_NAME_TARGET
// gives, for every event, the directory's handle and the entry's name, and for
// directory-entry events the target's handle as well, so creates, deletes and
// renames are seen next to opens, reads and writes. Handles are turned back
// into paths from a map filled as marks are placed (handle → path), and with
// open_by_handle_at for the rare handle the map does not know (a subdirectory
// of a non-recursive rule, the far side of a rename). A second group, of
// permission events, reads the actor of each open while it is still alive
// (fanotify_perm_linux.go).
const (
	fanInitFlags  = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME_TARGET
	fanFileMask   = unix.FAN_OPEN | unix.FAN_ACCESS | unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_CLOSE_NOWRITE | unix.FAN_ATTRIB
	fanDirentMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_RENAME
	// A watched directory: its entries' contents, the directory itself, and
	// its entries' creation, deletion and renaming. FAN_RENAME (5.17+)
	// reports both names of a rename in one event, which the older
	// FAN_MOVED_FROM/FAN_MOVED_TO pair cannot do (fanotify has no cookie).
	fanDirMask = fanFileMask | fanDirentMask | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD
	// The directory of a watched file: only entry events, filtered by name, so
	// a decoy's deletion, renaming or replacement is seen without reporting
	// every read of its siblings.
	fanParentMask = fanDirentMask

	fanReadBuffer = 256 << 10
	fanReaderNice = -10
	// fanAncestryDepth bounds the /proc reads per trip: parent, grandparent
	// and two more are enough to see a shell under sshd or cron.
	fanAncestryDepth = 4
	// A cached actor is trusted this long: its ancestry and user name may
	// change under it (a reparent, a renamed user), so not for ever.
	fanActorTTL       = 2 * time.Second
	fanActorCacheSize = 4096
	fanMaxSessions    = 1 << 16

	// maxHandleSize is MAX_HANDLE_SZ from linux/exportfs.h.
	maxHandleSize = 128
)

// fanMetaSize: x/sys does not define unix.SizeofFanotifyEventMetadata.
const fanMetaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// fanotifyProbe checks that a fanotify group with file handles can be made
// and will name the actor. Since 5.13 an unprivileged user may open such a
// group, but its events carry PID 0, so without CAP_SYS_ADMIN fanotify is no
// better than fsnotify at saying who acted; kernels before 5.17 refuse the
// flags (EINVAL).
func fanotifyProbe() error {
	if ok, err := hasSysAdmin(); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	} else if !ok {
		return errors.New("opening fanotify: no CAP_SYS_ADMIN, so events would not name the actor")
	}
	fd, err := fanotifyInit()
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// hasSysAdmin reports whether CAP_SYS_ADMIN is in the effective set.
func hasSysAdmin() (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, err
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0, nil
}

func fanotifyInit() (int, error) {
	fd, err := unix.FanotifyInit(fanInitFlags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("opening fanotify: %w", err)
	}
	return fd, nil
}

// fanNode is a directory or file fanotify reports by handle.
type fanNode struct {
	path      string
	dir       bool
	rule      *fileRule            // the rule of a marked file, or of a marked directory's entries
	recursive bool                 // a directory in a recursive rule's tree
	files     map[string]*fileRule // a watched file's directory: the watched names in it
	roots     map[string]*fileRule // a watched directory's parent: the watched names in it
}

// fanSession follows one process's use of one file from open to close, so a
// `cat` is one access however many reads it makes, and an open for writing is
// a modify, not an access.
type fanSession struct {
	pid  int32
	path string
}

const (
	sessAccessed uint8 = 1 << iota
	sessModified
)

type fanotifyWatcher struct {
	rules    *fileRules
	log      *slog.Logger
	procRoot string
	self     int32

	// Owned by the read loop once start returns.
	fd       int
	nodes    map[string]*fanNode // fsid+handle → node
	mounts   map[[8]byte]int     // fsid → a directory on that filesystem, for open_by_handle_at
	sessions map[fanSession]uint8
	actors   map[int32]fanActor // this batch's actors: one /proc read per process per batch

	// The open-capture group (fanotify_perm_linux.go): -1 when it is off.
	// Its loop closes permFd, under permMu since the read loop adds marks,
	// before closing captureDone.
	permMu      sync.Mutex
	permFd      int
	captureDone chan struct{}
	// captureInit opens the group; tests replace it to see the watcher
	// carry on without one, nil turns capture off.
	captureInit func() (int, error)

	// actorCache is shared by the read loop and the capture loop.
	cacheMu    sync.Mutex
	actorCache map[int32]cachedActor

	malformed, unresolved, unmatched       atomic.Uint64
	overflows, excluded, markErrors        atomic.Uint64
	actorGone, synthesized, readErrors     atomic.Uint64
	captured, captureMissed, captureErrors atomic.Uint64
}

type fanActor struct {
	procfs.Actor
	missing []string
}

func newFanotifyWatcher(rs *fileRules, opts Options, log *slog.Logger) *fanotifyWatcher {
	return &fanotifyWatcher{rules: rs, log: log, procRoot: opts.ProcRoot, self: int32(os.Getpid()), fd: -1, permFd: -1, captureInit: captureInit,
		nodes: map[string]*fanNode{}, mounts: map[[8]byte]int{}, sessions: map[fanSession]uint8{},
		actorCache: map[int32]cachedActor{}}
}

func (w *fanotifyWatcher) counters() map[string]uint64 {
	return map[string]uint64{
		"malformed_records":  w.malformed.Load(),
		"unresolved_handles": w.unresolved.Load(),
		"unmatched_events":   w.unmatched.Load(),
		"kernel_overflows":   w.overflows.Load(),
		"excluded_trips":     w.excluded.Load(),
		"mark_errors":        w.markErrors.Load(),
		"actor_gone":         w.actorGone.Load(),
		"synthesized_events": w.synthesized.Load(),
		"read_errors":        w.readErrors.Load(),
		// Opens whose actor was read while the opener waited, opens whose
		// actor could not be read then, and failures of the capture group.
		"opens_captured":      w.captured.Load(),
		"open_capture_missed": w.captureMissed.Load(),
		"open_capture_errors": w.captureErrors.Load(),
	}
}

func (w *fanotifyWatcher) start(ctx context.Context, sink Sink) (err error) {
	if w.fd, err = fanotifyInit(); err != nil {
		return err
	}
	// One pipe wakes both loops: the read loop and the capture loop.
	wake := make([]int, 2)
	if err := unix.Pipe2(wake, unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		w.close()
		return fmt.Errorf("opening wake-up pipe: %w", err)
	}
	// stop ends the capture loop, which closes its group (allowing any open
	// still waiting), then releases the pipe.
	stop := func() {
		unix.Write(wake[1], []byte{0})
		if w.captureDone != nil {
			<-w.captureDone
		}
		unix.Close(wake[0])
		unix.Close(wake[1])
	}
	w.startOpenCapture(wake[0])
	defer func() {
		if err != nil {
			stop()
			w.close()
		}
	}()
	for p, r := range w.rules.files {
		if err := w.markFile(p, r); err != nil {
			return err
		}
	}
	for p, r := range w.rules.dirs {
		if err := w.markDir(p, r, false); err != nil {
			return err
		}
		if err := w.markParent(p, r, true); err != nil {
			// The directory's contents are still watched; only its own
			// renaming or deletion would go unseen.
			w.markErrors.Add(1)
			w.log.Warn("cannot watch the parent of a watched directory", "file.path", p, "error", err.Error())
		}
		if r.Recursive {
			w.markTree(p, r, nil)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.close()
		w.run(wake[0], sink)
	}()
	// The pipe is closed only once both loops are done with it. The read
	// loop may also end on its own (a failed read): the capture loop then
	// stops too.
	go func() {
		select {
		case <-ctx.Done():
			unix.Write(wake[1], []byte{0})
			<-done
		case <-done:
		}
		stop()
	}()
	return nil
}

func (w *fanotifyWatcher) close() {
	if w.fd >= 0 {
		unix.Close(w.fd) // removes every mark
		w.fd = -1
	}
	for k, fd := range w.mounts {
		unix.Close(fd)
		delete(w.mounts, k)
	}
}

// run reads events until the wake-up pipe is written, then drains what the
// kernel already queued, so a clean shutdown loses nothing.
func (w *fanotifyWatcher) run(wake int, sink Sink) {
	// Unless the capture group read it at open (fanotify_perm_linux.go),
	// the actor of a trip is read from /proc after the event, racing its
	// exit: a short-lived process is gone within a millisecond. On a busy
	// host the reader thread wins that race more often with a higher
	// scheduling priority. The goroutine keeps this thread to itself and
	// never unlocks it, so the thread ends with the loop and the priority
	// never spreads to other goroutines. Failing to raise it costs nothing.
	runtime.LockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), fanReaderNice); err != nil {
		w.log.Debug("cannot raise the fanotify reader's priority", "error", err.Error())
	}
	buf := make([]byte, fanReadBuffer)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			w.fail("poll", err, sink)
			return
		}
		if !w.drain(buf, sink) {
			return
		}
		if fds[1].Revents != 0 {
			return
		}
	}
}

// drain reads until the queue is empty; false means the watcher cannot go on.
func (w *fanotifyWatcher) drain(buf []byte, sink Sink) bool {
	for {
		n, err := unix.Read(w.fd, buf)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return true
		case err != nil:
			w.fail("read", err, sink)
			return false
		case n == 0:
			return true
		default:
			w.handleBatch(buf[:n], sink)
		}
	}
}

// fail stops the watcher loudly: a silent gap is the one thing a tripwire
// must not have.
func (w *fanotifyWatcher) fail(op string, err error, sink Sink) {
	w.readErrors.Add(1)
	w.log.Error("fanotify "+op+" failed; file watcher stopped", "tripwire.watcher.mechanism", MechanismFanotify, "error", err.Error())
	sink.Lost("watcher_stopped", 1)
}

// fanMeta is struct fanotify_event_metadata, decoded field by field: the
// buffer gives no alignment guarantee a pointer cast could rely on.
type fanMeta struct {
	eventLen uint32
	vers     uint8
	metaLen  uint16
	mask     uint64
	fd       int32
	pid      int32
}

func decodeFanMeta(b []byte) fanMeta {
	ne := binary.NativeEndian
	return fanMeta{eventLen: ne.Uint32(b[0:]), vers: b[4], metaLen: ne.Uint16(b[6:]),
		mask: ne.Uint64(b[8:]), fd: int32(ne.Uint32(b[16:])), pid: int32(ne.Uint32(b[20:]))}
}

func (w *fanotifyWatcher) handleBatch(b []byte, sink Sink) {
	w.actors = map[int32]fanActor{}
	seen := procfs.BootTime()
	now := time.Now()
	for len(b) > 0 {
		if len(b) < fanMetaSize {
			w.malformed.Add(1)
			return
		}
		m := decodeFanMeta(b)
		if m.fd >= 0 {
			unix.Close(int(m.fd)) // not sent in FID mode, but never leak one
		}
		if m.vers != unix.FANOTIFY_METADATA_VERSION || int(m.metaLen) < fanMetaSize ||
			m.eventLen < uint32(m.metaLen) || int(m.eventLen) > len(b) {
			// The lengths cannot be trusted, so neither can anything after.
			w.malformed.Add(1)
			return
		}
		w.handleEvent(m, b[m.metaLen:m.eventLen], now, seen, sink)
		b = b[m.eventLen:]
	}
}

// fanFID is one file-handle info record.
type fanFID struct {
	key  []byte // fsid, handle size, handle type, handle: how nodes are keyed
	name string
}

func (f *fanFID) fsid() (id [8]byte) { copy(id[:], f.key[:8]); return }

func (f *fanFID) handle() unix.FileHandle {
	ne := binary.NativeEndian
	return unix.NewFileHandle(int32(ne.Uint32(f.key[12:16])), f.key[16:])
}

type fanRecords struct {
	fid, dfid, oldDir, newDir *fanFID
}

var errFanRecord = errors.New("malformed fanotify info record")

// parseFanInfo parses the info records after the metadata. Every length is
// checked against what is left before it is used.
func parseFanInfo(b []byte) (fanRecords, error) {
	var r fanRecords
	for len(b) > 0 {
		if len(b) < 4 {
			return r, errFanRecord
		}
		typ, n := b[0], int(binary.NativeEndian.Uint16(b[2:4]))
		if n < 4 || n > len(b) {
			return r, errFanRecord
		}
		rec := b[4:n]
		b = b[n:]
		var dst **fanFID
		named := true
		switch typ {
		case unix.FAN_EVENT_INFO_TYPE_FID:
			dst, named = &r.fid, false
		case unix.FAN_EVENT_INFO_TYPE_DFID:
			dst, named = &r.dfid, false
		case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
			dst = &r.dfid
		case unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
			dst = &r.oldDir
		case unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
			dst = &r.newDir
		default:
			continue // pidfd, error, range, mount: not asked for
		}
		// fsid (8), handle_bytes (4), handle_type (4), f_handle[handle_bytes].
		if len(rec) < 16 {
			return r, errFanRecord
		}
		hb := int(binary.NativeEndian.Uint32(rec[8:12]))
		if hb == 0 || hb > maxHandleSize || 16+hb > len(rec) {
			return r, errFanRecord
		}
		f := &fanFID{key: rec[:16+hb]}
		if named {
			name := rec[16+hb:]
			end := 0
			for end < len(name) && name[end] != 0 {
				end++
			}
			if end == 0 || end == len(name) {
				return r, errFanRecord // empty or not NUL-terminated
			}
			f.name = string(name[:end])
			if f.name != "." && strings.ContainsRune(f.name, '/') {
				return r, errFanRecord
			}
		}
		*dst = f
	}
	return r, nil
}

func (w *fanotifyWatcher) handleEvent(m fanMeta, info []byte, now time.Time, seen time.Duration, sink Sink) {
	if m.mask&unix.FAN_Q_OVERFLOW != 0 {
		w.overflows.Add(1)
		// The kernel drops events past its queue limit without counting them;
		// at least one was lost. Open sessions may have lost their close.
		sink.Lost("kernel_overflow", 1)
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
		return
	}
	if r := n.roots[name]; r != nil && mask&unix.FAN_ONDIR != 0 {
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
var fanUnknownActor = []string{"process.command_line", "process.executable.path", "process.parent_pid",
	"process.pid", "user.id", "user.name"}

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

// markTree marks every directory under root (not root itself). found, if
// set, is told of every entry met.
func (w *fanotifyWatcher) markTree(root string, r *fileRule, found func(string)) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			w.markErrors.Add(1)
			w.log.Warn("cannot walk watched tree", "file.path", p, "error", err.Error())
			return nil
		}
		if p == root {
			return nil
		}
		if found != nil {
			found(p)
		}
		if d.IsDir() {
			if err := w.markDir(p, r, true); err != nil {
				w.markErrors.Add(1)
				w.log.Warn("cannot watch directory", "file.path", p, "error", err.Error())
				return fs.SkipDir
			}
		}
		return nil
	})
}

// markDir marks a directory of rule r. A directory found while walking is
// opened without following symlinks, so a link swapped in cannot move the
// watch outside the tree. The mark, the handle and the path all come from one
// open descriptor.
func (w *fanotifyWatcher) markDir(path string, r *fileRule, walked bool) error {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if walked {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, fanDirMask, fd, ""); err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	w.permMark(fd, path, unix.FAN_MARK_ONLYDIR, permDirMask, fd, "")
	key, fsid, err := fdHandleKey(fd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	n := w.nodes[key]
	if n == nil {
		n = &fanNode{}
		w.nodes[key] = n
	}
	n.path, n.dir, n.rule, n.recursive = path, true, r, r.Recursive
	if _, ok := w.mounts[fsid]; !ok {
		w.mounts[fsid], keep = fd, true
	}
	return nil
}

// markFile marks a watched file and, for entry events, its directory.
func (w *fanotifyWatcher) markFile(path string, r *fileRule) error {
	dir := filepath.Dir(path)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(dfd)
		}
	}()
	// O_PATH: opening the file for reading would change nothing, but a
	// special file (a FIFO decoy) could block. A symlink is followed, as
	// os.Stat did when the rule's paths were classified.
	fd, err := unix.Openat(dfd, filepath.Base(path), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	procPath := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD, fanFileMask, unix.AT_FDCWD, procPath); err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	w.permMark(fd, path, 0, permFileMask, unix.AT_FDCWD, procPath)
	key, _, err := fdHandleKey(fd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", path, err)
	}
	w.nodes[key] = &fanNode{path: path, rule: r}
	return w.markParentFD(dfd, dir, filepath.Base(path), r, false, &keep)
}

// markParent marks the directory holding a watched path for entry events, so
// the path's own deletion, renaming or replacement is seen.
func (w *fanotifyWatcher) markParent(path string, r *fileRule, isDir bool) error {
	dir := filepath.Dir(path)
	if dir == path {
		return nil // the root directory has no parent
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(dfd)
		}
	}()
	return w.markParentFD(dfd, dir, filepath.Base(path), r, isDir, &keep)
}

// markParentFD marks dfd (the directory dir) for entry events about name.
// It sets *kept when dfd is kept as the filesystem's handle-resolving
// descriptor.
func (w *fanotifyWatcher) markParentFD(dfd int, dir, name string, r *fileRule, isDir bool, kept *bool) error {
	mask := uint64(fanParentMask)
	if isDir {
		mask |= unix.FAN_ONDIR // entry events about a subdirectory need it
	}
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, mask, dfd, ""); err != nil {
		return fmt.Errorf("marking %s: %w", dir, err)
	}
	dkey, fsid, err := fdHandleKey(dfd)
	if err != nil {
		return fmt.Errorf("marking %s: %w", dir, err)
	}
	dn := w.nodes[dkey]
	if dn == nil {
		dn = &fanNode{path: dir, dir: true}
		w.nodes[dkey] = dn
	}
	m := &dn.files
	if isDir {
		m = &dn.roots
	}
	if *m == nil {
		*m = map[string]*fileRule{}
	}
	(*m)[name] = r
	if _, ok := w.mounts[fsid]; !ok {
		w.mounts[fsid], *kept = dfd, true
	}
	return nil
}

// fdHandleKey returns the key fanotify info records will carry for fd: the
// filesystem id, then the file handle as struct file_handle lays it out.
func fdHandleKey(fd int) (key string, fsid [8]byte, err error) {
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return "", fsid, fmt.Errorf("name_to_handle_at: %w", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return "", fsid, fmt.Errorf("statfs: %w", err)
	}
	ne := binary.NativeEndian
	ne.PutUint32(fsid[0:], uint32(sfs.Fsid.Val[0]))
	ne.PutUint32(fsid[4:], uint32(sfs.Fsid.Val[1]))
	hb := h.Bytes()
	k := make([]byte, 16+len(hb))
	copy(k, fsid[:])
	ne.PutUint32(k[8:], uint32(len(hb)))
	ne.PutUint32(k[12:], uint32(h.Type()))
	copy(k[16:], hb)
	return string(k), fsid, nil
}
