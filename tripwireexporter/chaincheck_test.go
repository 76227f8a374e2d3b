package tripwireexporter

import (
	"context"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func TestRewrittenEventIsOneMismatch(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "app-1")
	batch := a.trips(10)
	// Someone with access to the spool changed what was read after the
	// entry was chained.
	batch[3].File.Path = "/tmp/nothing-to-see"
	push(t, e, a.logs(batch[:5]...))
	push(t, e, a.logs(batch[5:]...))
	if n := breakAlerts(t, pool, "app-1"); n != 1 {
		t.Fatalf("%d chain_break alerts, want 1", n)
	}
	if k := breakKinds(t, pool, "app-1"); len(k) != 1 || k[0] != "mismatch:4:4" {
		t.Errorf("breaks %v, want [mismatch:4:4]", k)
	}
	if s, _ := head(t, pool, "app-1"); s != 10 {
		t.Errorf("head %d, want 10: the chain goes on after the rewritten entry", s)
	}
	var kind string
	var seq *int64
	err := pool.QueryRow(context.Background(), `SELECT event_detail->>'tripwire.audit.break.kind', seq FROM alerts
		WHERE event_name = 'tripwire.audit.chain_break'`).Scan(&kind, &seq)
	if err != nil || kind != string(event.BreakMismatch) || seq != nil {
		t.Errorf("chain_break alert: kind %q seq %v err %v", kind, seq, err)
	}
}

func TestGapIsOneAlert(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn)) // chain_gap_grace 0
	pool := openPool(t, dsn)
	a := newAgent(t, "gap-1")
	batch := a.trips(10)
	push(t, e, a.logs(batch[:3]...))
	push(t, e, a.logs(batch[6:]...)) // 4..6 deleted
	if n := breakAlerts(t, pool, "gap-1"); n != 1 {
		t.Fatalf("%d chain_break alerts, want 1", n)
	}
	if k := breakKinds(t, pool, "gap-1"); len(k) != 1 || k[0] != "gap:4:7" {
		t.Errorf("breaks %v, want [gap:4:7]", k)
	}
	if s, h := head(t, pool, "gap-1"); s != 10 || h != batch[9].Hash {
		t.Errorf("head %d, want 10", s)
	}
	// The missing entries turning up late are stored, raise nothing.
	push(t, e, a.logs(batch[3:6]...))
	if n := breakAlerts(t, pool, "gap-1"); n != 1 {
		t.Errorf("%d chain_break alerts after the late entries, want 1", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 10 {
		t.Errorf("%d audit entries, want 10", n)
	}
}

// Entries waiting above the head are reloaded by every later batch of their
// host, including one whose payload holds \u0000 (kept exactly, as text).
func TestOutOfOrderWithinGraceIsNoBreak(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.ChainGapGrace = time.Hour
	e := startExporter(t, cfg)
	pool := openPool(t, dsn)
	a := newAgent(t, "ooo-1")
	batch := make([]*event.Event, 9)
	for i := range batch {
		batch[i] = a.trip()
	}
	batch[7].Process.CommandLine = "sh\x00-c\x00id"
	a.chained(batch...)
	push(t, e, a.logs(batch[6:]...))
	push(t, e, a.logs(batch[:3]...))
	if s, _ := head(t, pool, "ooo-1"); s != 3 {
		t.Fatalf("head %d, want 3 while 4..6 are on their way", s)
	}
	push(t, e, a.logs(batch[3:6]...))
	if s, h := head(t, pool, "ooo-1"); s != 9 || h != batch[8].Hash {
		t.Errorf("head %d, want 9 once the gap is filled", s)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_breaks"); n != 0 {
		t.Errorf("%d chain breaks, want 0", n)
	}
}

func TestGapRaisedByTheSweepAfterGrace(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfg := testConfig(dsn)
	cfg.ChainGapGrace = time.Second
	e := startExporter(t, cfg)
	pool := openPool(t, dsn)
	a := newAgent(t, "late-1")
	batch := a.trips(5)
	push(t, e, a.logs(batch[:2]...))
	push(t, e, a.logs(batch[3:]...)) // 3 never comes
	if n := breakAlerts(t, pool, "late-1"); n != 0 {
		t.Fatalf("gap raised before its grace: %d alerts", n)
	}
	// The host stays silent: only the sweep can raise it.
	waitFor(t, "the sweep to raise the gap", time.Minute, func() bool {
		if err := e.sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		return breakAlerts(t, pool, "late-1") > 0
	})
	e.sweep(context.Background())
	if n := breakAlerts(t, pool, "late-1"); n != 1 {
		t.Errorf("%d chain_break alerts, want 1", n)
	}
	if k := breakKinds(t, pool, "late-1"); len(k) != 1 || k[0] != "gap:3:4" {
		t.Errorf("breaks %v, want [gap:3:4]", k)
	}
	if s, _ := head(t, pool, "late-1"); s != 5 {
		t.Errorf("head %d, want 5", s)
	}
}

func TestForkIsOneAlert(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "fork-1")
	push(t, e, a.logs(a.trips(5)...))

	// A second chain for the same host (a restored backup, a cloned
	// machine): its seqs 1..7 differ from what was verified.
	b := newAgent(t, "fork-1")
	other := b.trips(7)
	push(t, e, b.logs(other[2:4]...)) // 3, 4: fork at 3, 4 continues it
	push(t, e, b.logs(other[4:]...))  // 5 continues it; 6, 7 follow it past the head
	if n := breakAlerts(t, pool, "fork-1"); n != 1 {
		t.Fatalf("%d chain_break alerts, want 1", n)
	}
	if k := breakKinds(t, pool, "fork-1"); len(k) != 1 || k[0] != "fork:3:3" {
		t.Errorf("breaks %v, want [fork:3:3]", k)
	}
	if s, h := head(t, pool, "fork-1"); s != 7 || h != other[6].Hash {
		t.Errorf("head %d, want 7 on the forked chain", s)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_forks"); n != 3 {
		t.Errorf("%d fork entries, want 3", n)
	}
	// Every alert, forked or not, reads its own event (migration 0018): a
	// fork's alert keeps event_detail, as seq 3..5 of the audit entries are
	// another event's.
	if n := queryInt(t, pool, `SELECT count(*) FROM alerts WHERE tripwire_type <> 'audit' AND
		(`+detailSQL+` IS NULL OR `+detailSQL+`->>'`+event.KeyAlertID+`' <> alert_id::text)`); n != 0 {
		t.Errorf("%d alerts without their own event detail", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts WHERE event_detail IS NOT NULL AND tripwire_type <> 'audit'"); n != 3 {
		t.Errorf("%d alerts store event_detail, want the 3 whose entries are forks", n)
	}
}

func TestForkAtTheHead(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "fork-2")
	push(t, e, a.logs(a.trips(3)...))
	b := newAgent(t, "fork-2")
	other := b.trips(6)
	push(t, e, b.logs(other[3:]...)) // 4 links to a 3 that is not the head
	if n := breakAlerts(t, pool, "fork-2"); n != 1 {
		t.Fatalf("%d chain_break alerts, want 1", n)
	}
	if k := breakKinds(t, pool, "fork-2"); len(k) != 1 || k[0] != "fork:4:4" {
		t.Errorf("breaks %v, want [fork:4:4]", k)
	}
}

