package tripwireexporter

import (
	"context"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestAuditCutoffFollowsAlertPartitions(t *testing.T) {
	now := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	// 90 days back is 2026-08-30: August's partition is kept, so are its entries.
	if got, want := auditCutoff(now, 90*24*time.Hour), time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("cutoff %v, want %v", got, want)
	}
}

// TestAuditRetentionKeepsAnchor: retention purges a host's verified prefix
// of old entries and keeps its last one as the anchor; the chain check goes
// on from it (new entries link, a replay of a purged entry is quiet, another
// entry at the anchor's seq is a fork); a later purge verifies from the
// anchor and stops at an entry tampered with after it, keeping it.
func TestAuditRetentionKeepsAnchor(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	ctx := context.Background()
	a := newAgent(t, "ret-1")
	evs := a.trips(10)
	push(t, e, a.logs(evs...))

	n, err := e.purgeAudit(ctx, evs[6].Time) // entries 1..6 are older
	if err != nil || n != 6 {
		t.Fatalf("purged %d (%v), want 6", n, err)
	}
	var seq int64
	var hash string
	if err := pool.QueryRow(ctx, "SELECT seq, hash FROM audit_anchors").Scan(&seq, &hash); err != nil {
		t.Fatal(err)
	}
	if seq != 6 || hash != evs[5].Hash {
		t.Fatalf("anchor (%d, %s), want (6, %s)", seq, hash, evs[5].Hash)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 4 {
		t.Fatalf("%d entries left, want 4", n)
	}
	if n, err := e.purgeAudit(ctx, evs[6].Time); err != nil || n != 0 {
		t.Fatalf("purging again removed %d (%v)", n, err)
	}

	// The chain goes on from the anchor.
	push(t, e, a.logs(a.trips(2)...))
	push(t, e, a.logs(evs[2], evs[5])) // replays of purged entries
	if s, _ := head(t, pool, "ret-1"); s != 12 {
		t.Errorf("head %d, want 12", s)
	}
	if k := breakKinds(t, pool, "ret-1"); len(k) != 0 {
		t.Fatalf("breaks after the purge: %v", k)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries WHERE seq <= 6"); n != 0 {
		t.Errorf("replays of purged entries stored again: %d", n)
	}
	fork := *evs[5]
	fork.AlertID, fork.Rule = event.NewAlertID(), "rewritten"
	fork.Hash = event.ChainHash(fork.PrevHash, fork.Canonical())
	push(t, e, a.logs(&fork))
	if k := breakKinds(t, pool, "ret-1"); len(k) != 1 || k[0] != string(event.BreakFork)+":6:6" {
		t.Errorf("another entry at the anchor's seq: breaks %v, want one fork", k)
	}

	// Entry 9 rewritten in the database after the anchor: the next purge
	// verifies from the anchor, stops before it, and keeps it.
	if _, err := pool.Exec(ctx, `UPDATE audit_entries SET payload = replace(payload, 'mallory', 'alice') WHERE seq = 9`); err != nil {
		t.Fatal(err)
	}
	n, err = e.purgeAudit(ctx, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("purged %d (%v), want 2 (seqs 7, 8)", n, err)
	}
	if err := pool.QueryRow(ctx, "SELECT seq, hash FROM audit_anchors").Scan(&seq, &hash); err != nil || seq != 8 || hash != evs[7].Hash {
		t.Fatalf("anchor (%d, %s) %v, want (8, %s)", seq, hash, err, evs[7].Hash)
	}
	if n := queryInt(t, pool, "SELECT min(seq) FROM audit_entries"); n != 9 {
		t.Errorf("first kept entry %d, want the tampered 9", n)
	}
}

// TestAuditRetentionCrossesAccountedGaps: a gap the agent reported shed
// does not stop the purge; an unaccounted one does.
func TestAuditRetentionCrossesAccountedGaps(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.ChainGapGrace = 0
	e := startExporter(t, cfg)
	pool := openPool(t, dsn)
	ctx := context.Background()
	a := newAgent(t, "gap-1")
	evs := a.trips(6)
	loss := a.loss(3, 4)
	more := a.trips(2)
	push(t, e, a.logs(append(append([]*event.Event{evs[0], evs[1]}, evs[4:]...), append([]*event.Event{loss}, more...)...)...))
	if k := breakKinds(t, pool, "gap-1"); len(k) != 1 || k[0] != string(event.BreakAccountedGap)+":3:5" {
		t.Fatalf("breaks %v, want one accounted gap", k)
	}
	n, err := e.purgeAudit(ctx, more[0].Time)
	if err != nil || n != 5 {
		t.Fatalf("purged %d (%v), want 5 (seqs 1, 2, 5, 6, 7)", n, err)
	}

	b := newAgent(t, "gap-2")
	evs = b.trips(6)
	push(t, e, b.logs(append([]*event.Event{evs[0], evs[1]}, evs[4:]...)...))
	if k := breakKinds(t, pool, "gap-2"); len(k) != 1 || k[0] != string(event.BreakGap)+":3:5" {
		t.Fatalf("breaks %v, want one gap", k)
	}
	if _, err = e.purgeAudit(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT min(seq) FROM audit_entries a JOIN hosts h USING (host_id) WHERE h.host_name = 'gap-2'`); n != 5 {
		t.Errorf("gap-2's first kept entry %d, want 5: the unaccounted gap stops the purge", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM audit_entries a JOIN hosts h USING (host_id) WHERE h.host_name = 'gap-1'`); n != 0 {
		t.Errorf("gap-1 kept %d entries", n)
	}
}
