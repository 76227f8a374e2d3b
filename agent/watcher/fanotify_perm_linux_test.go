package watcher

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Short-lived actors in held directories are captured too: a listing of
// the directory itself, a read of an entry, and a read in a subdirectory of a
// recursive rule that appeared after the watcher started.
func TestFanotifyShortLivedInDirectories(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "1")
	_, s := startFileWatcher(t, []FileRule{{Name: "tree", Severity: event.SeverityWarn, Paths: []string{dir}, Recursive: true, HoldOpens: true}}, MechanismFanotify)
	lsExe, _ := filepath.EvalSymlinks("/bin/ls")
	catExe, _ := filepath.EvalSymlinks("/bin/cat")
	exact := func(e *event.Event, exe, cmdline string) {
		t.Helper()
		p := e.Process
		if p.PPID != int64(os.Getpid()) || p.UserName != "root" || p.UserID != "0" ||
			p.ExecutablePath != exe || p.CommandLine != cmdline || len(e.Missing) != 0 {
			t.Errorf("%s %s: actor %+v missing %v", e.Name, e.File.Path, *p, e.Missing)
		}
	}
	pid := run(t, "/bin/ls", dir)
	exact(s.waitFor(t, "listing", and(on(event.FileAccess, dir), byPID(pid))), lsExe, "/bin/ls "+dir)
	pid = run(t, "/bin/cat", f)
	exact(s.waitFor(t, "entry read", and(on(event.FileAccess, f), byPID(pid))), catExe, "/bin/cat "+f)

	nf := filepath.Join(dir, "new", "f")
	// The agent's own changes are not reported: another process makes it.
	run(t, "/bin/mkdir", filepath.Dir(nf))
	// The new directory is marked before its creation is reported.
	s.waitFor(t, "new subdirectory", on(event.FileCreate, filepath.Dir(nf)))
	writeFile(t, nf, "1")
	pid = run(t, "/bin/cat", nf)
	exact(s.waitFor(t, "read in the new subdirectory", and(on(event.FileAccess, nf), byPID(pid))), catExe, "/bin/cat "+nf)
}

// Stopping the watcher while another process keeps opening a watched file
// leaves nobody blocked: the capture group is closed on shutdown, and the
// kernel then allows every open still waiting for an answer.
func TestFanotifyStopDoesNotHangOpens(t *testing.T) {
	needRoot(t)
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "1")
	w, err := NewFileWatcher([]FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{f}, HoldOpens: true}}, Options{Mechanism: MechanismFanotify})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := w.Start(ctx, newTripSink()); err != nil {
		t.Fatal(err)
	}
	opens := startOpener(t, f, 0)
	progress := func(what string, want uint64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for opens.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the opener is stuck after %d opens, want %d", what, opens.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCounter(t, w, "opens_captured", 100)
	cancel() // mid-way: the opener is in the middle of its opens
	deadline := time.Now().Add(20 * time.Second)
	for fanotifyGroups(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d fanotify groups still open 20s after cancel", fanotifyGroups(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	progress("after stop", opens.Load()+1000)
	cmd := exec.Command("/bin/cat", f)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("cat after stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Error("cat of the watched file hung after the watcher stopped")
	}
}

// Without permission events (a kernel built without
// CONFIG_FANOTIFY_ACCESS_PERMISSIONS: simulated by making the group's
// creation fail, since this kernel has them) the watcher says so once and
// runs as before, reading actors after the event.
func TestFanotifyWithoutOpenCapture(t *testing.T) {
	needRoot(t)
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "1")
	rs, err := compileFileRules([]FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{f}, HoldOpens: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.classify(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	w := newFanotifyWatcher(rs, Options{}, newTextLogger(&logs))
	w.captureInit = func() (int, error) { return -1, fmt.Errorf("opening fanotify for permission events: %w", unix.EINVAL) }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newTripSink()
	if err := w.start(ctx, s); err != nil {
		t.Fatal(err)
	}
	if w.captureDone != nil {
		t.Error("a capture loop runs without a capture group")
	}
	pid := run(t, "/bin/cat", f)
	s.waitFor(t, "access by cat", and(on(event.FileAccess, f), byPID(pid)))
	if got := logs.String(); strings.Count(got, "fanotify permission events unavailable") != 1 || !strings.Contains(got, "invalid argument") {
		t.Errorf("want one warning naming the cause, got:\n%s", got)
	}
	if c := w.counters()["opens_captured"]; c != 0 {
		t.Errorf("opens_captured %d without a capture group", c)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fanotifyGroups counts this process's fanotify descriptors.
func fanotifyGroups(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "anon_inode:[fanotify]" {
			n++
		}
	}
	return n
}

// startOpener runs TestFanotifyOpener in a child process: open+close of path
// n times (0: until killed). The returned counter follows its progress.
func startOpener(tb testing.TB, path string, n int) *atomic.Uint64 {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestFanotifyOpener$")
	child.Env = append(os.Environ(), "TRIPWIRE_OPENER="+path, "TRIPWIRE_OPENER_N="+strconv.Itoa(n))
	out, err := child.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { child.Process.Kill(); child.Wait() })
	var opens atomic.Uint64
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "opens "), 10, 64); err == nil {
				opens.Store(v)
			}
		}
	}()
	return &opens
}

// TestFanotifyOpener is the child of startOpener and of
// BenchmarkFanotifyOpenLatency: it opens and closes a file, printing its
// progress every 100 opens and, when told how many, the mean time per open.
func TestFanotifyOpener(t *testing.T) {
	path := os.Getenv("TRIPWIRE_OPENER")
	if path == "" {
		t.Skip("child process of the open-capture tests and benchmarks")
	}
	n, _ := strconv.Atoi(os.Getenv("TRIPWIRE_OPENER_N"))
	start := time.Now()
	for i := 1; n == 0 || i <= n; i++ {
		fd, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		fd.Close()
		if i%100 == 0 {
			fmt.Printf("opens %d\n", i)
		}
	}
	fmt.Printf("ns_per_open %d\n", time.Since(start).Nanoseconds()/int64(n))
}