func TestAccountedGapRaisesNothing(t *testing.T) {
	cases := []struct {
		name  string
		grace time.Duration
		// sends returns the batches in the order the collector gets them.
		sends func(a *agent) [][]*event.Event
	}{
		{"loss in the same batch", 0, func(a *agent) [][]*event.Event {
			early := a.trips(3)
			a.trips(2) // 4, 5 shed from the spool
			loss := a.loss(4, 5)
			return [][]*event.Event{early, append([]*event.Event{loss}, a.trips(2)...)}
		}},
		{"loss alone, before what follows", 0, func(a *agent) [][]*event.Event {
			early := a.trips(3)
			a.trips(2)
			loss := a.loss(4, 5)
			return [][]*event.Event{early, {loss}, a.trips(2)}
		}},
		{"loss sent ahead of older spooled events", 0, func(a *agent) [][]*event.Event {
			early := a.trips(3)
			a.trips(2)            // 4, 5 shed
			pending := a.trips(3) // 6..8 still in the spool
			loss := a.loss(4, 5)  // 9, sent first
			return [][]*event.Event{early, {loss}, pending, a.trips(1)}
		}},
		{"loss after the gap, within grace", time.Hour, func(a *agent) [][]*event.Event {
			early := a.trips(3)
			a.trips(2)
			loss := a.loss(4, 5)
			after := a.trips(2)
			return [][]*event.Event{early, after, {loss}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDB(t)
			cfg := testConfig(dsn)
			cfg.ChainGapGrace = tc.grace
			e := startExporter(t, cfg)
			pool := openPool(t, dsn)
			a := newAgent(t, "shed-1")
			batches := tc.sends(a)
			for _, b := range batches {
				push(t, e, a.logs(b...))
			}
			if n := breakAlerts(t, pool, "shed-1"); n != 0 {
				t.Errorf("%d chain_break alerts for an accounted gap, want 0", n)
			}
			if k := breakKinds(t, pool, "shed-1"); len(k) != 1 || k[0] != "accounted_gap:4:6" {
				t.Errorf("breaks %v, want [accounted_gap:4:6]", k)
			}
			last, _ := a.chain.Head()
			if s, _ := head(t, pool, "shed-1"); s != int64(last) {
				t.Errorf("head %d, want %d", s, last)
			}
		})
	}
}

func TestUnaccountedLossRangeIsAGap(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "shed-2")
	push(t, e, a.logs(a.trips(3)...))
	a.trips(3) // 4..6 gone, but the agent reports only 4..5
	loss := a.loss(4, 5)
	push(t, e, a.logs(append([]*event.Event{loss}, a.trips(1)...)...))
	if n := breakAlerts(t, pool, "shed-2"); n != 1 {
		t.Errorf("%d chain_break alerts, want 1", n)
	}
}

