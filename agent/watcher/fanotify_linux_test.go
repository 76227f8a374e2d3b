package watcher

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) for fanotify: run `sudo go test ./agent/watcher/`")
	}
}

func run(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return cmd.Process.Pid
}

func byPID(pid int) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Process != nil && e.Process.PID == int64(pid) }
}

func and(ps ...func(*event.Event) bool) func(*event.Event) bool {
	return func(e *event.Event) bool {
		for _, p := range ps {
			if !p(e) {
				return false
			}
		}
		return true
	}
}

func countOf(es []*event.Event, pred func(*event.Event) bool) int {
	n := 0
	for _, e := range es {
		if pred(e) {
			n++
		}
	}
	return n
}

// A `cat` kept alive (reading stdin after the file): every actor field must
// be exact, and it is one access event, with the default mechanism and with
// each one that reports reads.
func TestFanotifyCatAccess(t *testing.T) {
	needRoot(t)
	for _, mech := range readingMechanisms(t) {
		name := mech
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { testCatAccess(t, mech) })
	}
}

func testCatAccess(t *testing.T, mech string) {
	dir := t.TempDir()
	f, sentinel := filepath.Join(dir, "secret"), filepath.Join(dir, "sentinel")
	writeFile(t, f, "top secret\n")
	writeFile(t, sentinel, "x")
	w, s := startFileWatcher(t, []FileRule{{Name: "secrets", Severity: event.SeverityCritical, Paths: []string{f, sentinel}}}, mech)
	if (mech != "" && w.Mechanism() != mech) || w.Missing() != nil {
		t.Fatalf("mechanism %s missing %v", w.Mechanism(), w.Missing())
	}
	cmd := exec.Command("/bin/cat", f, "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e := s.waitFor(t, "access by cat", and(on(event.FileAccess, f), byPID(cmd.Process.Pid)))
	catExe, _ := filepath.EvalSymlinks("/bin/cat")
	p := e.Process
	if p.PPID != int64(os.Getpid()) || p.UserName != "root" || p.UserID != "0" ||
		p.ExecutablePath != catExe || p.CommandLine != "/bin/cat "+f+" -" || len(e.Missing) != 0 {
		t.Errorf("actor: %+v missing %v", *p, e.Missing)
	}
	self, _ := os.Executable()
	if !strings.HasPrefix(p.Ancestry, strconv.Itoa(os.Getpid())+":"+self) {
		t.Errorf("ancestry %q does not start with this test process", p.Ancestry)
	}
	if e.Rule != "secrets" || e.Severity != event.SeverityCritical || e.Mechanism != w.Mechanism() || e.Time.IsZero() {
		t.Errorf("event: %+v", e)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	sentinelPID := run(t, "/bin/cat", sentinel)
	s.waitFor(t, "sentinel access", and(on(event.FileAccess, sentinel), byPID(sentinelPID)))
	got := s.before(and(on(event.FileAccess, sentinel), byPID(sentinelPID)))
	if n := countOf(got, func(e *event.Event) bool { return e.File.Path == f }); n != 1 {
		t.Errorf("want exactly one event for the watched file, got %d:\n%s", n, describe(got))
	}
}

// forEachMechanism runs f with the default mechanism and with fanotify
// forced (the default here may be an eBPF mode).
func forEachMechanism(t *testing.T, f func(t *testing.T, mech string)) {
	t.Run("default", func(t *testing.T) { f(t, "") })
	if err := probeFileMechanism(MechanismFanotify); err != nil {
		t.Logf("fanotify unavailable: %v", err)
		return
	}
	t.Run(MechanismFanotify, func(t *testing.T) { f(t, MechanismFanotify) })
}

// readingMechanisms are the default ("") and every forced file mechanism
// this host can run that reports reads.
func readingMechanisms(t *testing.T) []string {
	t.Helper()
	out := []string{""}
	for _, m := range []string{MechanismEBPF, MechanismEBPFLSM, MechanismEBPFSyscall, MechanismFanotify} {
		if err := probeFileMechanism(m); err != nil {
			t.Logf("%s unavailable: %v", m, err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// Short-lived `cat`s of a file whose rule holds opens (HoldOpens), each gone
// by the time its event is read: the actor was captured while it waited in
// open(2) (the FAN_OPEN_PERM group), so every field is exact with nothing
// missing, and each cat is one access event.
func TestFanotifyShortLivedCat(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f, sentinel := filepath.Join(dir, "f"), filepath.Join(dir, "sentinel")
	writeFile(t, f, "data")
	writeFile(t, sentinel, "x")
	w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f, sentinel}, HoldOpens: true}}, MechanismFanotify)
	catExe, _ := filepath.EvalSymlinks("/bin/cat")
	const n = 20
	var pids []int
	for range n {
		pid := run(t, "/bin/cat", f) // returns once cat has exited and been reaped
		pids = append(pids, pid)
		e := s.waitFor(t, "access by cat", and(on(event.FileAccess, f), byPID(pid)))
		p := e.Process
		if p.PPID != int64(os.Getpid()) || p.UserName != "root" || p.UserID != "0" ||
			p.ExecutablePath != catExe || p.CommandLine != "/bin/cat "+f || len(e.Missing) != 0 {
			t.Errorf("short-lived cat %d: actor %+v missing %v", pid, *p, e.Missing)
		}
	}
	sp := run(t, "/bin/cat", sentinel)
	sent := and(on(event.FileAccess, sentinel), byPID(sp))
	s.waitFor(t, "sentinel", sent)
	got := s.before(sent)
	for _, pid := range pids {
		if c := countOf(got, and(on(event.FileAccess, f), byPID(pid))); c != 1 {
			t.Errorf("cat %d: want one access, got %d:\n%s", pid, c, describe(got))
		}
	}
	if c := countOf(got, on(event.FileAccess, f)); c != n {
		t.Errorf("want %d accesses, got %d:\n%s", n, c, describe(got))
	}
	if c := w.(Counters).Counters()["opens_captured"]; c < n {
		t.Errorf("opens_captured %d, want at least %d", c, n)
	}
}

func TestFanotifyAppendIsModify(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		f, sentinel := filepath.Join(dir, "f"), filepath.Join(dir, "sentinel")
		writeFile(t, f, "data\n")
		writeFile(t, sentinel, "x")
		_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f, sentinel}}}, mech)
		pid := run(t, "/bin/sh", "-c", "echo x >> "+f)
		e := s.waitFor(t, "modify by sh", and(on(event.FileModify, f), byPID(pid)))
		if e.Process.CommandLine != "/bin/sh -c 'echo x >> "+f+"'" {
			t.Logf("command line (sh may have exited): %q missing %v", e.Process.CommandLine, e.Missing)
		}
		sp := run(t, "/bin/cat", sentinel)
		sent := and(on(event.FileAccess, sentinel), byPID(sp))
		s.waitFor(t, "sentinel", sent)
		got := s.before(sent)
		if countOf(got, on(event.FileModify, f)) != 1 || countOf(got, on(event.FileAccess, f)) != 0 {
			t.Errorf("want one modify and no access:\n%s", describe(got))
		}
	})
}

