package watcher

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tripwire-sec/tripwire/bpf"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// fileEBPFMechanisms are the eBPF attach modes this kernel can run; a mode
// it cannot (no BPF LSM) is skipped, not failed.
func fileEBPFMechanisms(t *testing.T) []string {
	t.Helper()
	needRoot(t)
	var out []string
	for _, m := range []string{MechanismEBPF, MechanismEBPFLSM, MechanismEBPFSyscall} {
		if err := fileEBPFProbe(m); err != nil {
			t.Logf("%s unavailable: %v", m, err)
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Skip("no eBPF file mechanism on this kernel")
	}
	return out
}

// A short-lived cat, gone before its record is read, is named in full from
// what the kernel read of the task itself.
func TestFileEBPFShortLivedCat(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			writeFile(t, f, "data")
			w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
			if w.Mechanism() != mech || w.Missing() != nil {
				t.Fatalf("mechanism %s missing %v", w.Mechanism(), w.Missing())
			}
			catExe, _ := filepath.EvalSymlinks("/bin/cat")
			for range 20 {
				pid := run(t, "/bin/cat", f)
				e := s.waitFor(t, "access by cat", and(on(event.FileAccess, f), byPID(pid)))
				p := e.Process
				if p.PPID != int64(os.Getpid()) || p.UserName != "root" || p.UserID != "0" ||
					p.ExecutablePath != catExe || p.CommandLine != "/bin/cat "+f || len(e.Missing) != 0 || e.Mechanism != mech {
					t.Errorf("short-lived cat %d: actor %+v missing %v", pid, *p, e.Missing)
				}
			}
		})
	}
}

// A read flood is counted in the kernel: the counts of the events for the
// reader add up to exactly the number of opens, with a handful of events.
func TestFileEBPFCountsEveryOpen(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			writeFile(t, f, "data\n")
			w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
			const n = 20000
			// dash opens the file anew for every redirection.
			pid := run(t, "/bin/sh", "-c", "i=0; while [ $i -lt "+strconv.Itoa(n)+" ]; do read x < "+f+"; i=$((i+1)); done")
			total := func() (sum int64, events int) {
				for _, e := range s.all() {
					if on(event.FileAccess, f)(e) && byPID(pid)(e) {
						sum += max(e.Count, 1)
						events++
					}
				}
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				sum, events := total()
				if sum >= n || time.Now().After(deadline) {
					if sum != n || len(s.lost) != 0 {
						t.Fatalf("counted %d opens in %d events, want %d; lost %v", sum, events, n, s.lost)
					}
					t.Logf("%d opens in %d events", sum, events)
					if events > 40 {
						t.Errorf("%d events for one reader: the kernel did not aggregate", events)
					}
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if c := w.(Counters).Counters(); c["records"] != 1 {
				t.Errorf("want one ring-buffer record for one reader, counters %v", c)
			}
		})
	}
}

// Directory and recursive rules: the kernel walks up to the watched
// directory and the event carries the full path.
func TestFileEBPFDirectories(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			flat, tree := t.TempDir(), t.TempDir()
			deep := filepath.Join(tree, "a", "b", "c")
			if err := os.MkdirAll(deep, 0o755); err != nil {
				t.Fatal(err)
			}
			fFlat, fDeep, fSub := filepath.Join(flat, "x"), filepath.Join(deep, "y"), filepath.Join(flat, "sub")
			writeFile(t, fFlat, "1")
			writeFile(t, fDeep, "2")
			if err := os.Mkdir(fSub, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(fSub, "z"), "3")
			_, s := startFileWatcher(t, []FileRule{
				{Name: "flat", Severity: event.SeverityWarn, Paths: []string{flat}},
				{Name: "tree", Severity: event.SeverityWarn, Paths: []string{tree}, Recursive: true},
			}, mech)
			p1 := run(t, "/bin/cat", fFlat)
			p2 := run(t, "/bin/cat", fDeep)
			p3 := run(t, "/bin/cat", filepath.Join(fSub, "z")) // below a non-recursive rule: not watched
			s.waitFor(t, "flat", and(on(event.FileAccess, fFlat), byPID(p1), func(e *event.Event) bool { return e.Rule == "flat" }))
			s.waitFor(t, "deep", and(on(event.FileAccess, fDeep), byPID(p2), func(e *event.Event) bool { return e.Rule == "tree" }))
			p4 := run(t, "/bin/cat", fFlat)
			s.waitFor(t, "sentinel", byPID(p4))
			if c := countOf(s.all(), byPID(p3)); c != 0 {
				t.Errorf("a file two levels below a non-recursive rule tripped:\n%s", describe(s.all()))
			}
		})
	}
}

