package watcher

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// chanSink hands each trip to the benchmark as it arrives.
type chanSink chan *event.Event

func (c chanSink) Trip(e *event.Event) { c <- e }
func (c chanSink) Lost(string, int64)  {}

// BenchmarkFanotifyTrip measures one trip end to end: another process
// open+read(2)+closes a watched file, the kernel queues the event, the
// watcher reads it, resolves the path, reads the actor from /proc and calls
// Sink.Trip. The reader is a child (this binary in reader mode): the agent's
// own reads are never reported. ns/op includes the pipe round trip that tells
// the child to read (a few µs).
func BenchmarkFanotifyTrip(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_SYS_ADMIN) for fanotify")
	}
	f := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
		b.Fatal(err)
	}
	w, err := NewFileWatcher([]FileRule{{Name: "bench", Severity: event.SeverityWarn, Paths: []string{f}}}, Options{Mechanism: MechanismFanotify})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := make(chanSink, 1024)
	if err := w.Start(ctx, sink); err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	child := exec.Command(exe, "-test.run=^TestFanotifyBenchReader$")
	child.Env = append(os.Environ(), "TRIPWIRE_BENCH_READ="+f)
	in, _ := child.StdinPipe()
	child.Stdout, child.Stderr = io.Discard, os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); child.Wait() }()
	one := []byte{1}
	b.ResetTimer()
	for b.Loop() {
		if _, err := in.Write(one); err != nil {
			b.Fatal(err)
		}
		if e := <-sink; e.Process.PID != int64(child.Process.Pid) || e.Name != event.FileAccess {
			b.Fatalf("unexpected trip %+v", e)
		}
	}
}

// TestFanotifyBenchReader is the benchmark's reader process: one
// open+read+close of the file per byte on stdin.
func TestFanotifyBenchReader(t *testing.T) {
	path := os.Getenv("TRIPWIRE_BENCH_READ")
	if path == "" {
		t.Skip("reader process of BenchmarkFanotifyTrip")
	}
	cmd := make([]byte, 1)
	buf := make([]byte, 64)
	for {
		if _, err := os.Stdin.Read(cmd); err != nil {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Read(buf)
		f.Close()
	}
}

// BenchmarkFanotifyShortLivedActor runs `cat` on a watched file b.N times and
// reports how often the actor was still readable in /proc when its event was
// handled (identified_%: executable and command line known; user_%: uid
// known, which outlives the process until it is reaped). Every cat must
// still produce its trip.
func BenchmarkFanotifyShortLivedActor(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_SYS_ADMIN) for fanotify")
	}
	f := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
		b.Fatal(err)
	}
	w, err := NewFileWatcher([]FileRule{{Name: "bench", Severity: event.SeverityWarn, Paths: []string{f}}}, Options{Mechanism: MechanismFanotify})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := make(chanSink, 1024)
	if err := w.Start(ctx, sink); err != nil {
		b.Fatal(err)
	}
	var identified, withUser int
	n := 0
	for b.Loop() {
		if err := exec.Command("/bin/cat", f).Run(); err != nil {
			b.Fatal(err)
		}
		e := <-sink
		if e.Process.ExecutablePath != "" && e.Process.CommandLine != "" {
			identified++
		}
		if e.Process.UserID != "" {
			withUser++
		}
		n++
	}
	b.ReportMetric(100*float64(identified)/float64(n), "identified_%")
	b.ReportMetric(100*float64(withUser)/float64(n), "user_%")
}
