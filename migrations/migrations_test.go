package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestApplyTwiceIsNoOp(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO hosts (host_name) VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM schema_migrations"); n != len(migrations.Versions()) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(migrations.Versions()))
	}
	if n := count(t, pool, "SELECT count(*) FROM hosts WHERE host_name = 'kept'"); n != 1 {
		t.Fatalf("second Apply lost data: %d host rows", n)
	}
	for _, table := range []string{"hosts", "alerts", "alerts_default", "audit_entries", "chain_heads", "chain_breaks", "chain_losses", "chain_forks"} {
		if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestConcurrentApply(t *testing.T) {
	pool := newPool(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = migrations.Apply(context.Background(), pool)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply %d: %v", i, err)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM schema_migrations"); n != len(migrations.Versions()) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(migrations.Versions()))
	}
}

func partitionOf(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) string {
	t.Helper()
	var name string
	if err := pool.QueryRow(context.Background(), "SELECT tableoid::regclass::text FROM alerts WHERE alert_id = $1", id).Scan(&name); err != nil {
		t.Fatalf("finding alert %s: %v", id, err)
	}
	return name
}

func insertAlert(t *testing.T, pool *pgxpool.Pool, hostID string, at time.Time) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	_, err := pool.Exec(context.Background(), `INSERT INTO alerts
		(alert_id, event_time, host_id, host_name, event_name, tripwire_type, severity, event_detail)
		VALUES ($1, $2, $3, 'h1', 'tripwire.file.access', 'file', 'WARN', '{}')`, id, at, hostID)
	if err != nil {
		t.Fatalf("inserting alert at %s: %v", at, err)
	}
	return id
}

func TestPartitionsAcrossMonthBoundary(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)

	// An alert from an agent whose clock runs a month ahead lands in the
	// default partition until its month's partition exists.
	early := insertAlert(t, pool, hostID(t, pool), time.Date(2027, 2, 3, 0, 0, 0, 0, time.UTC))
	if got := partitionOf(t, pool, early); got != "alerts_default" {
		t.Fatalf("early alert in %s, want alerts_default", got)
	}

	created, err := migrations.EnsurePartitions(ctx, pool, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alerts_2026_12", "alerts_2027_01", "alerts_2027_02"}; fmt.Sprint(created) != fmt.Sprint(want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	if got := partitionOf(t, pool, early); got != "alerts_2027_02" {
		t.Fatalf("early alert not moved out of the default partition: in %s", got)
	}
	again, err := migrations.EnsurePartitions(ctx, pool, now, 2)
	if err != nil || len(again) != 0 {
		t.Fatalf("second EnsurePartitions created %v, err %v", again, err)
	}

	host := hostID(t, pool)
	last := insertAlert(t, pool, host, time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.UTC))
	first := insertAlert(t, pool, host, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := partitionOf(t, pool, last); got != "alerts_2026_12" {
		t.Errorf("last second of December in %s", got)
	}
	if got := partitionOf(t, pool, first); got != "alerts_2027_01" {
		t.Errorf("first instant of January in %s", got)
	}
	// A query across the boundary sees both, in order.
	rows, err := pool.Query(ctx, `SELECT alert_id FROM alerts
		WHERE host_id = $1 AND event_time >= '2026-12-31T23:00:00Z' AND event_time < '2027-01-01T01:00:00Z'
		ORDER BY event_time DESC`, host)
	if err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(got) != 2 || got[0] != first || got[1] != last {
		t.Fatalf("query across the boundary got %v, want [%s %s]", got, first, last)
	}
}

func hostID(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var id string
	err := pool.QueryRow(context.Background(),
		"INSERT INTO hosts (host_name) VALUES ($1) RETURNING host_id::text", uuid.NewString()).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNextMonthPartitionAfterStart(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := migrations.EnsurePartitions(ctx, pool, now, 1); err != nil {
		t.Fatal(err)
	}
	next := migrations.PartitionName(time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC))
	if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", next); n != 1 {
		t.Fatalf("partition %s for next month missing", next)
	}
}

func TestDropExpired(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	jan := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	if _, err := migrations.EnsurePartitions(ctx, pool, jan, 5); err != nil { // Jan..Jun
		t.Fatal(err)
	}
	host := hostID(t, pool)
	ancient := insertAlert(t, pool, host, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) // default partition
	april := insertAlert(t, pool, host, time.Date(2026, 4, 30, 23, 0, 0, 0, time.UTC))
	kept := insertAlert(t, pool, host, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))

	// 30 days before June 15 is May 16: January..April ended before it;
	// May did not.
	now := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	dropped, err := migrations.DropExpired(ctx, pool, now, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alerts_2026_01", "alerts_2026_02", "alerts_2026_03", "alerts_2026_04"}; fmt.Sprint(dropped) != fmt.Sprint(want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	for _, name := range []string{"alerts_2026_05", "alerts_2026_06", "alerts_default"} {
		if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", name); n != 1 {
			t.Errorf("%s was dropped", name)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM alerts WHERE alert_id = ANY($1)", []uuid.UUID{ancient, april}); n != 0 {
		t.Fatalf("%d expired alerts remain", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM alerts WHERE alert_id = $1", kept); n != 1 {
		t.Fatalf("the May alert was expired")
	}
	if dropped, err := migrations.DropExpired(ctx, pool, now, 0); err != nil || len(dropped) != 0 {
		t.Fatalf("zero retention dropped %v, err %v", dropped, err)
	}
}

// TestVersionsNumberedOnce: two migrations with one number apply in name
// order, which is an accident of naming; each number is used once.
func TestVersionsNumberedOnce(t *testing.T) {
	seen := map[string]string{}
	for _, v := range migrations.Versions() {
		n, _, ok := strings.Cut(v, "_")
		if !ok || len(n) != 4 {
			t.Errorf("migration %s: want NNNN_name", v)
			continue
		}
		if prev, dup := seen[n]; dup {
			t.Errorf("migrations %s and %s share number %s", prev, v, n)
		}
		seen[n] = v
	}
}

// Migration 0020: search words compare as bytes, and free text's query
// (the plugin's search_words @> $1::text[], a parameter of the default
// collation) still finds its rows through the index.
func TestSearchWordsUseTheBytewiseIndex(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.EnsurePartitions(ctx, pool, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	id := insertAlert(t, pool, hostID(t, pool), time.Now())
	if _, err := pool.Exec(ctx, `UPDATE alerts SET search_words = ARRAY['passwd', 'read', 'read passwd'] WHERE alert_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	var collation string
	if err := pool.QueryRow(ctx, `SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
		WHERE a.attrelid = 'alerts'::regclass AND a.attname = 'search_words'`).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	if collation != "C" {
		t.Fatalf("search_words elements collate as %q, want C", collation)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT alert_id FROM alerts WHERE search_words @> $1::text[]`
	var rows []string
	r, err := conn.Query(ctx, "EXPLAIN "+q, []string{"read passwd"})
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, line)
	}
	if !strings.Contains(strings.Join(rows, "\n"), "search_words_idx") {
		t.Errorf("free text does not use the search index:\n%s", strings.Join(rows, "\n"))
	}
	var found uuid.UUID
	if err := conn.QueryRow(ctx, q, []string{"read passwd"}).Scan(&found); err != nil || found != id {
		t.Fatalf("found %v, %v; want %v", found, err, id)
	}
}
