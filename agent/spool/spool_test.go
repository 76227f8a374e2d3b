package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// chain builds n chained file events from seq first on, with severities
// taken in turn from sevs.
func chain(first uint64, n int, sevs ...event.Severity) []*event.Event {
	prev := event.GenesisHash
	var out []*event.Event
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		e := &event.Event{
			Name: event.FileAccess, AlertID: event.NewAlertID(), Seq: first + uint64(i),
			Severity: sevs[i%len(sevs)], Rule: "r", Time: now, ObservedTime: now, Mechanism: "fanotify",
			File:    &event.File{Path: fmt.Sprintf("/srv/secret/%d", i)},
			Process: &event.Process{PID: 42, CommandLine: "cat secret", UserName: "root", UserID: "0"},
		}
		e.PrevHash = prev
		e.Hash = event.ChainHash(prev, e.Canonical())
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func open(t *testing.T, opts Options) *Spool {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "state", "spool.db")
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *Spool, events []*event.Event) {
	t.Helper()
	ctx := context.Background()
	if err := s.Put(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spool.db")
	s := open(t, Options{Path: path})
	events := chain(1, 10, event.SeverityWarn)
	put(t, s, events)
	select {
	case <-s.Committed():
	default:
		t.Error("no commit signal after a commit")
	}
	if s.Depth() != 10 {
		t.Errorf("depth %d, want 10", s.Depth())
	}
	items, err := s.Oldest(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("got %d items, want 4", len(items))
	}
	for i, it := range items {
		want := events[i]
		if it.ID != int64(want.Seq) || string(it.Event.Canonical()) != string(want.Canonical()) ||
			it.Event.Hash != want.Hash || it.Event.PrevHash != want.PrevHash {
			t.Errorf("item %d: got seq %d %s, want %d %s", i, it.ID, it.Event.Canonical(), want.Seq, want.Canonical())
		}
	}
	if err := s.Delete(context.Background(), []int64{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if s.Depth() != 6 || s.Stats().DeliveredThrough != 4 {
		t.Errorf("after delete: depth %d delivered_through %d", s.Depth(), s.Stats().DeliveredThrough)
	}
	for _, f := range []string{path, path + "-wal"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() == 0 {
		t.Error("no dir")
	}

	// A reopened spool keeps its events and its marks, and ignores a replayed seq.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, Options{Path: path})
	if s2.Depth() != 6 || s2.SpooledThrough() != 10 || s2.Stats().DeliveredThrough != 4 {
		t.Errorf("reopened: depth %d spooled_through %d delivered_through %d", s2.Depth(), s2.SpooledThrough(), s2.Stats().DeliveredThrough)
	}
	put(t, s2, events[6:])
	if s2.Depth() != 6 {
		t.Errorf("replayed seqs were spooled twice: depth %d", s2.Depth())
	}
	if err := s2.Put(context.Background(), []*event.Event{{Name: event.FileAccess}}); err == nil {
		t.Error("an unchained event was accepted")
	}
}

func TestShedsInfoThenWarnNeverCritical(t *testing.T) {
	var mu sync.Mutex
	var sheds []Shed
	s := open(t, Options{MaxEvents: 100, OnShed: func(sh Shed) {
		mu.Lock()
		sheds = append(sheds, sh)
		mu.Unlock()
	}})
	// seq 1..60 INFO/WARN/CRITICAL in turn: 20 of each.
	put(t, s, chain(1, 60, event.SeverityInfo, event.SeverityWarn, event.SeverityCritical))
	// 60 more: depth 120 > 100, shed to 95: 25 INFO, oldest first.
	put(t, s, chain(61, 60, event.SeverityInfo, event.SeverityWarn, event.SeverityCritical))
	st := s.Stats()
	if st.Depth != 95 || st.ShedInfo != 25 || st.ShedWarn != 0 {
		t.Fatalf("after first overflow: %+v", st)
	}
	mu.Lock()
	if len(sheds) != 1 || sheds[0].Count != 25 || sheds[0].FirstSeq != 1 || sheds[0].LastSeq != 73 {
		t.Errorf("shed reports %+v, want one of 25 from seq 1 to 73", sheds)
	}
	mu.Unlock()
	// 100 CRITICAL more: every INFO (15 left) and WARN (40) goes, then it grows.
	put(t, s, chain(121, 100, event.SeverityCritical))
	st = s.Stats()
	if st.ShedInfo != 40 || st.ShedWarn != 40 || st.Depth != 140 || !st.OverLimit {
		t.Fatalf("after CRITICAL flood: %+v", st)
	}
	items, err := s.Oldest(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Event.Severity != event.SeverityCritical {
			t.Fatalf("seq %d with %s survived while over the limit", it.ID, it.Event.Severity)
		}
	}
	if len(items) != 140 {
		t.Errorf("%d CRITICAL events left, want all 140", len(items))
	}
}

func TestLossEventsComeFirst(t *testing.T) {
	s := open(t, Options{})
	events := chain(1, 5, event.SeverityWarn)
	loss := &event.Event{Name: event.AgentLoss, AlertID: event.NewAlertID(), Seq: 6, Severity: event.SeverityWarn,
		Time: time.Now(), ObservedTime: time.Now(), Agent: &event.Agent{LossCount: 3, LossReason: event.LossSpoolShed}}
	loss.PrevHash = events[4].Hash
	loss.Hash = event.ChainHash(loss.PrevHash, loss.Canonical())
	put(t, s, append(events, loss))
	items, err := s.Oldest(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].ID != 6 || items[1].ID != 1 || items[2].ID != 2 {
		t.Errorf("order %v, want loss event 6 then 1, 2", ids(items))
	}
	if age := s.OldestAge(); age <= 0 {
		t.Errorf("OldestAge %v on a non-empty spool", age)
	}
}

func TestBytesLimit(t *testing.T) {
	s := open(t, Options{MaxBytes: 20_000})
	put(t, s, chain(1, 200, event.SeverityInfo))
	st := s.Stats()
	if st.Bytes > 20_000 || st.ShedInfo == 0 || st.Depth+st.ShedInfo != 200 {
		t.Errorf("bytes limit not kept: %+v", st)
	}
}

func ids(items []Item) []int64 {
	var out []int64
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// BenchmarkPut measures committed events per second through the writer.
func BenchmarkPut(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "spool.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	events := chain(1, b.N, event.SeverityWarn)
	b.ResetTimer()
	for i := 0; i < len(events); i += 64 {
		if err := s.Put(context.Background(), events[i:min(i+64, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOldestDelete measures the shipper's side: read 512, delete them.
func BenchmarkOldestDelete(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "spool.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	events := chain(1, b.N*512, event.SeverityWarn)
	for i := 0; i < len(events); i += 4096 {
		s.Put(context.Background(), events[i:min(i+4096, len(events))])
	}
	s.Flush(context.Background())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		items, err := s.Oldest(context.Background(), 512)
		if err != nil || len(items) != 512 {
			b.Fatal(err, len(items))
		}
		ids := make([]int64, len(items))
		for j, it := range items {
			ids[j] = it.ID
		}
		if err := s.Delete(context.Background(), ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "events/s")
}

// PutDurable's events are invisible until the chain says they are durable,
// then committed; events whose sync failed are never committed, and the
// ones before them in the same transaction still are.
func TestPutDurable(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	events := chain(1, 6, event.SeverityCritical)

	first := make(chan error, 1)
	if err := s.PutDurable(ctx, events[:2], first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the writer has inserted and is waiting
	if items, err := s.Oldest(ctx, 10); err != nil || len(items) != 0 {
		t.Fatalf("before the sync a reader sees %d events (%v), want none", len(items), err)
	}
	if through := s.SpooledThrough(); through != 0 {
		t.Fatalf("spooled through %d before the sync", through)
	}
	first <- nil
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if items, err := s.Oldest(ctx, 10); err != nil || len(items) != 2 {
		t.Fatalf("after the sync a reader sees %d events (%v), want 2", len(items), err)
	}

	// Two requests (one transaction or two), the second one's sync failed.
	ok, failed := make(chan error, 1), make(chan error, 1)
	if err := s.PutDurable(ctx, events[2:4], ok); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDurable(ctx, events[4:], failed); err != nil {
		t.Fatal(err)
	}
	ok <- nil
	failed <- fmt.Errorf("disk gone")
	if err := s.Flush(ctx); err == nil {
		// The flush may share the failed transaction (an error) or come
		// after it (nil); either way the spool must hold seq 1-4 only.
		t.Log("flush committed after the failed transaction")
	}
	items, err := s.Oldest(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 || items[3].ID != 4 || s.SpooledThrough() != 4 {
		t.Fatalf("spool holds %d events through seq %d, want 4 through 4", len(items), s.SpooledThrough())
	}
}
