package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// execCompleteWait bounds how long a fallback waits for an exec it was told
// about to complete, so /proc shows the new program rather than the old.
const execCompleteWait = 200 * time.Millisecond

// execFanotify is the first fallback: FAN_OPEN_EXEC marks. Watched binaries
// get inode marks (so symlinks and hard links to them are caught); name rules
// need the name of any binary anywhere, so they add filesystem marks and are
// filtered in user space. The event gives the PID and the opened binary; the
// rest comes from /proc once the exec has completed.
type execFanotify struct {
	rules    *execRules
	procRoot string
	log      *slog.Logger
	fsMarks  bool

	// unconfirmed counts opens for exec whose process, still alive after
	// execCompleteWait, runs another binary: the ELF interpreter's open,
	// a failed exec, or an exec slower than the wait.
	seen, overflows, tripped, unconfirmed atomic.Uint64
}

func newExecFanotify(rules *execRules, opts Options) (*execFanotify, error) {
	fd, err := execFanotifyInit()
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	w := &execFanotify{rules: rules, procRoot: execProcRoot(opts), log: execNetLogger(opts)}
	for _, t := range rules.targets {
		if len(t.names) > 0 || len(t.pathIDs) < len(t.paths) {
			// A name, or a path not there yet, can turn up anywhere.
			w.fsMarks = true
		}
	}
	return w, nil
}

func execFanotifyInit() (int, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fanotify_init: %w", err)
	}
	return fd, nil
}

func (w *execFanotify) Kind() string      { return "process" }
func (w *execFanotify) Mechanism() string { return procMechFanotify }

// Missing: argv is read from /proc after the exec, so a process that has
// already exited has none; the path as exec'd is never known.
func (w *execFanotify) Missing() []string { return nil }

func (w *execFanotify) Counters() map[string]uint64 {
	return map[string]uint64{"exec_seen": w.seen.Load(), event.LossKernelOverflow: w.overflows.Load(),
		"tripped": w.tripped.Load(), "exec_unconfirmed": w.unconfirmed.Load()}
}

func (w *execFanotify) Start(ctx context.Context, sink Sink) error {
	fd, err := execFanotifyInit()
	if err != nil {
		return err
	}
	marked := 0
	for f := range w.rules.files {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, f); err != nil {
			w.log.Warn("fanotify exec mark failed", "file.path", f, "error", err)
			continue
		}
		marked++
	}
	if w.fsMarks {
		mounts, err := execFilesystems(w.procRoot)
		if err != nil {
			unix.Close(fd)
			return err
		}
		for _, m := range mounts {
			if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, m); err != nil {
				w.log.Warn("fanotify filesystem mark failed", "file.path", m, "error", err)
				continue
			}
			marked++
		}
	}
	if marked == 0 {
		unix.Close(fd)
		return errors.New("fanotify exec: nothing could be marked")
	}
	f := os.NewFile(uintptr(fd), "fanotify-exec")
	w.log.Info("process watcher started", "mechanism", procMechFanotify, "marks", marked, "filesystem_marks", w.fsMarks)

	type job struct {
		pid  int
		path string
		id   execFileID
		size int64
		at   time.Time
	}
	jobs := make(chan job, 1024)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				for _, e := range w.handle(j.pid, j.path, j.id, j.size, j.at) {
					w.tripped.Add(1)
					sink.Trip(e)
				}
			}
		}()
	}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer func() {
			close(jobs)
			wg.Wait()
		}()
		buf := make([]byte, 64*1024)
		metaSize := int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					w.log.Warn("reading fanotify exec events", "error", err)
				}
				return
			}
			for off := 0; off+metaSize <= n; {
				md := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
				if md.Event_len < uint32(metaSize) || off+int(md.Event_len) > n {
					break
				}
				off += int(md.Event_len)
				if md.Vers != unix.FANOTIFY_METADATA_VERSION {
					continue
				}
				if md.Mask&unix.FAN_Q_OVERFLOW != 0 {
					w.overflows.Add(1)
					sink.Lost(event.LossKernelOverflow, 1)
					continue
				}
				if md.Fd < 0 {
					continue
				}
				w.seen.Add(1)
				j := job{pid: int(md.Pid), at: time.Now()}
				var st unix.Stat_t
				if unix.Fstat(int(md.Fd), &st) == nil {
					j.id = execFileID{Dev: uint64(st.Dev), Ino: st.Ino}
					j.size = st.Size
				}
				j.path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(md.Fd)))
				unix.Close(int(md.Fd))
				if !w.candidate(j.pid, j.path, j.id, j.size) {
					continue
				}
				select {
				case jobs <- j:
				default:
					// Workers are behind: count it as a loss, never block the
					// kernel queue into overflow silently.
					sink.Lost(event.LossExecBacklog, 1)
				}
			}
		}
	}()
	return nil
}

