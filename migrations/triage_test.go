package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tripwire-sec/tripwire/migrations"
)

// TestDropExpiredTakesTriage: the triage state and history of the alerts
// retention removes (a dropped month, expired alerts_default rows) go with
// them; those of alerts still stored stay, even when older than the cutoff.
func TestDropExpiredTakesTriage(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.EnsurePartitions(ctx, pool, time.Date(2026, 5, 14, 0, 0, 0, 0, time.UTC), 3); err != nil { // May 14..17
		t.Fatal(err)
	}
	host := hostID(t, pool)
	ancient := insertAlert(t, pool, host, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) // alerts_default
	may15 := insertAlert(t, pool, host, time.Date(2026, 5, 15, 23, 0, 0, 0, time.UTC))
	mayEarly := insertAlert(t, pool, host, time.Date(2026, 5, 16, 2, 0, 0, 0, time.UTC)) // before the cutoff, day kept
	mayLate := insertAlert(t, pool, host, time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC))
	all := []uuid.UUID{ancient, may15, mayEarly, mayLate}
	for _, id := range all {
		var n int
		if err := pool.QueryRow(ctx, `SELECT tripwire_triage($1, '', 'alice', 'ACKNOWLEDGED', true, 'bob', 'looked at it')`, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("triaging %s: %d, %v", id, n, err)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM alert_triage_history"); n != 3*len(all) {
		t.Fatalf("%d history rows, want %d", n, 3*len(all))
	}

	// Cutoff May 16, noon: May 14 and 15 are dropped, May 16 is kept.
	if _, err := migrations.DropExpired(ctx, pool, time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC), 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   uuid.UUID
		want int
	}{{ancient, 0}, {may15, 0}, {mayEarly, 1}, {mayLate, 1}} {
		if n := count(t, pool, "SELECT count(*) FROM alert_triage WHERE alert_id = $1", c.id); n != c.want {
			t.Errorf("alert %s: %d triage rows, want %d", c.id, n, c.want)
		}
		if n := count(t, pool, "SELECT count(*) FROM alert_triage_history WHERE alert_id = $1", c.id); n != 3*c.want {
			t.Errorf("alert %s: %d history rows, want %d", c.id, n, 3*c.want)
		}
	}
}
