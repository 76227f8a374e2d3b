package watcher

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
)

// Open capture: why a second fanotify group, and why only on request.
//
// It runs only for rules with HoldOpens (planted decoys: the config refuses
// it elsewhere), because it makes the host wait for the agent: every open of
// a held file blocks until this loop answers, which costs each open a round
// trip to user space and, while the agent is stopped (SIGSTOP, a debugger, a
// frozen cgroup), blocks every opener. The default file mechanisms (eBPF, or
// fanotify notification events) never hold anyone.
//
// The notification group's events are queued and read later, so a process
// that opens a watched file and exits at once (`cat secret`) is often gone
// from /proc by the time its event is handled, and the trip would carry a PID
// and little else. A permission event (FAN_OPEN_PERM) is different: the
// opener stays blocked in open(2) until the group answers, so /proc is
// complete while it is read. The capture group reads the actor then, puts it
// in the actor cache, and answers FAN_ALLOW; the notification group's event
// for the same open, which the kernel queues only once the open is allowed,
// finds the actor there.
//
// Permission events cannot be combined with file-handle reporting, so this is
// a separate group of class FAN_CLASS_CONTENT reporting descriptors. It never
// trips and never denies: TripWire observes, it does not enforce, and a
// watcher that failed to answer would hang every process opening a watched
// file. So every event is answered FAN_ALLOW on every path (errors included),
// the work before the answer is a few /proc reads (no user-database lookup,
// which could wait on the network), the agent's own opens are answered at
// once, and closing the group (on shutdown, or when it cannot go on) makes the
// kernel allow whatever is still pending.
const (
	permInitFlags = unix.FAN_CLASS_CONTENT | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK
	// The kernel opens the file for each event; O_NONBLOCK keeps a FIFO
	// decoy from blocking that open.
	permEventFlags = unix.O_RDONLY | unix.O_LARGEFILE | unix.O_CLOEXEC | unix.O_NONBLOCK
	permFileMask   = unix.FAN_OPEN_PERM
	// A watched directory: opens of its entries and of itself (a listing).
	permDirMask = unix.FAN_OPEN_PERM | unix.FAN_EVENT_ON_CHILD | unix.FAN_ONDIR
	// permActorTTL: how long an actor captured at open waits for its
	// notification event. Longer than fanActorTTL because the notification
	// queue may lag behind on a busy host; the start time check guards
	// against a reused PID.
	permActorTTL = 10 * time.Second
	permReadSize = 64 * fanMetaSize
)

func captureInit() (int, error) {
	fd, err := unix.FanotifyInit(permInitFlags, permEventFlags)
	if err != nil {
		return -1, fmt.Errorf("opening fanotify for permission events: %w", err)
	}
	return fd, nil
}

// startOpenCapture opens the capture group and starts answering its events
// on wake-up pipe wake. Without it (no CONFIG_FANOTIFY_ACCESS_PERMISSIONS, or
// not allowed) the watcher carries on as before: actors read after the event.
// It must run before any mark is placed, since the agent's own opens of
// watched directories while marking wait for an answer too.
func (w *fanotifyWatcher) startOpenCapture(wake int) {
	if w.captureInit == nil {
		return
	}
	fd, err := w.captureInit()
	if err != nil {
		w.log.Warn("fanotify permission events unavailable: short-lived actors may be reported with fields missing",
			"tripwire.watcher.mechanism", MechanismFanotify, "error", err.Error())
		return
	}
	w.permFd = fd
	w.captureDone = make(chan struct{})
	go func() {
		defer close(w.captureDone)
		w.runCapture(fd, wake)
		// Closing the group allows every open still waiting for an answer.
		w.permMu.Lock()
		unix.Close(fd)
		w.permFd = -1
		w.permMu.Unlock()
	}()
}