// candidate is the cheap filter before any /proc work: the opened file could
// be a watched binary, or named like one.
func (w *execFanotify) candidate(pid int, path string, id execFileID, size int64) bool {
	if w.fileCandidate(path, id, size) {
		return true
	}
	// A symlinked name is only visible once the exec completes: check
	// without waiting whether it already has.
	comm, err := os.ReadFile(filepath.Join(w.procRoot, strconv.Itoa(pid), "comm"))
	return err == nil && w.rules.names[strings.TrimSuffix(string(comm), "\n")]
}

// fileCandidate: the opened file itself is a watched binary or named like one.
func (w *execFanotify) fileCandidate(path string, id execFileID, size int64) bool {
	path = strings.TrimSuffix(path, " (deleted)")
	return w.rules.ids[id] || w.rules.sizes[size] || w.rules.names[truncComm(filepath.Base(path))]
}

func (w *execFanotify) handle(pid int, path string, id execFileID, size int64, at time.Time) []*event.Event {
	s, p, missing, run := execFromProc(w.procRoot, pid, id, at)
	path = strings.TrimSuffix(path, " (deleted)")
	switch run {
	case execRunOther:
		// Alive but running another binary: this open was of the ELF
		// interpreter or of a binary whose exec failed.
		w.unconfirmed.Add(1)
		return nil
	case execRunGone:
		// Exited (perhaps a zombie whose comm is still readable): nothing
		// ties what /proc shows to this open, so only the opened file may
		// match; otherwise the ELF interpreter's open of a watched exec
		// would trip a second time.
		if !w.fileCandidate(path, id, size) {
			w.unconfirmed.Add(1)
			return nil
		}
		s.Comm = filepath.Base(path)
	}
	if s.Exe == "" {
		s.Exe = path
		p.ExecutablePath = procfs.Printable(s.Exe)
		missing = execDropKey(missing, procfs.KeyExecutable)
	}
	if s.Comm == "" {
		s.Comm = filepath.Base(s.Exe)
	}
	s.ID, s.Size = id, size
	return w.rules.trips(&s, p, procMechFanotify, missing, w.procRoot)
}

// execRun says whether /proc shows the process running the binary an exec
// event was about.
type execRun int

const (
	execRunConfirmed execRun = iota // /proc/PID/exe is that binary
	execRunGone                     // exited (or a zombie): /proc cannot say
	execRunOther                    // alive, running another binary
)

// execFromProc waits briefly until pid runs the binary id (its exec has
// completed), then reads what /proc knows of it.
func execFromProc(procRoot string, pid int, id execFileID, at time.Time) (s execSighting, p event.Process, missing []string, run execRun) {
	s = execSighting{PID: pid, UID: -1, Time: at}
	exe := filepath.Join(procRoot, strconv.Itoa(pid), "exe")
	deadline := time.Now().Add(execCompleteWait)
	for {
		if fi, err := os.Stat(exe); err == nil {
			if got, ok := execFileIDOf(fi); ok && (id == (execFileID{}) || got == id) {
				run = execRunConfirmed
				break
			}
		} else {
			run = execRunGone
			break
		}
		if time.Now().After(deadline) {
			run = execRunOther
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	p, err := procfs.Read(procRoot, pid)
	missing = procfs.MissingKeys(err)
	s.PPID = int(p.PPID)
	s.Exe = p.ExecutablePath
	if uid, err := strconv.Atoi(p.UserID); err == nil {
		s.UID = uid
	}
	if c, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm")); err == nil {
		s.Comm = strings.TrimSuffix(string(c), "\n")
	}
	if cg, ok := execCgroupID(procRoot, pid); ok {
		p.CgroupID = int64(cg)
		s.CgroupID = cg
	} else {
		missing = append(missing, event.KeyProcessCgroupID)
	}
	if s.PPID > 0 {
		p.Ancestry = execAncestry(procRoot, pid, s.PPID)
	}
	return s, p, missing, run
}

// execCgroupID returns the cgroup v2 id of pid: the inode of its cgroup
// directory, which is what bpf_get_current_cgroup_id reports.
func execCgroupID(procRoot string, pid int) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			var st unix.Stat_t
			if unix.Stat(filepath.Join("/sys/fs/cgroup", rest), &st) == nil {
				return st.Ino, true
			}
		}
	}
	return 0, false
}

func execDropKey(keys []string, key string) []string {
	out := keys[:0:0]
	for _, k := range keys {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}

// execFilesystems lists one mount point per real (block- or memory-backed)
// filesystem, for FAN_MARK_FILESYSTEM.
func execFilesystems(procRoot string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	virtual := map[string]bool{"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true,
		"mqueue": true, "debugfs": true, "tracefs": true, "securityfs": true, "bpf": true, "configfs": true,
		"fusectl": true, "pstore": true, "hugetlbfs": true, "autofs": true, "binfmt_misc": true, "nsfs": true,
		"efivarfs": true, "rpc_pipefs": true, "devtmpfs": true}
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint opts... - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 || virtual[g[0]] || seen[f[2]] {
			continue
		}
		seen[f[2]] = true
		out = append(out, execUnescapeMount(f[4]))
	}
	return out, nil
}

// execUnescapeMount undoes mountinfo's octal escapes (\040 for a space).
func execUnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
