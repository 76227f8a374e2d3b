package procfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// userHZ is the unit of /proc/<pid>/stat times: USER_HZ is 100 on every Linux
// architecture Go supports, and sysconf(_SC_CLK_TCK) would need cgo.
const userHZ = 100

// Read reads the actor details of pid from /proc mounted at root ("" means
// /proc). See [ReadSeen].
func Read(root string, pid int) (event.Process, error) { return ReadSeen(root, pid, 0) }

// ReadSeen is [Read] for a PID seen acting at seen, a CLOCK_BOOTTIME reading
// ([BootTime]); 0 skips that check.
//
// A process may exit, and its PID be reused, at any moment. Everything is read
// through one descriptor of /proc/<pid>: the kernel ties it to the process
// that owned the PID when it was opened, so once that process is reaped every
// read through it fails instead of describing a newcomer. The start time
// (stat field 22) is read before and after, and a process that started after
// seen cannot be the actor. What was read consistently is returned; the rest
// is listed in an [*Incomplete] error. PID is always set.
func ReadSeen(root string, pid int, seen time.Duration) (event.Process, error) {
	a, err := ReadActor(root, pid, seen)
	return a.Process, err
}

// ReadActor is [ReadSeen] that also returns the command name and start time.
func ReadActor(root string, pid int, seen time.Duration) (Actor, error) {
	return readActor(root, pid, seen, true)
}

// ReadActorNoLookup is [ReadActor] without the user-name lookup, for a caller
// that must not wait on the user database (with cgo, NSS may ask a network
// directory): it reads only /proc. UserName is left empty and [KeyUserName]
// is not reported missing; resolve it later with [UserName].
func ReadActorNoLookup(root string, pid int, seen time.Duration) (Actor, error) {
	return readActor(root, pid, seen, false)
}

func readActor(root string, pid int, seen time.Duration, lookup bool) (Actor, error) {
	var a Actor
	p := &a.Process
	p.PID = int64(pid)
	if pid <= 0 {
		return a, incomplete(pid, ActorKeys, ErrNoPID)
	}
	if root == "" {
		root = DefaultRoot
	}
	dir, err := unix.Open(filepath.Join(root, strconv.Itoa(pid)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return a, incomplete(pid, ActorKeys, gone(err))
	}
	defer unix.Close(dir)

	before, err := statAt(dir)
	if err != nil {
		return a, incomplete(pid, ActorKeys, gone(err))
	}
	if seen > 0 && time.Duration(before.StartTime)*(time.Second/userHZ) > seen+time.Second/userHZ {
		return a, incomplete(pid, ActorKeys, ErrReused)
	}
	p.PPID = int64(before.PPID)
	a.Comm, a.StartTime = before.Comm, before.StartTime

	var missing []string
	var cause error
	note := func(err error, keys ...string) {
		missing = append(missing, keys...)
		if cause == nil {
			cause = gone(err)
		}
	}
	if b, err := readAt(dir, "status", 8192); err != nil {
		note(err, KeyUserID, KeyUserName)
	} else if st, err := ParseStatus(b); err != nil {
		note(err, KeyUserID, KeyUserName)
	} else {
		p.UserID = strconv.Itoa(st.UID[0])
		if lookup {
			if p.UserName = UserName(p.UserID); p.UserName == "" {
				note(fmt.Errorf("uid %s has no user name", p.UserID), KeyUserName)
			}
		}
	}
	if exe, err := readlinkAt(dir, "exe"); err != nil {
		note(err, KeyExecutable)
	} else {
		p.ExecutablePath = Printable(exe)
	}
	// A cmdline can be megabytes; read a little more than is rendered.
	if b, err := readAt(dir, "cmdline", 2*MaxCommandLine); err != nil {
		note(err, KeyCommandLine)
	} else if p.CommandLine, p.ArgsTruncated = CommandLine(b); p.CommandLine == "" {
		// Zombies and kernel threads have no command line.
		note(ErrGone, KeyCommandLine)
	} else if len(b) >= 2*MaxCommandLine {
		p.ArgsTruncated = true
	}

	after, err := statAt(dir)
	switch {
	case err != nil:
		// Gone mid-read: what was read came through dir, so from the actor.
		if cause == nil {
			cause = gone(err)
		}
	case after.StartTime != before.StartTime:
		return Actor{Process: event.Process{PID: int64(pid)}}, incomplete(pid, ActorKeys, ErrReused)
	}
	return a, incomplete(pid, missing, cause)
}

// BootTime returns the CLOCK_BOOTTIME clock, the one process start times use.
func BootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// StartTime returns pid's start time in clock ticks after boot (stat field
// 22); with the PID it identifies a process across PID reuse.
func StartTime(root string, pid int) (uint64, error) {
	st, err := ReadStat(root, pid)
	return st.StartTime, err
}

// ReadStat reads and parses /proc/<pid>/stat.
func ReadStat(root string, pid int) (Stat, error) {
	if root == "" {
		root = DefaultRoot
	}
	dir, err := unix.Open(filepath.Join(root, strconv.Itoa(pid)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, gone(err)
	}
	defer unix.Close(dir)
	st, err := statAt(dir)
	if err != nil {
		// Reaped between the open and the read.
		return Stat{}, gone(err)
	}
	return st, nil
}

// Ancestry renders pid's ancestors, parent first, at most depth of them, as
// "pid:exe <- pid:exe <- ..."; an ancestor whose executable cannot be read
// (kernel threads, or no permission) shows its command name as "[comm]". It
// stops after PID 1 or at the first ancestor that is gone.
func Ancestry(root string, pid, depth int) string {
	st, err := ReadStat(root, pid)
	if err != nil {
		return ""
	}
	return AncestryFrom(root, st.PPID, depth)
}

// AncestryFrom is [Ancestry] starting at the parent itself: it works when
// the child is already gone but its parent PID is known.
func AncestryFrom(root string, ppid, depth int) string {
	if root == "" {
		root = DefaultRoot
	}
	var parts []string
	for cur := ppid; cur > 0 && len(parts) < depth; {
		dir, err := unix.Open(filepath.Join(root, strconv.Itoa(cur)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		st, err := statAt(dir)
		if err != nil {
			unix.Close(dir)
			break
		}
		exe, err := readlinkAt(dir, "exe")
		unix.Close(dir)
		if err != nil {
			exe = "[" + st.Comm + "]"
		}
		parts = append(parts, strconv.Itoa(cur)+":"+Printable(exe))
		if cur == 1 {
			break
		}
		cur = st.PPID
	}
	return strings.Join(parts, " <- ")
}

func statAt(dir int) (Stat, error) {
	b, err := readAt(dir, "stat", 1024)
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// readAt reads at most limit bytes of the file name under dir.
func readAt(dir int, name string, limit int) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, min(limit, 4096))
	n := 0
	for {
		if n == len(buf) {
			if n >= limit {
				break
			}
			grown := make([]byte, min(2*len(buf), limit))
			copy(grown, buf)
			buf = grown
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

func readlinkAt(dir int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return "", fmt.Errorf("reading link %s: %w", name, err)
	}
	return string(buf[:n]), nil
}

// gone maps the errors of a vanished process onto ErrGone.
func gone(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}