// Issue 12 item 2: a loss event cannot account for more than it could have
// shed. Each case withholds seqs and sends a forged spool_shed report that
// covers them; every one must still raise the gap.
func TestForgedLossRangeHidesNothing(t *testing.T) {
	cases := []struct {
		name string
		// sends returns the batches the collector gets and the CRITICAL
		// chain_break alerts they must raise.
		sends func(a *agent) ([][]*event.Event, int64)
	}{
		{"range after the loss event's own seq", func(a *agent) ([][]*event.Event, int64) {
			early := a.trips(3)
			loss := a.loss(5, 1<<50) // seq 4 claims 5..2^50
			a.trips(19)              // 5..23 withheld
			return [][]*event.Event{early, {loss}, a.trips(1)}, 1
		}},
		{"range wider than its count", func(a *agent) ([][]*event.Event, int64) {
			early := a.trips(3)
			a.trips(10) // 4..13 withheld
			loss := a.lossCounted(4, 13, 1)
			return [][]*event.Event{early, {loss}, a.trips(1)}, 1
		}},
		{"range of a mismatched entry", func(a *agent) ([][]*event.Event, int64) {
			early := a.trips(3)
			a.trips(2) // 4, 5 withheld
			loss := a.loss(1, 1)
			// Rewritten after hashing: the entry does not hash to its hash.
			loss.Agent.LossFirstSeq, loss.Agent.LossLastSeq, loss.Agent.LossCount = 4, 5, 2
			return [][]*event.Event{early, {loss}, a.trips(1)}, 2 // the mismatch and the gap
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDB(t)
			e := startExporter(t, testConfig(dsn))
			pool := openPool(t, dsn)
			a := newAgent(t, "forge-1")
			batches, want := tc.sends(a)
			for _, b := range batches {
				push(t, e, a.logs(b...))
			}
			if n := breakAlerts(t, pool, "forge-1"); n != want {
				t.Errorf("%d chain_break alerts, want %d (breaks %v)", n, want, breakKinds(t, pool, "forge-1"))
			}
		})
	}
}

// Issue 12 item 12: a fork is continued only by the entry right after the
// fork's entry. Knowing one reported fork's hash must not let a host rewrite
// any other seq quietly.
func TestForkTipMatchesSeqAsWellAsHash(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a, b := newAgent(t, "tip-1"), newAgent(t, "tip-1")
	push(t, e, a.logs(a.trips(10)...))
	other := b.trips(5)
	push(t, e, a.logs(other[4])) // a second seq 5: one fork alert
	if n := breakAlerts(t, pool, "tip-1"); n != 1 {
		t.Fatalf("%d chain_break alerts after the fork, want 1", n)
	}
	// Seq 8 rewritten, linked to the fork's seq-5 hash.
	ev := a.trip()
	ev.Seq, ev.PrevHash = 8, other[4].Hash
	ev.Hash = event.ChainHash(ev.PrevHash, ev.Canonical())
	push(t, e, a.logs(ev))
	if n := breakAlerts(t, pool, "tip-1"); n != 2 {
		t.Errorf("%d chain_break alerts after rewriting seq 8, want 2 (breaks %v)", n, breakKinds(t, pool, "tip-1"))
	}
}
