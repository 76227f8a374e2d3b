package tripwireexporter

import (
	"fmt"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestCovered(t *testing.T) {
	r := []seqRange{{10, 12, 3}, {4, 6, 3}, {7, 9, 3}, {20, 30, 11}, {40, 49, 2}}
	cases := []struct {
		first, last int64
		want        bool
	}{
		{4, 12, true}, // three adjacent ranges, out of order
		{5, 5, true},
		{4, 13, false},
		{3, 4, false},
		{13, 19, false},
		{21, 29, true},
		{8, 7, true}, // empty range
		{44, 45, true},
		{44, 46, false}, // the range says only two were shed
	}
	for _, c := range cases {
		if got := covered(r, c.first, c.last); got != c.want {
			t.Errorf("covered(%d..%d) = %v, want %v", c.first, c.last, got, c.want)
		}
	}
}

// entries builds n chained entries as the agent's audit chain would.
func entries(t *testing.T, n int) []*chainEntry {
	a := newAgent(t, "walk")
	var out []*chainEntry
	for _, ev := range a.trips(n) {
		out = append(out, &chainEntry{seq: int64(ev.Seq), prev: ev.PrevHash, hash: ev.Hash, ev: ev, canon: ev.Canonical()})
	}
	return out
}

func kinds(out chainOutcome) string {
	var s []string
	for _, b := range out.breaks {
		s = append(s, fmt.Sprintf("%s:%d:%d", b.kind, b.expectedSeq, b.gotSeq))
	}
	return fmt.Sprint(s)
}

func TestWalkDuplicatesInOneBatch(t *testing.T) {
	es := entries(t, 3)
	// The same entry twice in one batch is a replay of itself.
	out := walk(&chainState{head: chainHead{0, event.GenesisHash}, batch: []*chainEntry{es[0], es[1], es[1], es[2]}})
	if kinds(out) != "[]" || out.head.seq != 3 || len(out.replays) != 0 || len(out.entries) != 3 {
		t.Errorf("breaks %s head %d replays %d entries %d", kinds(out), out.head.seq, len(out.replays), len(out.entries))
	}
	// Two different entries for one seq in one batch: the second is a fork.
	other := entries(t, 2)
	out = walk(&chainState{head: chainHead{0, event.GenesisHash}, batch: []*chainEntry{es[0], es[1], other[1]}})
	if kinds(out) != "[fork:2:2]" || len(out.forks) != 1 {
		t.Errorf("breaks %s forks %d", kinds(out), len(out.forks))
	}
}

func TestWalkWaitsThenDeclares(t *testing.T) {
	es := entries(t, 5)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	es[3].receivedAt, es[4].receivedAt = now, now
	s := &chainState{head: chainHead{2, es[1].hash}, now: now, grace: time.Minute, batch: []*chainEntry{es[3], es[4]}}
	out := walk(s)
	if kinds(out) != "[]" || out.moved || len(out.entries) != 2 {
		t.Fatalf("within grace: breaks %s moved %v entries %d", kinds(out), out.moved, len(out.entries))
	}
	// A minute later the waiting entries are overdue.
	for _, e := range []*chainEntry{es[3], es[4]} {
		e.stored, e.receivedAt = true, now
	}
	out = walk(&chainState{head: chainHead{2, es[1].hash}, now: now.Add(time.Minute), grace: time.Minute, parked: []*chainEntry{es[3], es[4]}})
	if kinds(out) != "[gap:3:4]" || out.head.seq != 5 || len(out.entries) != 0 {
		t.Errorf("after grace: breaks %s head %d entries %d", kinds(out), out.head.seq, len(out.entries))
	}
}

func TestWalkMismatchOfAWaitingEntryIsRaisedAtOnce(t *testing.T) {
	es := entries(t, 4)
	es[3].ev.File.Path = "/elsewhere"
	es[3].canon = es[3].ev.Canonical()
	out := walk(&chainState{head: chainHead{1, es[0].hash}, grace: time.Hour, batch: []*chainEntry{es[3]}})
	if kinds(out) != "[mismatch:4:4]" || out.moved {
		t.Errorf("breaks %s moved %v", kinds(out), out.moved)
	}
}
