package collector

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// The chain tests of the delivery issue, through the real collector: a
// simulated agent (plain OTLP over mTLS) with a valid chain.

func waitCount(t *testing.T, pool *pgxpool.Pool, want int, sql string, args ...any) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var n int
	for {
		err := pool.QueryRow(context.Background(), sql, args...).Scan(&n)
		if err == nil && n >= want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after 60s (err %v), want %d", sql, n, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReplayedBatchIsNoDuplicateAndNoAlert(t *testing.T) {
	s := newStack(t)
	a := newSimAgent(t, s, "chain-replay")
	ld := a.logs(a.events(20, "replay"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.send(ctx, ld); err != nil {
		t.Fatal(err)
	}
	// The agent did not see the acknowledgement and sends the batch again.
	if err := a.send(ctx, ld); err != nil {
		t.Fatal(err)
	}
	// And then the next one, which must continue the chain.
	if err := a.send(ctx, a.logs(a.events(5, "replay"))); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitCount(t, pool, 25, `SELECT count(*) FROM alerts WHERE rule_name = 'replay'`)
	time.Sleep(2 * time.Second) // let a late duplicate or alert show up
	var rows, breaks, audit int
	var head int64
	err = pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM alerts WHERE host_name = 'chain-replay'),
		       (SELECT count(*) FROM chain_breaks),
		       (SELECT count(*) FROM alerts WHERE tripwire_type = 'audit'),
		       (SELECT seq FROM chain_heads)`).Scan(&rows, &breaks, &audit, &head)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 25 || breaks != 0 || audit != 0 || head != 25 {
		t.Errorf("after a replayed batch: %d alert rows (want 25), %d chain breaks, %d audit alerts (want 0), head seq %d (want 25)",
			rows, breaks, audit, head)
	}
}

func TestRewrittenLogRaisesChainBreak(t *testing.T) {
	s := newStack(t)
	a := newSimAgent(t, s, "chain-rewrite")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.send(ctx, a.logs(a.events(10, "rewrite"))); err != nil {
		t.Fatal(err)
	}
	// An attacker rewrote the local log from seq 6 on and the agent resends
	// it: same seqs, other contents, a chain that is internally consistent.
	a.seq, a.prev = 5, ""
	evs := a.events(5, "rewrite")
	// Re-chain from the real hash of entry 5, which the attacker knows.
	pool, err := pgxpool.New(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitCount(t, pool, 10, `SELECT count(*) FROM alerts WHERE rule_name = 'rewrite'`)
	var prev string
	if err := pool.QueryRow(ctx, `SELECT hash FROM audit_entries WHERE seq = 5`).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		e.File.Path = "/srv/data/innocent"
		e.PrevHash = prev
		e.Hash = event.ChainHash(prev, e.Canonical())
		prev = e.Hash
	}
	if err := a.send(ctx, a.logs(evs)); err != nil {
		t.Fatal(err)
	}
	waitCount(t, pool, 1, `SELECT count(*) FROM alerts WHERE tripwire_type = 'audit' AND severity = 'CRITICAL' AND host_name = 'chain-rewrite'`)
	var kind string
	var got int64
	if err := pool.QueryRow(ctx, `SELECT kind, got_seq FROM chain_breaks ORDER BY break_id LIMIT 1`).Scan(&kind, &got); err != nil {
		t.Fatal(err)
	}
	if kind != string(event.BreakFork) || got != 6 {
		t.Errorf("chain break %s at seq %d, want a fork at seq 6", kind, got)
	}
}