func TestFanotifyDirectoryEntries(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
		writeFile(t, a, "1")
		outside := filepath.Join(t.TempDir(), "moved-out")
		_, s := startFileWatcher(t, []FileRule{{Name: "dir", Severity: event.SeverityInfo, Paths: []string{dir}}}, mech)

		pid := run(t, "/bin/mv", a, b)
		e := s.waitFor(t, "rename", on(event.FileRename, a))
		if e.File.RenameTo != b || e.Process.PID != int64(pid) {
			t.Errorf("rename: %s", describe([]*event.Event{e}))
		}
		run(t, "/bin/touch", c)
		s.waitFor(t, "create", on(event.FileCreate, c))
		run(t, "/bin/chmod", "600", c)
		s.waitFor(t, "attrib", on(event.FileAttrib, c))
		run(t, "/bin/mv", c, outside)
		e = s.waitFor(t, "rename out of the directory", on(event.FileRename, c))
		if e.File.RenameTo != outside {
			t.Errorf("rename out: %s", describe([]*event.Event{e}))
		}
		// Moved in from an unwatched directory: its old name was never watched.
		back := filepath.Join(dir, "back")
		run(t, "/bin/mv", outside, back)
		s.waitFor(t, "move in as a create", on(event.FileCreate, back))
		pid = run(t, "/bin/rm", b)
		e = s.waitFor(t, "delete", on(event.FileDelete, b))
		if e.Process.PID != int64(pid) {
			t.Errorf("delete: %s", describe([]*event.Event{e}))
		}
		run(t, "/bin/ls", dir)
		s.waitFor(t, "listing the directory", on(event.FileAccess, dir))
		// The watched directory itself, renamed and deleted, seen through its
		// parent; a directory put back in its place is watched again.
		moved := dir + ".moved"
		run(t, "/bin/mv", dir, moved)
		s.waitFor(t, "rename of the watched directory", on(event.FileRename, dir))
		run(t, "/bin/mkdir", dir)
		s.waitFor(t, "re-creation of the watched directory", on(event.FileCreate, dir))
		run(t, "/bin/touch", filepath.Join(dir, "again"))
		s.waitFor(t, "create in the re-created directory", on(event.FileCreate, filepath.Join(dir, "again")))
		run(t, "/bin/rm", "-r", moved)
		for _, e := range s.all() {
			if err := stamp(e).Validate(); err != nil {
				t.Errorf("invalid event %s: %v", describe([]*event.Event{e}), err)
			}
		}
	})
}

