// Package schema holds the SQL of TripWire's PostgreSQL schema that is built
// in code rather than kept in a migration file: the daily alerts partitions.
// The exporter creates them (migrations.EnsurePartitions) and the test
// harness (contract/pgtest) builds its template database with the same
// statements. Start with [Partition].
package schema

import (
	"fmt"
	"regexp"
	"time"
)

// Alerts are partitioned by day (UTC). At the ingest goal of 15,000 events
// a second a day is 1.3 billion rows: a day is what retention drops, what
// vacuum and an index build take on at once, and what a search's time
// range selects. Before issue 17, partitions were monthly (alerts_YYYY_MM);
// a database that has them keeps them until retention drops them, and new
// days go to daily partitions once the last monthly one ends.
var (
	dayName   = regexp.MustCompile(`^alerts_(\d{4})_(\d{2})_(\d{2})$`)
	monthName = regexp.MustCompile(`^alerts_(\d{4})_(\d{2})$`)
)

// PartitionName is the name of the alerts partition holding t's day (UTC).
func PartitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("alerts_%04d_%02d_%02d", t.Year(), int(t.Month()), t.Day())
}

// MonthlyPartitionName is the name a monthly partition holding t had.
func MonthlyPartitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("alerts_%04d_%02d", t.Year(), int(t.Month()))
}

// PartitionBounds parses the name of a daily or monthly alerts partition
// into the times it holds, [from, to); ok is false for any other name.
func PartitionBounds(name string) (from, to time.Time, ok bool) {
	if m := dayName.FindStringSubmatch(name); m != nil {
		from, err := time.Parse("2006-01-02", m[1]+"-"+m[2]+"-"+m[3])
		return from, from.AddDate(0, 0, 1), err == nil
	}
	if m := monthName.FindStringSubmatch(name); m != nil {
		from, err := time.Parse("2006-01", m[1]+"-"+m[2])
		return from, from.AddDate(0, 1, 0), err == nil
	}
	return time.Time{}, time.Time{}, false
}

// DayStart is the first instant of t's day, UTC.
func DayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Partition returns the name of the partition for day's day and the
// statements that create it, to run in one transaction. Rows of that day
// already in alerts_default (an agent clock running ahead, or a partition
// created late) are moved into it; PostgreSQL would otherwise refuse the
// partition.
func Partition(day time.Time) (name string, steps []string) {
	from := DayStart(day)
	to := from.AddDate(0, 0, 1)
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
