package watcher

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// Process watcher mechanisms, best first.
const (
	procMechEBPF     = "ebpf"           // sched_process_exec, filtered in the kernel
	procMechFanotify = "fanotify_exec"  // FAN_OPEN_EXEC marks, then /proc
	procMechProcConn = "proc_connector" // netlink proc connector, then /proc
)

// execAncestryDepth bounds the ancestry chain carried in exec events.
const execAncestryDepth = 8

// execCommLen is TASK_COMM_LEN - 1: the kernel keeps this many bytes of a name.
const execCommLen = 15

// execSearchPath is where a name rule with Resolve looks for the binaries it
// names, so that a copy or link of them under another name still trips. It is
// fixed rather than taken from the agent's environment, which a service
// manager usually trims.
var execSearchPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// execFileID identifies a file across names: device (user-space st_dev encoding)
// and inode.
type execFileID struct{ Dev, Ino uint64 }

// execSighting is what a mechanism saw of one exec, before matching. Zero
// values mean "not seen by this mechanism".
type execSighting struct {
	PID, PPID     int
	UID           int // -1: unknown
	Comm          string
	Filename      string // the path as passed to execve, possibly relative
	Exe           string // the resolved executable path
	Resolved      string // the resolved path as the kernel walked it, if complete
	ID            execFileID
	Size          int64
	Args          []byte // NUL-separated argv, as in /proc/PID/cmdline
	ArgsTruncated bool
	CgroupID      uint64
	Time          time.Time
}

// execTarget is one ProcessRule compiled for matching.
type execTarget struct {
	rule    ProcessRule
	names   map[string]bool
	paths   map[string]bool
	pathIDs map[execFileID]string // inode of each watched path, for relative execs
	ids     map[execFileID]string // Resolve: watched binaries by inode -> resolved path
	sizes   map[int64]bool        // Resolve: sizes of watched binaries (copy check)
	hashes  map[[sha256.Size]byte]string
}

// execRules is the compiled rule set of one process watcher, with what the
// kernel-side filters need.
type execRules struct {
	src     []ProcessRule // as given, to recompile when binaries change
	targets []*execTarget
	// Kernel-side filter sets: a superset of what the targets match.
	names map[string]bool // truncated to execCommLen
	ids   map[execFileID]bool
	sizes map[int64]bool
	// files are the watched binaries, resolved, for inode marks.
	files map[string]bool

	hashMu sync.Mutex
	hashes map[execHashKey][sha256.Size]byte
}

// sameFilter reports whether two rule sets need the same kernel-side maps.
func (rs *execRules) sameFilter(o *execRules) bool {
	return maps.Equal(rs.names, o.names) && maps.Equal(rs.ids, o.ids) && maps.Equal(rs.sizes, o.sizes)
}

type execHashKey struct {
	id   execFileID
	size int64
	mod  int64
}

// compileExecRules resolves the rules' paths and names to the files they
// watch. A path that does not exist yet is still matched by name and path;
// it is an error only when nothing of the rule can be watched.
func compileExecRules(rules []ProcessRule) (*execRules, error) {
	rs := &execRules{
		src:   rules,
		names: map[string]bool{}, ids: map[execFileID]bool{}, sizes: map[int64]bool{},
		files: map[string]bool{}, hashes: map[execHashKey][sha256.Size]byte{},
	}
	for _, r := range rules {
		if len(r.Names) == 0 && len(r.Paths) == 0 {
			return nil, fmt.Errorf("process rule %q: no names and no paths", r.Name)
		}
		t := &execTarget{rule: r, names: map[string]bool{}, paths: map[string]bool{},
			pathIDs: map[execFileID]string{}, ids: map[execFileID]string{}, sizes: map[int64]bool{},
			hashes: map[[sha256.Size]byte]string{}}
		resolve := func(p string) {
			real, id, size, err := statExec(p)
			if err != nil {
				return
			}
			t.ids[id] = real
			rs.ids[id] = true
			rs.files[real] = true
			if h, err := rs.hash(real, id, size); err == nil {
				t.sizes[size] = true
				t.hashes[h] = real
				rs.sizes[size] = true
			}
		}
		for _, n := range r.Names {
			if n == "" || strings.ContainsRune(n, '/') {
				return nil, fmt.Errorf("process rule %q: name %q is not a base name", r.Name, n)
			}
			t.names[n] = true
			rs.names[truncComm(n)] = true
			if r.Resolve {
				for _, dir := range execSearchPath {
					resolve(filepath.Join(dir, n))
				}
			}
		}
		for _, p := range r.Paths {
			if !filepath.IsAbs(p) {
				return nil, fmt.Errorf("process rule %q: path %q is not absolute", r.Name, p)
			}
			p = filepath.Clean(p)
			t.paths[p] = true
			rs.names[truncComm(filepath.Base(p))] = true
			if real, id, _, err := statExec(p); err == nil {
				t.pathIDs[id] = p
				rs.ids[id] = true
				rs.files[real] = true
			}
			if r.Resolve {
				resolve(p)
			}
		}
		rs.targets = append(rs.targets, t)
	}
	return rs, nil
}

