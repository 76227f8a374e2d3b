package migrations_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/migrations"
)

// TestTriageNotifiesOnCommit: a triage change NOTIFYs the alert's key on
// contract.TriageNotifyChannel when it commits; a rolled-back change and a
// change to the value already there send nothing.
func TestTriageNotifiesOnCommit(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC) // alerts_default
	id := insertAlert(t, pool, hostID(t, pool), at)
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+contract.TriageNotifyChannel); err != nil {
		t.Fatal(err)
	}
	next := func() (string, bool) {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		n, err := listener.Conn().WaitForNotification(wctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			return "", false
		}
		return n.Payload, true
	}
	triage := func(tx pgx.Tx, state string) {
		var n int
		if err := tx.QueryRow(ctx, `SELECT tripwire_triage($1, '', 'alice', $2, false, NULL, NULL)`, id, state).Scan(&n); err != nil || n != 1 {
			t.Fatalf("triage: %d, %v", n, err)
		}
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	triage(tx, "ACKNOWLEDGED")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if p, ok := next(); ok {
		t.Fatalf("rolled-back change notified %s", p)
	}

	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	triage(tx, "ACKNOWLEDGED")
	if p, ok := next(); ok {
		t.Fatalf("notified before commit: %s", p)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p, ok := next()
	if !ok {
		t.Fatal("no notification after commit")
	}
	n, err := contract.DecodeTriageNotification([]byte(p))
	if err != nil || n.AlertID != id.String() || n.HostName != "h1" || n.EventTime != at.Format(contract.NotifyTimeLayout) {
		t.Fatalf("payload %s: %+v, %v", p, n, err)
	}

	// Acknowledging it again changes nothing, so nothing is sent.
	if _, err := pool.Exec(ctx, `SELECT tripwire_triage($1, '', 'bob', 'ACKNOWLEDGED', false, NULL, NULL)`, id); err != nil {
		t.Fatal(err)
	}
	if p, ok := next(); ok {
		t.Fatalf("unchanged triage notified %s", p)
	}
}
