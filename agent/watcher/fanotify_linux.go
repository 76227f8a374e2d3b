package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
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
	// Beside the eBPF open watcher (ebpf_syscall), which reports opens
	// itself: only attribute changes and directory entries.
	fanNoOpenFileMask = unix.FAN_ATTRIB
	fanNoOpenDirMask  = fanNoOpenFileMask | fanDirentMask | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD
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
	// The marks' masks: everything, or (noOpens) all but opens, reads and
	// writes, which another watcher reports.
	fileMask, dirMask uint64
	// replaced, if set, is told when a watched path now names another file
	// (before the trip that says so is reported).
	replaced func()

	// Owned by the read loop once start returns.
	fd       int
	nodes    map[string]*fanNode // fsid+handle → node
	mounts   map[[8]byte]int     // fsid → a directory on that filesystem, for open_by_handle_at
	sessions map[fanSession]uint8
	actors   map[int32]fanActor // this batch's actors: one /proc read per process per batch

	// The open-capture group (fanotify_perm_linux.go), for rules with
	// HoldOpens: -1 when it is off.
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

func newFanotifyWatcher(rs *fileRules, opts Options, log *slog.Logger) *fanotifyWatcher {
	w := &fanotifyWatcher{rules: rs, log: log, procRoot: opts.ProcRoot, self: int32(os.Getpid()), fd: -1, permFd: -1,
		fileMask: fanFileMask, dirMask: fanDirMask,
		nodes: map[string]*fanNode{}, mounts: map[[8]byte]int{}, sessions: map[fanSession]uint8{},
		actorCache: map[int32]cachedActor{}}
	// No permission events unless a rule asks for them: they make every
	// open of a watched file wait for the agent.
	for _, r := range rs.rules {
		if r.HoldOpens {
			w.captureInit = captureInit
		}
	}
	return w
}

// newFanotifyNoOpens is the fanotify half of ebpf_syscall: attribute
// changes, creates, deletes and renames, never holding an opener.
func newFanotifyNoOpens(rs *fileRules, opts Options, log *slog.Logger) *fanotifyWatcher {
	w := newFanotifyWatcher(rs, opts, log)
	w.fileMask, w.dirMask, w.captureInit = fanNoOpenFileMask, fanNoOpenDirMask, nil
	return w
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
	sink.Lost(event.LossWatcherStopped, 1)
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
