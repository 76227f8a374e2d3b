package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

func TestPartitionsAcrossDayBoundary(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)

	// An alert from an agent whose clock runs two days ahead lands in the
	// default partition until its day's partition exists.
	early := insertAlert(t, pool, hostID(t, pool), time.Date(2027, 1, 2, 3, 0, 0, 0, time.UTC))
	if got := partitionOf(t, pool, early); got != "alerts_default" {
		t.Fatalf("early alert in %s, want alerts_default", got)
	}

	created, err := migrations.EnsurePartitions(ctx, pool, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alerts_2026_12_31", "alerts_2027_01_01", "alerts_2027_01_02"}; fmt.Sprint(created) != fmt.Sprint(want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	if got := partitionOf(t, pool, early); got != "alerts_2027_01_02" {
		t.Fatalf("early alert not moved out of the default partition: in %s", got)
	}
	again, err := migrations.EnsurePartitions(ctx, pool, now, 2)
	if err != nil || len(again) != 0 {
		t.Fatalf("second EnsurePartitions created %v, err %v", again, err)
	}

	host := hostID(t, pool)
	last := insertAlert(t, pool, host, time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.UTC))
	first := insertAlert(t, pool, host, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := partitionOf(t, pool, last); got != "alerts_2026_12_31" {
		t.Errorf("last second of the year in %s", got)
	}
	if got := partitionOf(t, pool, first); got != "alerts_2027_01_01" {
		t.Errorf("first instant of the year in %s", got)
	}
	// A query across the boundary sees both, in order.
	rows, err := pool.Query(ctx, `SELECT alert_id FROM alerts
		WHERE host_id = $1 AND event_time >= '2026-12-31T23:00:00Z' AND event_time < '2027-01-01T01:00:00Z'
		ORDER BY event_time DESC`, host)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != first || got[1] != last {
		t.Fatalf("query across the boundary got %v, want [%s %s]", got, first, last)
	}
}

// A database from before partitions were daily keeps its monthly
// partitions: EnsurePartitions leaves their days to them and goes on daily
// after the last one, and DropExpired drops a monthly partition once its
// whole month is past retention.
func TestMonthlyPartitionsGiveWayToDaily(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE TABLE alerts_2026_10 PARTITION OF alerts FOR VALUES FROM ('2026-10-01 00:00:00+00') TO ('2026-11-01 00:00:00+00')`,
		`CREATE TABLE alerts_2026_11 PARTITION OF alerts FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	created, err := migrations.EnsurePartitions(ctx, pool, time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alerts_2026_12_01", "alerts_2026_12_02"}; fmt.Sprint(created) != fmt.Sprint(want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	host := hostID(t, pool)
	november := insertAlert(t, pool, host, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC))
	december := insertAlert(t, pool, host, time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC))
	if got := partitionOf(t, pool, november); got != "alerts_2026_11" {
		t.Errorf("November alert in %s", got)
	}
	if got := partitionOf(t, pool, december); got != "alerts_2026_12_01" {
		t.Errorf("December alert in %s", got)
	}
	// 30 days before December 15 is November 15: October ended before it,
	// November did not.
	dropped, err := migrations.DropExpired(ctx, pool, time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dropped) != "[alerts_2026_10]" {
		t.Fatalf("dropped %v, want [alerts_2026_10]", dropped)
	}
	// 30 days before January 1 is December 2: November and December 1 ended before it.
	dropped, err = migrations.DropExpired(ctx, pool, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[alerts_2026_11 alerts_2026_12_01]"; fmt.Sprint(dropped) != want {
		t.Fatalf("dropped %v, want %s", dropped, want)
	}
	if n := count(t, pool, "SELECT count(*) FROM alerts WHERE alert_id = ANY($1)", []uuid.UUID{november, december}); n != 0 {
		t.Fatalf("%d expired alerts remain", n)
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

func TestTomorrowsPartitionAfterStart(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := migrations.EnsurePartitions(ctx, pool, now, 1); err != nil {
		t.Fatal(err)
	}
	next := migrations.PartitionName(now.AddDate(0, 0, 1))
	if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", next); n != 1 {
		t.Fatalf("partition %s for tomorrow missing", next)
	}
}

func TestDropExpired(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := migrations.EnsurePartitions(ctx, pool, jan, 4); err != nil { // Jan 1..5
		t.Fatal(err)
	}
	host := hostID(t, pool)
	ancient := insertAlert(t, pool, host, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) // default partition
	second := insertAlert(t, pool, host, time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC))
	kept := insertAlert(t, pool, host, time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC))

	// 30 days before February 2, noon, is January 3, noon: January 1 and 2
	// ended before it; January 3 did not.
	now := time.Date(2026, 2, 2, 12, 0, 0, 0, time.UTC)
	dropped, err := migrations.DropExpired(ctx, pool, now, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alerts_2026_01_01", "alerts_2026_01_02"}; fmt.Sprint(dropped) != fmt.Sprint(want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	for _, name := range []string{"alerts_2026_01_03", "alerts_2026_01_05", "alerts_default"} {
		if n := count(t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", name); n != 1 {
			t.Errorf("%s was dropped", name)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM alerts WHERE alert_id = ANY($1)", []uuid.UUID{ancient, second}); n != 0 {
		t.Fatalf("%d expired alerts remain", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM alerts WHERE alert_id = $1", kept); n != 1 {
		t.Fatalf("the January 3 alert was expired")
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
