package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
)

// Count is one group's total.
type Count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// Stats summarises alerts in a time range for the overview.
type Stats struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Total      int64     `json:"total"`
	BySeverity []Count   `json:"by_severity"`
	ByType     []Count   `json:"by_type"`
	TopHosts   []Count   `json:"top_hosts"`
	TopRules   []Count   `json:"top_rules"`
	HostStatus []Count   `json:"host_status"`
}

// groupColumns maps the public group names onto columns. Only these constant
// names ever reach SQL text.
var groupColumns = map[string]string{
	"type":     "tripwire_type",
	"severity": "severity",
	"host":     "host_name",
	"rule":     "rule_name",
}

// Stats counts alerts in [from, to).
func (s *Store) Stats(ctx context.Context, from, to time.Time) (*Stats, error) {
	if !from.Before(to) {
		return nil, badRequest("from must be before to")
	}
	if to.Sub(from) > MaxStatsRange {
		return nil, badRequest("stats cover at most %d days", int(MaxStatsRange.Hours()/24))
	}
	st := &Stats{From: from, To: to}
	counts := func(col string, limit int) ([]Count, error) {
		rows, err := s.pool.Query(ctx, `SELECT `+col+`, count(*) FROM alerts
WHERE event_time >= $1 AND event_time < $2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3`, from, to, limit)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowToStructByPos[Count])
	}
	var err error
	if st.BySeverity, err = counts(groupColumns["severity"], 10); err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	for _, c := range st.BySeverity {
		st.Total += c.Count
	}
	if st.ByType, err = counts(groupColumns["type"], 10); err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	if st.TopHosts, err = counts(groupColumns["host"], 10); err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	if st.TopRules, err = counts(groupColumns["rule"], 10); err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT CASE WHEN status = '`+contract.StatusRetired+`' THEN status WHEN last_seen < now() - make_interval(secs => $1) THEN '`+contract.StatusOffline+`' ELSE status END, count(*)
FROM hosts GROUP BY 1 ORDER BY 1`, s.offlineAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("counting hosts: %w", err)
	}
	if st.HostStatus, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Count]); err != nil {
		return nil, fmt.Errorf("counting hosts: %w", err)
	}
	for _, p := range []*[]Count{&st.BySeverity, &st.ByType, &st.TopHosts, &st.TopRules, &st.HostStatus} {
		if *p == nil {
			*p = []Count{}
		}
	}
	return st, nil
}

// Series is one group's counts per bucket.
type Series struct {
	Group  string
	Times  []time.Time
	Counts []int64
}

// maxBuckets bounds a time series query.
const maxBuckets = 11000

// CountSeries counts alerts matching f per interval bucket, one series per
// value of groupBy ("" = one total series). Buckets with no alerts are zero,
// not missing, so panels and alert rules see a continuous series.
func (s *Store) CountSeries(ctx context.Context, f *Filter, groupBy string, interval time.Duration) ([]Series, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if f.From.IsZero() || f.To.IsZero() {
		return nil, badRequest("a time range is required")
	}
	if interval < time.Second {
		interval = time.Second
	}
	if f.To.Sub(f.From)/interval > maxBuckets {
		return nil, badRequest("interval too small for the range (over %d buckets)", maxBuckets)
	}
	groupExpr := "''"
	if groupBy != "" {
		col, ok := groupColumns[groupBy]
		if !ok {
			return nil, badRequest("groupBy: unknown value %q (want type, severity, host or rule)", groupBy)
		}
		groupExpr = col
	}
	w, _, err := s.alertWhere(ctx, f, false)
	if err != nil {
		return nil, err
	}
	iv := w.param(interval.Seconds())
	origin := w.param(f.From)
	q := `SELECT date_bin(make_interval(secs => ` + iv + `), event_time, ` + origin + `) AS bucket, ` +
		groupExpr + `, count(*) FROM alerts` + w.sql() + ` GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 1000000`
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	defer rows.Close()
	n := int(f.To.Sub(f.From) / interval)
	if f.From.Add(time.Duration(n) * interval).Before(f.To) {
		n++
	}
	var out []Series
	var cur *Series
	for rows.Next() {
		var bucket time.Time
		var group string
		var count int64
		if err := rows.Scan(&bucket, &group, &count); err != nil {
			return nil, fmt.Errorf("counting alerts: %w", err)
		}
		if cur == nil || cur.Group != group {
			if len(out) >= maxFilterSet*4 {
				break
			}
			out = append(out, newSeries(group, f.From, interval, n))
			cur = &out[len(out)-1]
		}
		if i := int(bucket.Sub(f.From) / interval); i >= 0 && i < n {
			cur.Counts[i] = count
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting alerts: %w", err)
	}
	if groupBy == "" && len(out) == 0 {
		out = append(out, newSeries("", f.From, interval, n))
	}
	return out, nil
}

func newSeries(group string, from time.Time, interval time.Duration, n int) Series {
	s := Series{Group: group, Times: make([]time.Time, n), Counts: make([]int64, n)}
	for i := range s.Times {
		s.Times[i] = from.Add(time.Duration(i) * interval)
	}
	return s
}