// A single watched file: its deletion and renaming are seen through its
// directory, a replacement is watched again, and its siblings trip nothing.
func TestFanotifyWatchedFileReplaced(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		f, sibling := filepath.Join(dir, "f"), filepath.Join(dir, "sibling")
		writeFile(t, f, "1")
		writeFile(t, sibling, "1")
		_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{f}}}, mech)
		run(t, "/bin/cat", sibling)
		run(t, "/bin/sh", "-c", "echo new > "+f+".tmp && mv "+f+".tmp "+f)
		e := s.waitFor(t, "replacement by rename", on(event.FileRename, f+".tmp"))
		if e.File.RenameTo != f {
			t.Errorf("rename: %s", describe([]*event.Event{e}))
		}
		pid := run(t, "/bin/cat", f)
		s.waitFor(t, "access to the replacement", and(on(event.FileAccess, f), byPID(pid)))
		run(t, "/bin/rm", f)
		s.waitFor(t, "delete", on(event.FileDelete, f))
		for _, e := range s.all() {
			if e.File.Path == sibling {
				t.Errorf("sibling tripped: %s", describe([]*event.Event{e}))
			}
		}
	})
}

func TestFanotifyRecursive(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		deep := filepath.Join(dir, "x", "y")
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(deep, "old"), "1")
		_, s := startFileWatcher(t, []FileRule{{Name: "tree", Severity: event.SeverityWarn, Paths: []string{dir}, Recursive: true}}, mech)
		pid := run(t, "/bin/cat", filepath.Join(deep, "old"))
		s.waitFor(t, "access deep in the tree", and(on(event.FileAccess, filepath.Join(deep, "old")), byPID(pid)))

		// mkdir and the write race the new directory's mark: the file is seen
		// either by its own event or as found when the directory is marked.
		nf := filepath.Join(dir, "new", "deeper", "f")
		run(t, "/bin/sh", "-c", "mkdir -p "+filepath.Dir(nf)+" && echo x > "+nf)
		s.waitFor(t, "file in a new subdirectory", func(e *event.Event) bool {
			return (e.Name == event.FileCreate || e.Name == event.FileModify) && e.File.Path == nf
		})
		// Once seen, the new directory is watched like the rest.
		pid = run(t, "/bin/cat", nf)
		s.waitFor(t, "access in the new subdirectory", and(on(event.FileAccess, nf), byPID(pid)))
		// A renamed subdirectory keeps reporting under its new name.
		run(t, "/bin/mv", filepath.Join(dir, "new"), filepath.Join(dir, "renamed"))
		moved := filepath.Join(dir, "renamed", "deeper", "f")
		pid = run(t, "/bin/cat", moved)
		s.waitFor(t, "access after the directory rename", and(on(event.FileAccess, moved), byPID(pid)))
	})
}

