package watcher

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestProcessPoll runs the polling mechanism (the one macOS and Windows use)
// against the real /proc: a watched binary run for longer than the interval
// trips with its path and arguments, an unwatched one does not, and a
// process already running at start trips nothing.
func TestProcessPoll(t *testing.T) {
	dir := t.TempDir()
	watched := uniqueBinary(t, "/bin/sleep", dir, "tw-poll-sleep")
	other := uniqueBinary(t, "/bin/sleep", dir, "tw-poll-other")
	before := exec.Command(watched, "30")
	if err := before.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { before.Process.Kill(); before.Wait() }()

	w, err := NewProcessWatcher([]ProcessRule{{Name: "sleep-decoy", Severity: event.SeverityCritical, Names: []string{"tw-poll-sleep"}}},
		Options{Mechanism: procMechPoll, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if w.Mechanism() != procMechPoll {
		t.Fatalf("mechanism %q", w.Mechanism())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := newTripSink()
	if err := w.Start(ctx, sink); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{other, watched} {
		c := exec.Command(bin, "0.5")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Wait()
	}
	e := sink.waitFor(t, "the watched binary", func(e *event.Event) bool { return e.Rule == "sleep-decoy" })
	if e.Process.ExecutablePath != watched || !strings.Contains(e.Process.CommandLine, "0.5") || e.Process.UserID != "0" {
		t.Errorf("trip process %+v", e.Process)
	}
	if err := validatedTrip(e); err != nil {
		t.Errorf("trip does not validate: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // a few more polls
	if n := sink.count(func(*event.Event) bool { return true }); n != 1 {
		t.Errorf("%d trips, want 1 (only the new watched process): %s", n, describe(sink.all()))
	}
	if c := w.(Counters).Counters(); c["started"] < 2 || c["tripped"] != 1 {
		t.Errorf("counters %v", c)
	}
}

// BenchmarkProcessPollList is the cost of one poll of the process table
// (what the polling mechanism pays every interval), with the number of
// processes listed.
func BenchmarkProcessPollList(b *testing.B) {
	table := newProcTable(Options{})
	n := 0
	for b.Loop() {
		ps, err := table.list()
		if err != nil {
			b.Fatal(err)
		}
		n = len(ps)
	}
	b.ReportMetric(float64(n), "processes")
}