// With the watcher's process stopped (SIGSTOP: equally a debugger or a
// frozen cgroup), opens of a watched file still complete: no default
// mechanism makes the opener wait for the agent. The bound is generous (a
// held open would wait until the watcher resumes); the figure is in
// bench/file (BenchmarkStoppedAgent).
func TestFileWatcherStoppedDoesNotBlock(t *testing.T) {
	if os.Getenv("TRIPWIRE_STOPPED_CHILD") != "" {
		t.Skip("child")
	}
	needRoot(t)
	for _, mech := range []string{"", MechanismFanotify} {
		name := mech
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "f")
			writeFile(t, f, "1")
			child := exec.Command(os.Args[0], "-test.run=^TestFileWatcherStoppedChild$", "-test.v")
			child.Env = append(os.Environ(), "TRIPWIRE_STOPPED_CHILD="+f, "TRIPWIRE_STOPPED_MECH="+mech)
			out, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { child.Process.Signal(syscall.SIGCONT); child.Process.Kill(); child.Wait() })
			sc := bufio.NewScanner(out)
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "watching ") {
			}
			t.Log(sc.Text())
			if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			var worst time.Duration
			end := time.Now().Add(2 * time.Second)
			for n := 0; time.Now().Before(end); n++ {
				done := make(chan time.Duration, 1)
				go func() {
					start := time.Now()
					if b, err := exec.Command("/bin/cat", f).Output(); err != nil || string(b) != "1" {
						t.Errorf("cat: %v %q", err, b)
					}
					done <- time.Since(start)
				}()
				select {
				case d := <-done:
					worst = max(worst, d)
				case <-time.After(10 * time.Second):
					t.Fatalf("open %d of the watched file still blocked after 10 s with the watcher stopped", n)
				}
			}
			t.Logf("slowest cat of the watched file with the watcher stopped: %v", worst)
		})
	}
}

// TestFileWatcherStoppedChild runs a file watcher until killed, for
// TestFileWatcherStoppedDoesNotBlock.
func TestFileWatcherStoppedChild(t *testing.T) {
	f := os.Getenv("TRIPWIRE_STOPPED_CHILD")
	if f == "" {
		t.Skip("child of TestFileWatcherStoppedDoesNotBlock")
	}
	w, _ := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, os.Getenv("TRIPWIRE_STOPPED_MECH"))
	fmt.Printf("watching %s with %s\n", f, w.Mechanism())
	select {}
}

// With a ring buffer too small for a burst and a slowed reader, a burst over many
// files loses records but no counts: every file's trips add up, its events
// still name it (found by inode), and the loss of detail is counted.
func TestFileEBPFCountsSurviveAFullRingBuffer(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			dir := t.TempDir()
			const files, reads = 500, 2
			for i := range files {
				writeFile(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)), "x\n")
			}
			fileRingBytes, fileReaderDelay = 16<<10, time.Millisecond
			t.Cleanup(func() { fileRingBytes, fileReaderDelay = 0, 0 })
			w, s := startFileWatcher(t, []FileRule{{Name: "d", Severity: event.SeverityWarn, Paths: []string{dir}}}, mech)
			// A tight loop, so records come faster than any reader takes them.
			pid := run(t, "python3", "-c", "import os,sys\nfor f in sorted(os.listdir(sys.argv[1])):\n  for _ in range(2): open(os.path.join(sys.argv[1], f)).read()", dir)
			perFile := map[string]int64{}
			total := func() (sum int64) {
				clear(perFile)
				for _, e := range s.all() {
					// (The listing of the directory is a trip too.)
					if e.Name == event.FileAccess && e.Process != nil && e.Process.PID == int64(pid) && e.File.Path != dir {
						perFile[e.File.Path] += max(e.Count, 1)
						sum += max(e.Count, 1)
					}
				}
				return sum
			}
			deadline := time.Now().Add(20 * time.Second)
			for total() < files*reads && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if got := total(); got != files*reads || len(perFile) != files {
				t.Fatalf("counted %d opens over %d files, want %d over %d; lost %v", got, len(perFile), files*reads, files, s.lost)
			}
			for p, n := range perFile {
				if n != reads {
					t.Errorf("%s: %d opens counted, want %d", p, n, reads)
				}
			}
			c := w.(Counters).Counters()
			if c["undetailed_trips"] == 0 {
				t.Errorf("the ring buffer never filled: %v", c)
			}
			t.Logf("counters %v", c)
		})
	}
}

// An O_PATH descriptor of a watched file reads nothing and trips nothing.
func TestFileEBPFPathDescriptorIsNoAccess(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "f")
			writeFile(t, f, "1")
			_, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
			opath := run(t, "python3", "-c", "import os,sys; os.close(os.open(sys.argv[1], os.O_PATH))", f)
			sentinel := run(t, "/bin/cat", f)
			s.waitFor(t, "the sentinel cat", and(on(event.FileAccess, f), byPID(sentinel)))
			if n := countOf(s.all(), byPID(opath)); n != 0 {
				t.Errorf("an O_PATH open tripped:\n%s", describe(s.all()))
			}
		})
	}
}