// permMark adds capture marks for the file or directory open at fd. Marks on
// procfs are refused: the capture loop reads /proc, and an open of its own
// that waited for its own answer would hang it.
func (w *fanotifyWatcher) permMark(fd int, path string, flags uint, mask uint64, dirfd int, name string) {
	w.permMu.Lock()
	defer w.permMu.Unlock()
	if w.permFd < 0 {
		return
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type == unix.PROC_SUPER_MAGIC {
		return
	}
	if err := unix.FanotifyMark(w.permFd, unix.FAN_MARK_ADD|flags, mask, dirfd, name); err != nil {
		// The path is still watched; only its short-lived actors may be
		// reported with fields missing.
		w.captureErrors.Add(1)
		w.log.Warn("cannot capture the actors of opens", "file.path", path, "error", err.Error())
	}
}

// runCapture answers permission events until wake is written or the group
// fails.
func (w *fanotifyWatcher) runCapture(fd, wake int) {
	// Every open of a watched file waits on this loop: keep it on its own
	// thread at the reader's priority (see run).
	runtime.LockOSThread()
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), fanReaderNice)
	buf := make([]byte, permReadSize)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			w.captureFailed("poll", err)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN || n == 0:
		case err != nil:
			w.captureFailed("read", err)
			return
		default:
			if !w.answerBatch(fd, buf[:n]) {
				w.captureFailed("read", errFanRecord)
				return
			}
		}
	}
}

func (w *fanotifyWatcher) captureFailed(op string, err error) {
	w.captureErrors.Add(1)
	w.log.Error("fanotify permission "+op+" failed; actors of short-lived processes may be incomplete",
		"tripwire.watcher.mechanism", MechanismFanotify, "error", err.Error())
}

// answerBatch answers every event in b. False means the lengths cannot be
// trusted, so events may be left unanswered: the caller closes the group,
// which answers them.
func (w *fanotifyWatcher) answerBatch(fd int, b []byte) bool {
	for len(b) > 0 {
		if len(b) < fanMetaSize {
			return false
		}
		m := decodeFanMeta(b)
		if m.vers != unix.FANOTIFY_METADATA_VERSION || int(m.metaLen) < fanMetaSize ||
			m.eventLen < uint32(m.metaLen) || int(m.eventLen) > len(b) {
			w.malformed.Add(1)
			return false
		}
		w.answer(fd, m)
		b = b[m.eventLen:]
	}
	return true
}

// answer captures the actor of one open and allows it.
func (w *fanotifyWatcher) answer(fd int, m fanMeta) {
	if m.fd < 0 {
		return // FAN_NOFD: a queue overflow, nothing to answer
	}
	defer func() {
		// Always FAN_ALLOW, and always answered (deferred, so on every path).
		var resp [8]byte // struct fanotify_response
		binary.NativeEndian.PutUint32(resp[0:], uint32(m.fd))
		binary.NativeEndian.PutUint32(resp[4:], unix.FAN_ALLOW)
		for {
			_, err := unix.Write(fd, resp[:])
			if err != unix.EINTR {
				if err != nil {
					// ENOENT: the kernel gave up on the event (the
					// opener was killed); nothing is left waiting.
					w.captureErrors.Add(1)
				}
				break
			}
		}
		unix.Close(int(m.fd))
	}()
	if m.mask&unix.FAN_OPEN_PERM == 0 || m.pid == w.self || m.pid <= 0 {
		return // the agent's own opens (marking, walking, planting)
	}
	w.capture(m.pid)
}

// capture reads pid's actor while it waits in open(2) and caches it for the
// notification event.
func (w *fanotifyWatcher) capture(pid int32) {
	now := time.Now()
	if c, ok := w.cachedActor(pid); ok && now.Sub(c.at) < c.ttl() {
		// The same process opening again: one stat read confirms it.
		if st, err := procfs.ReadStat(w.procRoot, int(pid)); err == nil && st.StartTime == c.StartTime && st.Comm == c.Comm {
			c.at, c.opened = now, true
			w.cacheActor(pid, c)
			w.captured.Add(1)
			return
		}
	}
	a, err := procfs.ReadActorNoLookup(w.procRoot, int(pid), 0)
	if err != nil {
		// Killed while waiting, or a /proc the agent may not read: the
		// notification event reads what is left, as without capture.
		w.captureMissed.Add(1)
		return
	}
	w.cacheActor(pid, cachedActor{fanActor: fanActor{Actor: a}, at: now, opened: true})
	w.captured.Add(1)
}
