// Package schema holds the SQL of TripWire's PostgreSQL schema that is built
// in code rather than kept in a migration file: the monthly alerts
// partitions. The exporter creates them (migrations.EnsurePartitions) and the
// test harness (contract/pgtest) builds its template database with the same
// statements. Start with [Partition].
package schema

import (
	"fmt"
	"regexp"
	"time"
)

// partitionName matches the names PartitionName gives.
var partitionName = regexp.MustCompile(`^alerts_(\d{4})_(\d{2})$`)

// PartitionName is the name of the alerts partition holding t's month (UTC).
func PartitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("alerts_%04d_%02d", t.Year(), int(t.Month()))
}

// PartitionMonth parses a name PartitionName gave back into its month; ok is
// false for any other table name.
func PartitionMonth(name string) (month time.Time, ok bool) {
	m := partitionName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	month, err := time.Parse("2006-01", m[1]+"-"+m[2])
	return month, err == nil
}

// MonthStart is the first instant of t's month, UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Partition returns the name of the partition for month's month and the
// statements that create it, to run in one transaction. Rows of that month
// already in alerts_default (an agent clock running ahead, or a partition
// created late) are moved into it; PostgreSQL would otherwise refuse the
// partition.
func Partition(month time.Time) (name string, steps []string) {
	from := MonthStart(month)
	to := from.AddDate(0, 1, 0)
	name = PartitionName(from)
	// DDL takes no parameters; the bounds are our own formatted times and
	// the name is PartitionName's.
	const layout = "2006-01-02 15:04:05+00"
	return name, []string{
		"CREATE TEMP TABLE alerts_moving (LIKE alerts) ON COMMIT DROP",
		`WITH moved AS (DELETE FROM alerts_default
		                WHERE event_time >= '` + from.Format(layout) + `' AND event_time < '` + to.Format(layout) + `'
		                RETURNING *)
		 INSERT INTO alerts_moving SELECT * FROM moved`,
		"CREATE TABLE " + name + " PARTITION OF alerts FOR VALUES FROM ('" + from.Format(layout) + "') TO ('" + to.Format(layout) + "')",
		"INSERT INTO alerts SELECT * FROM alerts_moving",
		"DROP TABLE alerts_moving",
	}
}
