// Package migrations holds TripWire's PostgreSQL schema, embedded, and
// applies it. Use Apply at start; then EnsurePartitions and DropExpired keep
// the daily alert partitions in shape.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract/schema"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_xact_lock key that serialises schema changes
// among collectors starting at once ("TripWire" in ASCII).
const lockKey int64 = 0x5472697057697265

// Versions lists the embedded migrations in the order Apply runs them.
func Versions() []string {
	names, _ := fs.Glob(files, "*.sql")
	sort.Strings(names)
	for i, n := range names {
		names[i] = strings.TrimSuffix(n, ".sql")
	}
	return names
}

// Apply runs the embedded migrations not yet recorded in schema_migrations,
// in file-name order, in one transaction under an advisory lock, so several
// collectors may start at once and a half-applied schema never exists.
// Applying again is a no-op.
func Apply(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("locking schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    text        PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		done := make(map[string]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, v := range Versions() {
			if done[v] {
				continue
			}
			sql, err := files.ReadFile(v + ".sql")
			if err != nil {
				return err
			}
			// No arguments: pgx sends it with the simple protocol, which
			// runs a file of several statements.
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("applying migration %s: %w", v, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v); err != nil {
				return fmt.Errorf("recording migration %s: %w", v, err)
			}
		}
		return nil
	})
}

// partitionKey serialises partition maintenance among collectors.
const partitionKey = lockKey + 1

// PartitionName is the name of the alerts partition holding t's day (UTC).
func PartitionName(t time.Time) string { return schema.PartitionName(t) }

// EnsurePartitions creates the daily alerts partitions from now's day to
// daysAhead days later (UTC), and returns the names it created. A day that
// a monthly partition (made before partitions were daily) already holds is
// left to it.
//
// Rows of a new partition's day that already sit in alerts_default (an
// agent clock running ahead, or a partition created late) are moved into it
// in the same transaction; PostgreSQL would otherwise refuse the partition.
func EnsurePartitions(ctx context.Context, pool *pgxpool.Pool, now time.Time, daysAhead int) ([]string, error) {
	if daysAhead < 0 {
		return nil, fmt.Errorf("days ahead is negative: %d", daysAhead)
	}
	var created []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		created = created[:0]
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionKey); err != nil {
			return fmt.Errorf("locking partitions: %w", err)
		}
		first := schema.DayStart(now)
		for i := 0; i <= daysAhead; i++ {
			day := first.AddDate(0, 0, i)
			name, steps := schema.Partition(day)
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL OR to_regclass($2) IS NOT NULL",
				name, schema.MonthlyPartitionName(day)).Scan(&exists); err != nil {
				return fmt.Errorf("looking up %s: %w", name, err)
			}
			if exists {
				continue
			}
			for _, sql := range steps {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("creating partition %s: %w", name, err)
				}
			}
			created = append(created, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

// DropExpired drops the alerts partitions (daily, or monthly from before
// partitions were daily) whose whole span ended more than retention before
// now, deletes alerts_default rows older than that, and returns the names
// of the dropped partitions. A retention of zero keeps everything.
//
// Audit entries are kept: they are the chain, and replay and fork detection
// need them. The triage of the removed alerts goes with them.
func DropExpired(ctx context.Context, pool *pgxpool.Pool, now time.Time, retention time.Duration) ([]string, error) {
	if retention < 0 {
		return nil, fmt.Errorf("retention is negative: %s", retention)
	}
	if retention == 0 {
		return nil, nil
	}
	cutoff := now.Add(-retention)
	var dropped []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		dropped = dropped[:0]
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionKey); err != nil {
			return fmt.Errorf("locking partitions: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'alerts'::regclass`)
		if err != nil {
			return fmt.Errorf("listing partitions: %w", err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("listing partitions: %w", err)
		}
		sort.Strings(names)
		for _, name := range names {
			_, end, ok := schema.PartitionBounds(name)
			if !ok || end.After(cutoff) {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+pgx.Identifier{name}.Sanitize()); err != nil {
				return fmt.Errorf("dropping partition %s: %w", name, err)
			}
			dropped = append(dropped, name)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM alerts_default WHERE event_time < $1", cutoff); err != nil {
			return fmt.Errorf("expiring alerts_default: %w", err)
		}
		// Triage has no foreign key to the partitioned alerts (0015): the
		// state of the alerts just removed goes now, their history with it
		// (ON DELETE CASCADE). Alerts older than the cutoff in a month that
		// is kept are still shown, and so keep theirs.
		if _, err := tx.Exec(ctx, `DELETE FROM alert_triage t WHERE t.event_time < $1 AND NOT EXISTS
			(SELECT 1 FROM alerts a WHERE a.alert_id = t.alert_id AND a.host_id = t.host_id AND a.event_time = t.event_time)`, cutoff); err != nil {
			return fmt.Errorf("expiring alert triage: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}