// Exclusions: an excluded process or user trips nothing; a later access by
// someone else arrives, and is the only one. The excluded actors stay alive
// until the watcher has judged them (its excluded_trips counter), so the test
// checks the exclusion, not a race with their exit.
func TestFanotifyExclusions(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := sharedDir(t)
		f := filepath.Join(dir, "f")
		writeFile(t, f, "1\n")
		w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f},
			Exclude: Exclusions{Processes: []string{"cat"}, Users: []string{"nobody"}}}}, mech)
		cat := exec.Command("/bin/cat", f, "-")
		catIn, _ := cat.StdinPipe()
		tail := exec.Command("/usr/bin/tail", "-f", f)
		tail.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		for _, c := range []*exec.Cmd{cat, tail} {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		}
		waitCounter(t, w, "excluded_trips", 2)
		catIn.Close()
		tail.Process.Kill()
		cat.Wait()
		tail.Wait()
		// Not excluded: root's head. It must be the first and only trip.
		headPID := run(t, "/usr/bin/head", "-c1", f)
		s.waitFor(t, "root's head", and(on(event.FileAccess, f), byPID(headPID)))
		if got := s.before(and(on(event.FileAccess, f), byPID(headPID))); len(got) != 0 {
			t.Errorf("excluded actors tripped (cat pid %d, nobody's tail pid %d):\n%s", cat.Process.Pid, tail.Process.Pid, describe(got))
		}
	})
}

// An excluded process that has already exited when its event is read is
// still excluded: its actor was captured while it waited in open(2), so its
// command name and executable are known and nothing trips.
func TestFanotifyExclusionShortLived(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "1")
	w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f},
		Exclude: Exclusions{Processes: []string{"cat"}}, HoldOpens: true}}, MechanismFanotify)
	const n = 20
	for range n {
		run(t, "/bin/cat", f)
	}
	headPID := run(t, "/usr/bin/head", "-c1", f)
	sent := and(on(event.FileAccess, f), byPID(headPID))
	s.waitFor(t, "head", sent)
	if leaked := s.before(sent); len(leaked) != 0 {
		t.Errorf("%d short-lived excluded cats tripped:\n%s", len(leaked), describe(leaked))
	}
	if c := w.(Counters).Counters()["excluded_trips"]; c < n {
		t.Errorf("excluded_trips %d, want at least %d", c, n)
	}
}

func waitCounter(t *testing.T, w Watcher, name string, atLeast uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for w.(Counters).Counters()[name] < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("counter %s stayed at %d, want %d: %v", name, w.(Counters).Counters()[name], atLeast, w.(Counters).Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The agent's own reads never trip.
func TestFanotifyOwnAccessIgnored(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		f := filepath.Join(dir, "f")
		writeFile(t, f, "1")
		_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
		pid := run(t, "/bin/cat", f)
		sent := and(on(event.FileAccess, f), byPID(pid))
		s.waitFor(t, "cat", sent)
		if got := s.before(sent); len(got) != 0 {
			t.Errorf("own access tripped:\n%s", describe(got))
		}
	})
}

// Planting a honeyfile trips nothing and never overwrites; a read of it does.
func TestFanotifyHoneyfile(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := sharedDir(t)
		decoy, existing := filepath.Join(dir, "aws_credentials"), filepath.Join(dir, "real")
		writeFile(t, existing, "real content")
		_, s := startFileWatcher(t, []FileRule{
			{Name: "decoy", Severity: event.SeverityCritical, Paths: []string{decoy},
				Plant: &Honeyfile{Content: "[default]\nkey=AKIA\n", Mode: 0o640, Owner: "nobody", Group: "65534"}},
			{Name: "existing", Severity: event.SeverityCritical, Paths: []string{existing},
				Plant: &Honeyfile{Content: "decoy"}},
		}, mech)
		fi, err := os.Stat(decoy)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if b, _ := os.ReadFile(decoy); string(b) != "[default]\nkey=AKIA\n" || fi.Mode().Perm() != 0o640 || st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("decoy: %q mode %v owner %d:%d", b, fi.Mode(), st.Uid, st.Gid)
		}
		if b, _ := os.ReadFile(existing); string(b) != "real content" {
			t.Errorf("existing file overwritten: %q", b)
		}
		pid := run(t, "/bin/cat", decoy)
		sent := and(on(event.FileAccess, decoy), byPID(pid))
		s.waitFor(t, "read of the decoy", sent)
		if got := s.before(sent); len(got) != 0 {
			t.Errorf("planting tripped:\n%s", describe(got))
		}
		pid = run(t, "/bin/cat", existing)
		s.waitFor(t, "read of the existing file", and(on(event.FileAccess, existing), byPID(pid)))
	})
}

