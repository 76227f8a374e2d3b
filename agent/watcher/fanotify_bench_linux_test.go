package watcher

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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

// startBenchFanotify watches path with the fanotify watcher, with or without
// the open-capture group.
func startBenchFanotify(b *testing.B, path string, capture bool, sink Sink) *fanotifyWatcher {
	b.Helper()
	rs, err := compileFileRules([]FileRule{{Name: "bench", Severity: event.SeverityWarn, Paths: []string{path}, HoldOpens: capture}})
	if err != nil {
		b.Fatal(err)
	}
	if err := rs.classify(); err != nil {
		b.Fatal(err)
	}
	w := newFanotifyWatcher(rs, Options{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if err := w.start(ctx, sink); err != nil {
		b.Fatal(err)
	}
	if capture && w.captureDone == nil {
		b.Fatal("open capture unavailable")
	}
	return w
}

// BenchmarkFanotifyShortLivedActor runs `cat` on a watched file b.N times and
// reports how often the trip named its actor: full_% with every field (PPID,
// user id and name, executable, command line) and nothing missing;
// identified_% with executable and command line; user_% with the uid. With
// open capture the actor is read while cat waits in open(2); without it,
// after the event, racing cat's exit. Every cat must still produce its trip.
func BenchmarkFanotifyShortLivedActor(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_SYS_ADMIN) for fanotify")
	}
	for _, capture := range []bool{false, true} {
		name := "without_capture"
		if capture {
			name = "with_capture"
		}
		b.Run(name, func(b *testing.B) {
			f := filepath.Join(b.TempDir(), "f")
			if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
				b.Fatal(err)
			}
			sink := make(chanSink, 1024)
			startBenchFanotify(b, f, capture, sink)
			var full, identified, withUser int
			n := 0
			for b.Loop() {
				cmd := exec.Command("/bin/cat", f)
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				e := <-sink
				if e.Process.PID != int64(cmd.Process.Pid) {
					b.Fatalf("trip by pid %d, want %d", e.Process.PID, cmd.Process.Pid)
				}
				p := e.Process
				if p.ExecutablePath != "" && p.CommandLine != "" {
					identified++
				}
				if p.UserID != "" {
					withUser++
				}
				if len(e.Missing) == 0 && p.PPID != 0 && p.UserName != "" && p.ExecutablePath != "" && p.CommandLine != "" {
					full++
				}
				n++
			}
			b.ReportMetric(100*float64(full)/float64(n), "full_%")
			b.ReportMetric(100*float64(identified)/float64(n), "identified_%")
			b.ReportMetric(100*float64(withUser)/float64(n), "user_%")
		})
	}
}

// discardSink counts trips and drops them.
type discardSink struct{ n atomic.Uint64 }

func (s *discardSink) Trip(*event.Event)  { s.n.Add(1) }
func (s *discardSink) Lost(string, int64) {}

// BenchmarkFanotifyOpenLatency measures what watching costs the process
// opening a watched file: the mean time of open(2)+close(2), timed inside a
// child process (the agent's own opens are not held), for a file that is not
// watched, watched by the notification group only, and watched with open
// capture (each open waits for its actor to be read, or for the stat read
// that confirms a cached one). The figure is ns_per_open; ns/op includes
// starting the child, amortised over b.N opens. A process's first open also
// pays the full /proc read: see procfs's BenchmarkReadActorNoLookup.
func BenchmarkFanotifyOpenLatency(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_SYS_ADMIN) for fanotify")
	}
	for _, mode := range []string{"unwatched", "notify_only", "with_capture"} {
		b.Run(mode, func(b *testing.B) {
			f := filepath.Join(b.TempDir(), "f")
			if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
				b.Fatal(err)
			}
			if mode != "unwatched" {
				startBenchFanotify(b, f, mode == "with_capture", &discardSink{})
			}
			exe, _ := os.Executable()
			// b.N opens in one child, so the time per op is mostly opens.
			child := exec.Command(exe, "-test.run=^TestFanotifyOpener$")
			child.Env = append(os.Environ(), "TRIPWIRE_OPENER="+f, "TRIPWIRE_OPENER_N="+strconv.Itoa(b.N))
			b.ResetTimer()
			out, err := child.Output()
			if err != nil {
				b.Fatalf("opener: %v", err)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if v, ok := strings.CutPrefix(l, "ns_per_open "); ok {
					ns, _ := strconv.ParseFloat(v, 64)
					b.ReportMetric(ns, "ns_per_open")
				}
			}
		})
	}
}
