package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

type rig struct {
	dir   string
	chain *auditchain.Writer
	spool *spool.Spool
	p     *Pipeline
}

// newRig opens a real chain and spool in a temp dir and starts a pipeline.
func newRig(t *testing.T, dir string, spoolOpts spool.Options, window time.Duration) *rig {
	t.Helper()
	r := &rig{dir: dir}
	var err error
	r.chain, err = auditchain.Open(filepath.Join(dir, "audit.log"), auditchain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spoolOpts.Path = filepath.Join(dir, "spool.db")
	spoolOpts.OnShed = func(sh spool.Shed) { r.p.Shed(sh) }
	r.spool, err = spool.Open(spoolOpts)
	if err != nil {
		t.Fatal(err)
	}
	r.p, err = New(Options{Chain: r.chain, ChainPath: filepath.Join(dir, "audit.log"), Spool: r.spool, Window: window})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.p.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.p.Start()
	return r
}

func (r *rig) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.spool.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.chain.Close(); err != nil {
		t.Fatal(err)
	}
}

// spooled returns every event in the spool by seq.
func spooled(t *testing.T, s *spool.Spool) map[uint64]*event.Event {
	t.Helper()
	items, err := s.Oldest(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*event.Event{}
	for _, it := range items {
		out[uint64(it.ID)] = it.Event
	}
	return out
}

// verify checks the chain is intact and every entry is in the spool.
func verify(t *testing.T, dir string, s *spool.Spool) map[uint64]*event.Event {
	t.Helper()
	rep, err := auditchain.VerifyFile(filepath.Join(dir, "audit.log"), nil)
	if err != nil || rep.Break != nil {
		t.Fatalf("chain: %v %v", err, rep.Break)
	}
	got := spooled(t, s)
	if uint64(len(got)) != rep.LastSeq {
		t.Errorf("spool holds %d events, chain %d", len(got), rep.LastSeq)
	}
	err = auditchain.ReadEntries(filepath.Join(dir, "audit.log"), 1, func(en auditchain.Entry) error {
		e := got[en.Seq]
		if e == nil {
			return fmt.Errorf("seq %d is not in the spool", en.Seq)
		}
		if e.Hash != en.Hash || string(e.Canonical()) != string(en.Payload) {
			return fmt.Errorf("seq %d differs between chain and spool", en.Seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func trip(path string, pid int64) *event.Event {
	return &event.Event{Name: event.FileAccess, Severity: event.SeverityWarn, Rule: "secrets", Time: time.Now(),
		File: &event.File{Path: path}, Process: &event.Process{PID: pid, ExecutablePath: "/usr/bin/cat"}}
}

func TestCoalescesRepeatsIntoOneSummary(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, 2*time.Second) // long: a descheduled coalescer must not split the burst
	sink := r.p.Sink("fanotify", []string{"process.parent_pid"})
	for i := 0; i < 100; i++ {
		sink.Trip(trip("/srv/a", 7))
	}
	sink.Trip(trip("/srv/b", 7)) // another path: its own first trip
	sink.Trip(trip("/srv/a", 8)) // another actor: its own first trip
	// The first trip is emitted at once, before the window ends.
	deadline := time.Now().Add(20 * time.Second)
	for r.spool.Depth() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The summary follows the window.
	for r.spool.Depth() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.close(t)
	s2, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	defer s2.Close()
	got := verify(t, dir, s2)
	if len(got) != 4 {
		t.Fatalf("got %d events, want 4 (3 firsts and one summary)", len(got))
	}
	first, summary := got[1], got[4]
	if first.File.Path != "/srv/a" || first.Count > 1 || first.Mechanism != "fanotify" ||
		len(first.Missing) != 1 || first.Missing[0] != "process.parent_pid" {
		t.Errorf("first event %+v", first)
	}
	if summary.File.Path != "/srv/a" || summary.Count != 99 || summary.Process.PID != 7 {
		t.Errorf("summary %s, want count 99 for /srv/a pid 7", summary.Canonical())
	}
	if st := r.p.Stats(); st.Trips != 102 || st.Coalesced != 99 || st.Summaries != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLossesBecomeEvents(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, time.Second)
	sink := r.p.Sink("fanotify", nil)
	sink.Lost(event.LossKernelOverflow, 5)
	sink.Trip(&event.Event{Name: event.FileAccess, Severity: event.SeverityWarn}) // no rule, no path: invalid
	r.close(t)
	s2, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	defer s2.Close()
	reasons := map[string]int64{}
	for _, e := range verify(t, dir, s2) {
		if e.Name != event.AgentLoss {
			t.Errorf("unexpected event %s", e.Canonical())
			continue
		}
		reasons[e.Agent.LossReason] += e.Agent.LossCount
		if e.Mechanism != "fanotify" {
			t.Errorf("loss event without the watcher's mechanism: %s", e.Canonical())
		}
	}
	if reasons[event.LossKernelOverflow] != 5 || reasons[event.LossInvalidEvent] != 1 {
		t.Errorf("losses %v, want kernel_overflow 5 and invalid_event 1", reasons)
	}
}

func TestShedsAreReportedInTheChain(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{MaxEvents: 100}, time.Second)
	sink := r.p.Sink("fanotify", nil)
	for i := 0; i < 300; i++ {
		e := trip(fmt.Sprintf("/srv/%d", i), 7)
		e.Severity = event.SeverityInfo
		sink.Trip(e)
	}
	r.close(t)
	rep, err := auditchain.VerifyFile(filepath.Join(dir, "audit.log"), nil)
	if err != nil || rep.Break != nil {
		t.Fatalf("chain: %v %v", err, rep.Break)
	}
	var shed int64
	err = auditchain.ReadEntries(filepath.Join(dir, "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Name == event.AgentLoss && e.Agent.LossReason == event.LossSpoolShed {
			shed += e.Agent.LossCount
			if e.Agent.LossFirstSeq < 1 || e.Agent.LossLastSeq < e.Agent.LossFirstSeq || e.Agent.LossLastSeq >= int64(en.Seq) {
				return fmt.Errorf("bad shed range in %s", en.Payload)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := r.spool.Stats()
	if shed == 0 || shed != st.ShedInfo {
		t.Errorf("chain reports %d shed, spool shed %d", shed, st.ShedInfo)
	}
}

func TestReconcileRestoresChainedEventsOnce(t *testing.T) {
	dir := t.TempDir()
	// Ten events reach the chain and the spool.
	r := newRig(t, dir, spool.Options{}, time.Second)
	sink := r.p.Sink("fanotify", nil)
	for i := 0; i < 10; i++ {
		sink.Trip(trip(fmt.Sprintf("/srv/%d", i), 1))
	}
	r.close(t)
	// Five more reach only the chain, as if the agent died between the two.
	w, err := auditchain.Open(filepath.Join(dir, "audit.log"), auditchain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lost []*event.Event
	for i := 0; i < 5; i++ {
		e := trip(fmt.Sprintf("/srv/late/%d", i), 1)
		e.AlertID, e.ObservedTime = event.NewAlertID(), time.Now()
		lost = append(lost, e)
	}
	if err := w.Append(lost); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// Deliver a few, so delivered_through is ahead of some spooled events.
	s, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	if err := s.Delete(context.Background(), []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for round := 0; round < 2; round++ {
		r = newRig(t, dir, spool.Options{}, time.Second)
		r.close(t)
	}
	s, _ = spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	defer s.Close()
	got := spooled(t, s)
	if len(got) != 12 {
		t.Errorf("spool holds %d events, want 12 (15 chained, 3 delivered)", len(got))
	}
	for seq := uint64(4); seq <= 15; seq++ {
		if got[seq] == nil {
			t.Errorf("seq %d missing from the spool", seq)
		}
	}
	if got[15] != nil && got[15].File.Path != "/srv/late/4" {
		t.Errorf("seq 15 is %s", got[15].Canonical())
	}
}

func TestRefusesAChainBehindTheSpool(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, time.Second)
	r.p.Sink("fanotify", nil).Trip(trip("/srv/x", 1))
	r.close(t)
	if err := os.Remove(filepath.Join(dir, "audit.log")); err != nil {
		t.Fatal(err)
	}
	w, _ := auditchain.Open(filepath.Join(dir, "audit.log"), auditchain.Options{})
	defer w.Close()
	s, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	defer s.Close()
	if _, err := New(Options{Chain: w, Spool: s}); err == nil {
		t.Error("a replaced audit log went unnoticed")
	}
}

// BenchmarkTripToCommit measures distinct trips per second from Trip to a
// spool commit, with the default chain fsync per batch.
func BenchmarkTripToCommit(b *testing.B) {
	dir := b.TempDir()
	ch, _ := auditchain.Open(filepath.Join(dir, "audit.log"), auditchain.Options{})
	sp, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	p, err := New(Options{Chain: ch, ChainPath: filepath.Join(dir, "audit.log"), Spool: sp})
	if err != nil {
		b.Fatal(err)
	}
	p.Start()
	sink := p.Sink("bench", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink.Trip(trip(fmt.Sprintf("/srv/%d", i), 1))
	}
	p.Close(context.Background())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trips/s")
	b.StopTimer()
	sp.Close()
	ch.Close()
}

// TestHostileStringsAreChained: a trip whose executable path is non-UTF-8
// and over the limit once escaped, with an over-long command line, is chained
// with those fields cut and flagged, not dropped as invalid.
func TestHostileStringsAreChained(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, time.Second)
	e := trip("/srv/decoy", 9)
	e.Process.ExecutablePath = "/tmp" + strings.Repeat("/"+strings.Repeat("\xff", 200), 8) + "/cat"
	e.Process.CommandLine = e.Process.ExecutablePath + " /srv/decoy " + strings.Repeat("\xfe", 20000)
	r.p.Sink("fanotify", nil).Trip(e)
	r.close(t)
	s2, _ := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	defer s2.Close()
	got := verify(t, dir, s2)
	if len(got) != 1 || got[1].Name != event.FileAccess {
		t.Fatalf("chained %d events, want the trip alone", len(got))
	}
	if want := []string{"process.command_line", "process.executable.path"}; !reflect.DeepEqual(got[1].Truncated, want) {
		t.Errorf("truncated %v, want %v", got[1].Truncated, want)
	}
	if !strings.HasPrefix(got[1].Process.ExecutablePath, `/tmp/\xff\xff`) {
		t.Errorf("executable path %.40q...", got[1].Process.ExecutablePath)
	}
	if st := r.p.Stats(); st.Invalid != 0 {
		t.Errorf("%d invalid events", st.Invalid)
	}
}