// A process that opens from a thread other than its first is alive as long
// as it runs: its counter is not reaped under it, and its opens add up. The
// counter once carried the opening thread's start time, which /proc/PID/stat
// (the process's) never matched, so every such process looked exited.
func TestFileEBPFOpensFromAThread(t *testing.T) {
	for _, mech := range fileEBPFMechanisms(t) {
		t.Run(mech, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "f")
			writeFile(t, f, "data")
			w, s := startFileWatcher(t, []FileRule{{Name: "r", Severity: event.SeverityWarn, Paths: []string{f}}}, mech)
			cmd := exec.Command(os.Args[0], "-test.run=^TestFileEBPFThreadOpenerChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "TRIPWIRE_THREAD_OPENER="+f)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The child opens for fileReapEvery+3 summaries: at least one
			// reap runs while it is alive.
			time.Sleep((fileReapEvery + 1) * fileSummaryInterval)
			reaped := w.(Counters).Counters()["counters_reaped"]
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v: %s", err, out.String())
			}
			if reaped != 0 {
				t.Errorf("%d counters reaped while their process ran", reaped)
			}
			var opens int64
			if _, err := fmt.Sscanf(out.String()[strings.Index(out.String(), "opens "):], "opens %d", &opens); err != nil || opens == 0 {
				t.Fatalf("child output %q", out.String())
			}
			pid := cmd.Process.Pid
			deadline := time.Now().Add(3 * fileReapEvery * fileSummaryInterval)
			var sum int64
			for time.Now().Before(deadline) {
				sum = 0
				for _, e := range s.all() {
					if on(event.FileAccess, f)(e) && byPID(pid)(e) {
						sum += max(e.Count, 1)
					}
				}
				if sum == opens {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("trips of the threaded opener add up to %d, want %d", sum, opens)
		})
	}
}

// TestFileEBPFThreadOpenerChild is the child of TestFileEBPFOpensFromAThread:
// it opens the file from a thread that is not its first.
func TestFileEBPFThreadOpenerChild(t *testing.T) {
	path := os.Getenv("TRIPWIRE_THREAD_OPENER")
	if path == "" {
		t.Skip("run by TestFileEBPFOpensFromAThread")
	}
	// A goroutine that finds itself on the first thread keeps it locked,
	// so the next one starts on another.
	release := make(chan struct{})
	defer close(release)
	done := make(chan int)
	var open func()
	open = func() {
		runtime.LockOSThread() // the thread exits with the goroutine
		if syscall.Gettid() == os.Getpid() {
			go open()
			<-release
			return
		}
		n := 0
		for end := time.Now().Add((fileReapEvery + 3) * fileSummaryInterval); time.Now().Before(end); n++ {
			b, err := os.ReadFile(path)
			if err != nil || len(b) == 0 {
				t.Error(err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		done <- n
	}
	go open()
	n := <-done
	fmt.Printf("opens %d\n", n)
}

// readTrips sees every counter of a map holding more than one batch, with
// batch lookups and with the per-counter iteration older kernels get, and
// both agree.
func TestFileEBPFReadTripsBatched(t *testing.T) {
	needRoot(t)
	spec, err := bpf.LoadFile()
	if err != nil {
		t.Fatal(err)
	}
	ms := spec.Maps[bpf.FileMapFileTrips].Copy()
	ms.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(ms)
	if err != nil {
		t.Skipf("creating a hash map: %v", err)
	}
	defer m.Close()
	const n = 3*fileTripBatch + 17
	for i := range n {
		k := bpf.FileFileTripKey{Ino: uint64(i + 1), Tgid: uint32(i % 7), StartNs: uint64(i)}
		if err := m.Put(k, bpf.FileFileTripCount{Count: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(w *fileEBPF) map[uint64]uint64 {
		got := map[uint64]uint64{}
		for _, e := range w.readTrips(m) {
			got[e.k.Ino] = e.v.Count
		}
		return got
	}
	batched := &fileEBPF{log: slog.New(slog.DiscardHandler)}
	byOne := &fileEBPF{log: slog.New(slog.DiscardHandler), noBatch: true}
	b, o := read(batched), read(byOne)
	if batched.noBatch {
		t.Log("this kernel refused batch lookups; both read one by one")
	}
	if len(b) != n || len(o) != n {
		t.Fatalf("read %d counters batched and %d one by one, want %d", len(b), len(o), n)
	}
	for ino, c := range b {
		if c != ino || o[ino] != c {
			t.Fatalf("counter of inode %d: batched %d, one by one %d", ino, c, o[ino])
		}
	}
}

// A kernel that refuses BPF trampolines (this one refuses ftrace function
// tracing) refuses fentry with EPERM and no verifier log; the fallback's
// reason must say that, not the loader's MEMLOCK hint.
func TestFileEBPFTrampolinesRefusedSaysWhy(t *testing.T) {
	needRoot(t)
	err := fileEBPFProbe(MechanismEBPF)
	if err == nil {
		t.Skip("fentry programs load on this kernel")
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Skipf("fentry refused for another reason: %v", err)
	}
	var refused *trampolinesRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("EPERM as root is not explained: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "BPF trampolines") || strings.Contains(msg, "MEMLOCK") {
		t.Errorf("reason: %s", msg)
	}
	if err := fileEBPFProbe(MechanismEBPFSyscall); err != nil {
		t.Errorf("the claim is that tracepoint programs still load, but: %v", err)
	}
}