func TestFanotifyForcedAndUnknownMechanism(t *testing.T) {
	if _, err := NewFileWatcher(nil, Options{Mechanism: "inotify"}); err == nil {
		t.Error("unknown mechanism accepted")
	}
	if os.Geteuid() == 0 {
		w, err := NewFileWatcher(nil, Options{Mechanism: MechanismFanotify})
		if err != nil || w.Mechanism() != MechanismFanotify {
			t.Errorf("forced fanotify as root: %v", err)
		}
	}
}

// Without CAP_SYS_ADMIN fanotify cannot start: the watcher falls back to
// fsnotify and says so; forcing fanotify is an error. Run as the nobody user
// in a child process, since capabilities are per process.
func TestFileWatcherFallsBackWithoutCapability(t *testing.T) {
	if os.Getenv("TRIPWIRE_FALLBACK_CHILD") != "" {
		t.Skip("child")
	}
	needRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t)
	bin := filepath.Join(dir, "watcher.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	watched := filepath.Join(dir, "f")
	writeFile(t, watched, "1")
	cmd := exec.Command(bin, "-test.run=^TestFileWatcherFallbackChild$", "-test.v")
	cmd.Env = append(os.Environ(), "TRIPWIRE_FALLBACK_CHILD="+watched)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mechanism=fsnotify forced-fanotify-error=opening fanotify: no CAP_SYS_ADMIN") ||
		!strings.Contains(string(out), "falls back to fsnotify") {
		t.Errorf("child: %v\n%s", err, out)
	}
}

func TestFileWatcherFallbackChild(t *testing.T) {
	path := os.Getenv("TRIPWIRE_FALLBACK_CHILD")
	if path == "" {
		t.Skip("runs as a child of TestFileWatcherFallsBackWithoutCapability")
	}
	var logs strings.Builder
	log := newTextLogger(&logs)
	rules := []FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{path}}}
	w, err := NewFileWatcher(rules, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_, ferr := NewFileWatcher(rules, Options{Mechanism: MechanismFanotify})
	t.Logf("mechanism=%s forced-fanotify-error=%s", w.Mechanism(), strings.TrimPrefix(errString(ferr), "file watcher: fanotify was asked for: "))
	t.Logf("missing=%v log=%s", w.Missing(), logs.String())
	if !slices.Equal(w.Missing(), fsnotifyMissing) {
		t.Errorf("missing %v", w.Missing())
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Cancelling the context releases the fanotify group, its marks and every
// descriptor the watcher opened.
func TestFanotifyReleasesOnCancel(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "1")
	countFDs := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := countFDs()
	// A file and its directory may share a rule.
	w, err := NewFileWatcher([]FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{f, dir + "/"}, Recursive: true}},
		Options{Mechanism: MechanismFanotify})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Start(ctx, newTripSink()); err != nil {
		t.Fatal(err)
	}
	if countFDs() <= before {
		t.Fatal("watcher holds no descriptor while running")
	}
	cancel()
	deadline := time.Now().Add(20 * time.Second)
	for countFDs() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors before, %d after cancel", before, countFDs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A process that execs keeps its PID and start time: the actor read for its
// first trip must not be reused for a trip after the exec.
func TestFanotifyActorAfterExec(t *testing.T) {
	needRoot(t)
	forEachMechanism(t, func(t *testing.T, mech string) {
		dir := t.TempDir()
		f := filepath.Join(dir, "f")
		writeFile(t, f, "line\n")
		_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
		// The shell waits for a line on stdin between its read and the exec, so
		// the two reads are two events, not one the kernel merged.
		cmd := exec.Command("/bin/sh", "-c", "read x < "+f+"; read y; exec /bin/cat "+f+" -")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		shExe, _ := filepath.EvalSymlinks("/bin/sh")
		catExe, _ := filepath.EvalSymlinks("/bin/cat")
		first := s.waitFor(t, "the shell's read", and(on(event.FileAccess, f), byPID(cmd.Process.Pid)))
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		second := s.waitFor(t, "cat's read after the exec", func(e *event.Event) bool {
			return e != first && on(event.FileAccess, f)(e) && byPID(cmd.Process.Pid)(e)
		})
		stdin.Close()
		if first.Process.ExecutablePath != shExe {
			t.Errorf("before exec: %s", describe([]*event.Event{first}))
		}
		if second.Process.ExecutablePath != catExe || second.Process.CommandLine != "/bin/cat "+f+" -" {
			t.Errorf("after exec: %s", describe([]*event.Event{second}))
		}
	})
}
