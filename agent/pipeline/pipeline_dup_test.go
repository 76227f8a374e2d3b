package pipeline

import (
	"path/filepath"
	"testing"

	"time"

	"github.com/tripwire-sec/tripwire/agent/spool"
)

// During a reload the old and new watchers overlap: one trip reported by both
// is kept once, while a repeat from the same watcher is still counted.
func TestOverlappingWatchersReportOnce(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, 2*time.Second)
	oldSink, newSink := r.p.Sink("fanotify", nil), r.p.Sink("fanotify", nil)
	oldSink.Trip(trip("/srv/a", 7))
	newSink.Trip(trip("/srv/a", 7)) // the same read, seen by the new watcher
	oldSink.Trip(trip("/srv/a", 7)) // a real repeat
	r.close(t)
	s2, err := spool.Open(spool.Options{Path: filepath.Join(dir, "spool.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := verify(t, dir, s2)
	if len(got) != 2 || got[2].Count != 1 {
		t.Fatalf("got %d events, want the first and a summary of count 1", len(got))
	}
	if st := r.p.Stats(); st.Duplicate != 1 || st.Coalesced != 1 {
		t.Fatalf("stats %+v, want 1 duplicate and 1 coalesced", st)
	}
}

// The new watcher may see a short-lived reader only after it exited, its
// executable no longer readable: still the same trip.
func TestOverlappingWatchersReportOnceWithoutTheExecutable(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, 2*time.Second)
	oldSink, newSink := r.p.Sink("fanotify", nil), r.p.Sink("fanotify", nil)
	oldSink.Trip(trip("/srv/a", 7))
	late := trip("/srv/a", 7)
	late.Process.ExecutablePath = ""
	newSink.Trip(late)
	r.close(t)
	if st := r.p.Stats(); st.Duplicate != 1 {
		t.Fatalf("stats %+v, want the late copy counted as a duplicate", st)
	}
}