// statExec resolves p (following symlinks) to the regular file it names.
func statExec(p string) (real string, id execFileID, size int64, err error) {
	real, err = filepath.EvalSymlinks(p)
	if err != nil {
		return "", id, 0, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", id, 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", id, 0, fmt.Errorf("%s is not a regular file", real)
	}
	id, ok := execFileIDOf(fi)
	if !ok {
		return "", id, 0, fmt.Errorf("%s: no inode on this OS", real)
	}
	return real, id, fi.Size(), nil
}

// hash returns the SHA-256 of the file at p, cached by inode, size and mtime.
func (rs *execRules) hash(p string, id execFileID, size int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, err
	}
	if fid, ok := execFileIDOf(fi); ok && id != (execFileID{}) && fid != id {
		return sum, fmt.Errorf("%s changed while hashing", p)
	}
	key := execHashKey{id: id, size: size, mod: fi.ModTime().UnixNano()}
	rs.hashMu.Lock()
	sum, ok := rs.hashes[key]
	rs.hashMu.Unlock()
	if ok {
		return sum, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hashing %s: %w", p, err)
	}
	copy(sum[:], h.Sum(nil))
	rs.hashMu.Lock()
	if len(rs.hashes) > 4096 {
		clear(rs.hashes)
	}
	rs.hashes[key] = sum
	rs.hashMu.Unlock()
	return sum, nil
}

func truncComm(n string) string {
	if len(n) > execCommLen {
		return n[:execCommLen]
	}
	return n
}

// execName is the name a process was exec'd under: the base of the path as
// passed to execve, else its comm.
func (s *execSighting) execName() string {
	if s.Filename != "" && !strings.HasPrefix(s.Filename, "/dev/fd/") {
		return filepath.Base(s.Filename)
	}
	return s.Comm
}

// match reports whether s trips t, and how. A name rule matches the name as
// exec'd (so a symlink named nc trips "nc"); a path rule the path as exec'd;
// with Resolve, the binary actually loaded, by inode or by content.
func (rs *execRules) match(t *execTarget, s *execSighting, procRoot string) (how string, ok bool) {
	if n := s.execName(); n != "" {
		if t.names[n] {
			return "name", true
		}
		// Only a kernel comm can be cut short; names longer than it match
		// on the prefix when nothing longer is known.
		if s.Filename == "" && len(n) == execCommLen {
			for name := range t.names {
				if truncComm(name) == n {
					return "name", true
				}
			}
		}
	}
	if len(t.paths) > 0 {
		switch {
		case filepath.IsAbs(s.Filename):
			if t.paths[filepath.Clean(s.Filename)] {
				return "path", true
			}
		case s.Filename != "":
			if cwd, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(s.PID), "cwd")); err == nil {
				if t.paths[filepath.Join(cwd, s.Filename)] {
					return "path", true
				}
			} else if p, ok := t.pathIDs[s.ID]; ok && filepath.Base(p) == filepath.Base(s.Filename) {
				// The process is gone: the same file under the same name.
				return "path", true
			}
		default:
			// The mechanism saw only the resolved binary (fanotify, proc
			// connector): a path rule then matches it by inode.
			if _, ok := t.pathIDs[s.ID]; ok && s.ID != (execFileID{}) {
				return "path", true
			}
			if s.Exe != "" && t.paths[s.Exe] {
				return "path", true
			}
		}
	}
	if t.rule.Resolve {
		if _, ok := t.ids[s.ID]; ok && s.ID != (execFileID{}) {
			return "inode", true
		}
		if t.sizes[s.Size] {
			if sum, err := rs.hashExec(s, procRoot); err == nil {
				if _, ok := t.hashes[sum]; ok {
					return "content", true
				}
			}
		}
	}
	return "", false
}

// hashExec hashes the binary s ran: through /proc/PID/exe while the process
// lives, else through the exec'd path if it still names the same inode.
func (rs *execRules) hashExec(s *execSighting, procRoot string) ([sha256.Size]byte, error) {
	exe := filepath.Join(procRoot, strconv.Itoa(s.PID), "exe")
	if sum, err := rs.hash(exe, s.ID, s.Size); err == nil {
		return sum, nil
	}
	if filepath.IsAbs(s.Filename) {
		return rs.hash(s.Filename, s.ID, s.Size)
	}
	if s.Exe != "" {
		return rs.hash(s.Exe, s.ID, s.Size) // a polling mechanism's image path
	}
	return [sha256.Size]byte{}, fmt.Errorf("binary of pid %d is gone", s.PID)
}

// excluded reports whether the exec is expected: run by an excluded user, or
// started by an excluded parent process (base name or path of its binary).
func execExcluded(ex Exclusions, s *execSighting, user string, parentExe string) bool {
	for _, u := range ex.Users {
		if (s.UID >= 0 && u == strconv.Itoa(s.UID)) || (user != "" && u == user) {
			return true
		}
	}
	if parentExe == "" {
		return false
	}
	for _, p := range ex.Processes {
		if p == parentExe || p == filepath.Base(parentExe) {
			return true
		}
	}
	return false
}

// trips matches s against every rule and builds one event per rule it
// trips. proc holds what the mechanism and /proc know of the new process;
// missing lists attribute keys that could not be filled.
func (rs *execRules) trips(s *execSighting, proc event.Process, mech string, missing []string, procRoot string) []*event.Event {
	var out []*event.Event
	parentExe := ""
	for _, t := range rs.targets {
		if _, ok := rs.match(t, s, procRoot); !ok {
			continue
		}
		if len(t.rule.Exclude.Processes) > 0 && parentExe == "" && s.PPID > 0 {
			parentExe, _ = os.Readlink(filepath.Join(procRoot, strconv.Itoa(s.PPID), "exe"))
		}
		if execExcluded(t.rule.Exclude, s, proc.UserName, parentExe) {
			continue
		}
		p := proc
		out = append(out, &event.Event{
			Name:      event.ProcessExec,
			Severity:  t.rule.Severity,
			Rule:      t.rule.Name,
			Time:      s.Time,
			Mechanism: mech,
			Missing:   append([]string(nil), missing...),
			Process:   &p,
		})
	}
	return out
}

// execAncestry renders the ancestry of pid, parent first. When pid is already
// gone it starts from ppid, which usually outlives its child.
func execAncestry(procRoot string, pid, ppid int) string {
	if a := procfs.Ancestry(procRoot, pid, execAncestryDepth); a != "" {
		return a
	}
	if ppid <= 0 {
		return ""
	}
	exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(ppid), "exe"))
	if err != nil {
		return ""
	}
	head := strconv.Itoa(ppid) + ":" + procfs.Printable(exe)
	if ppid == 1 {
		return head
	}
	if rest := procfs.Ancestry(procRoot, ppid, execAncestryDepth-1); rest != "" {
		return head + " <- " + rest
	}
	return head
}

// execProcRoot returns opts.ProcRoot or the default.
func execProcRoot(opts Options) string {
	if opts.ProcRoot != "" {
		return opts.ProcRoot
	}
	return procfs.DefaultRoot
}

// execSortedKeys returns the keys of a set, sorted, for stable logs.
func execSortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Counters is implemented by watchers that count what their mechanism saw
// (kernel-side matches and losses, malformed records), so /metrics can
// export them. Keys are stable snake_case names.
type Counters interface {
	Counters() map[string]uint64
}

// execNetLogger returns opts.Logger or one that discards.
func execNetLogger(opts Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}
