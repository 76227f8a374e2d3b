package plugin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tripwire-sec/tripwire/contract"
)

// Alert is one row of the alerts table; Detail is the canonical event.
type Alert struct {
	AlertID    string          `json:"alert_id"`
	EventTime  time.Time       `json:"event_time"`
	ReceivedAt time.Time       `json:"received_at"`
	HostName   string          `json:"host_name"`
	EventName  string          `json:"event_name"`
	Type       string          `json:"tripwire_type"`
	Rule       string          `json:"rule_name"`
	Severity   string          `json:"severity"`
	Seq        *int64          `json:"seq"`
	Summary    string          `json:"summary"`
	Detail     json.RawMessage `json:"event_detail,omitempty"`
	// Triage is set by ListAlerts and GetAlert (triage.go).
	Triage *Triage `json:"triage,omitempty"`
}

// Filter selects alerts. Empty sets and zero times mean "any".
type Filter struct {
	Hosts      []string
	Types      []string
	Severities []string
	Rules      []string
	Text       string
	From, To   time.Time // From inclusive, To exclusive
	States     []string  // triage states (triage.go)
	Assignee   string    // a Grafana login the alert is assigned to
}

// Validate rejects values no alert can carry, so that typos give a 400
// instead of a silently empty page.
func (f *Filter) Validate() error {
	for _, set := range []struct {
		name string
		vals []string
		enum []string
	}{
		{"host", f.Hosts, nil}, {"type", f.Types, Types},
		{"severity", f.Severities, Severities}, {"rule", f.Rules, nil}, {"state", f.States, TriageStates},
	} {
		if len(set.vals) > maxFilterSet {
			return badRequest("%s: at most %d values", set.name, maxFilterSet)
		}
		for _, v := range set.vals {
			if err := checkText(set.name, v, maxFilterLen); err != nil {
				return err
			}
			if set.enum != nil && !slices.Contains(set.enum, v) {
				return badRequest("%s: unknown value %q (want one of %s)", set.name, v, strings.Join(set.enum, ", "))
			}
		}
	}
	if err := checkText("q", f.Text, maxTextLen); err != nil {
		return err
	}
	if err := checkText("assignee", f.Assignee, maxFilterLen); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return badRequest("from must be before to")
	}
	if f.Text != "" {
		// The index holds words (runs of letters and digits): a q with
		// none could only be answered by reading every row of the range.
		if len(contract.SearchQueryTerms(f.Text)) == 0 {
			return badRequest("q: needs a letter or digit")
		}
		// The index finds rows by word across each daily partition the
		// range touches; the range keeps that to the days asked for.
		to := f.To
		if to.IsZero() {
			to = time.Now()
		}
		if f.From.IsZero() || to.Sub(f.From) > MaxTextRange {
			return badRequest("q: needs a time range (from) of at most %d days", int(MaxTextRange.Hours()/24))
		}
	}
	return nil
}

// alertWhere builds the conditions for f. With splitHosts, several hosts are
// not added as one condition but returned, for ListAlerts to query each on
// its own index range.
func (s *Store) alertWhere(ctx context.Context, f *Filter, splitHosts bool) (*where, []string, error) {
	w := &where{}
	var hosts []string
	if !f.From.IsZero() {
		w.add("event_time >= ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("event_time < ?", f.To)
	}
	if len(f.Hosts) > 0 {
		// alerts is indexed on (host_id, event_time): resolve names first so
		// the planner sees constant ids and walks that index in order.
		ids, err := s.hostIDs(ctx, f.Hosts)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case len(ids) == 0:
			// No such host: the answer is empty, not unfiltered.
			w.add("false")
		case len(ids) > 1 && splitHosts:
			hosts = ids
		default:
			w.inSet("host_id", "::uuid", ids)
		}
	}
	w.inSet("tripwire_type", "", f.Types)
	w.inSet("severity", "", f.Severities)
	w.inSet("rule_name", "", f.Rules)
	triageWhere(w, f)
	if f.Text != "" {
		w.conds = append(w.conds, textMatch(w, f.Text))
	}
	return w, hosts, nil
}

// textMatch is the condition that a row holds q, bound in w's arguments.
//
// Migration 0012: the GIN index on search_words finds the rows holding q's
// word, or each pair of neighbouring words of q (in the summary, rule, host,
// command line or user); LIKE keeps those where q appears as typed, case
// aside. The command line and user are in the event's payload, which a
// chained alert reads from its audit entry (migration 0018): the columns
// are tried first, and a match there is a match in the whole text, which
// begins with them.
//
// The planner guesses these LIKEs keep very few rows, so it finds the rows
// through the search words of each day's partition in the range (and, in
// the day where the range starts, the BRIN index of migration 0021) rather
// than reading back from the newest. Written as a function it
// guesses a third instead and reads back from the newest, which took 1.5 s
// when the newest rows were a burst of other alerts (issue 17); ListAlerts
// reads the newest rows first itself, a bounded number of them.
func textMatch(w *where, q string) string {
	like := likeEscape(q)
	return w.bind(`search_words @> ?::text[]
	AND (lower(summary || ' ' || rule_name || ' ' || host_name) LIKE lower(?)
	     OR alert_search_text(summary, rule_name, host_name, alert_detail(host_id, seq, alert_id, event_detail)) LIKE lower(?))`,
		contract.SearchQueryTerms(q), like, like)
}

// newestFirst is how many of the newest rows of the range ListAlerts reads
// for free text before it asks the indexes: enough to fill a page when q is
// in about one row of 20, a few milliseconds to read.
const newestFirst = 2000

// windows are the spans back from the newest end of the range that
// ListAlerts reads before the whole range. Alerts are partitioned by day
// (contract/schema), and PostgreSQL plans and starts a scan of every
// partition a query may touch: a page of the newest alerts of 90 days cost
// 8-11 ms, against 1-2 ms for the last day's partitions. Rows of a window
// are newer than every row outside it, so a window that fills the page
// holds the page.
var windows = []time.Duration{24 * time.Hour, 8 * 24 * time.Hour}

// Cursor is a keyset position: the last (event_time, alert_id) of a page.
type Cursor struct {
	Time time.Time
	ID   string
}

// Encode gives the opaque form handed to clients.
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.Time.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

// DecodeCursor parses Encode's output.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 128 {
		return Cursor{}, badRequest("cursor: malformed")
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return Cursor{}, badRequest("cursor: malformed")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !isUUID(id) {
		return Cursor{}, badRequest("cursor: malformed")
	}
	return Cursor{Time: t, ID: id}, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

const alertCols = `alert_id::text, event_time, received_at, host_name, event_name,
	tripwire_type, rule_name, severity, seq, summary`

// detailCol is the event's detail as stored JSON text: a chained event's
// payload is stored once, in its audit entry, and read from there
// (migration 0018).
const detailCol = `alert_payload(host_id, seq, alert_id, event_detail)`

// queryAlerts runs q, which selects alertCols (and detailCol when
// withDetail), and reads every row.
func (s *Store) queryAlerts(ctx context.Context, withDetail bool, q string, args ...any) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := scanAlert(r, &a, withDetail)
		return a, err
	})
}

func scanAlert(row pgx.Row, a *Alert, withDetail bool) error {
	dst := []any{&a.AlertID, &a.EventTime, &a.ReceivedAt, &a.HostName, &a.EventName,
		&a.Type, &a.Rule, &a.Severity, &a.Seq, &a.Summary}
	if withDetail {
		dst = append(dst, &a.Detail)
	}
	return row.Scan(dst...)
}

// AlertPage is one page of alerts, newest first. Next is empty on the last page.
type AlertPage struct {
	Alerts []Alert `json:"alerts"`
	Next   string  `json:"next_cursor,omitempty"`
}

// ListAlerts returns up to limit alerts matching f, newest first, starting
// after cursor (keyset pagination on (event_time, alert_id), so pages stay
// stable while new alerts arrive). withDetail adds each event_detail.
func (s *Store) ListAlerts(ctx context.Context, f *Filter, limit int, cursor *Cursor, withDetail bool) (*AlertPage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if limit < 1 || limit > MaxLimit {
		return nil, badRequest("limit: must be 1..%d", MaxLimit)
	}
	// The range's start is a condition of its own, its value set for each
	// window below.
	structured := *f
	structured.Text = ""
	structured.From = time.Time{}
	w, hosts, err := s.alertWhere(ctx, &structured, true)
	if err != nil {
		return nil, err
	}
	if cursor != nil {
		w.add("(event_time, alert_id) < (?, ?::uuid)", cursor.Time, cursor.ID)
	}
	since := len(w.args)
	w.add("event_time >= ?", nil)
	cols := alertCols
	if withDetail {
		cols += ", " + detailCol
	}
	// By the uuid column, as the indexes and the cursor have it: the
	// output column alert_id is its text.
	const order = " ORDER BY event_time DESC, alerts.alert_id DESC LIMIT "
	var newest string
	if f.Text != "" {
		text := textMatch(w, f.Text)
		if len(hosts) == 0 {
			// Free text, first among the newest rows of the range, read
			// in time order: when q is common that fills the page at
			// once, where the indexes would list and sort every match
			// of the range (80 ms when q was in each of a day's 55,000).
			newest = "SELECT " + cols + " FROM (SELECT * FROM alerts" + w.sql() + order + strconv.Itoa(newestFirst) +
				") alerts WHERE " + text + order
		}
		w.conds = append(w.conds, text)
	}
	lim := w.param(limit + 1)
	q := "SELECT " + cols + " FROM alerts" + w.sql() + order + lim
	if len(hosts) > 0 {
		// One ordered, limited index scan per host, merged: much cheaper than
		// reading every row of every host and sorting (see inSet).
		branches := make([]string, len(hosts))
		for i, id := range hosts {
			hw := &where{conds: append(slices.Clone(w.conds), "host_id = "+w.param(id)+"::uuid")}
			branches[i] = "(SELECT * FROM alerts" + hw.sql() + order + lim + ")"
		}
		q = "SELECT " + cols + " FROM (" + strings.Join(branches, " UNION ALL ") + ") alerts" + order + lim
	}
	var alerts []Alert
	for i, from := range rangeWindows(f, cursor) {
		w.args[since] = from
		if i == 0 && newest != "" {
			// The same conditions and arguments as q, in another shape.
			if alerts, err = s.queryAlerts(ctx, withDetail, newest+lim, w.args...); err != nil {
				return nil, fmt.Errorf("listing alerts: %w", err)
			}
			if len(alerts) > limit {
				break
			}
		}
		// Not a full page among the newest rows: the indexes find the
		// rest of the window.
		if alerts, err = s.queryAlerts(ctx, withDetail, q, w.args...); err != nil {
			return nil, fmt.Errorf("listing alerts: %w", err)
		}
		if len(alerts) > limit {
			break
		}
	}
	page := &AlertPage{Alerts: alerts}
	if len(page.Alerts) > limit {
		page.Alerts = page.Alerts[:limit]
		last := page.Alerts[limit-1]
		page.Next = Cursor{Time: last.EventTime, ID: last.AlertID}.Encode()
	}
	if err := s.attachTriage(ctx, page.Alerts); err != nil {
		return nil, err
	}
	return page, nil
}

// rangeWindows are the starts ListAlerts tries for f's range, read back from
// its newest end (the cursor's time, to, or now): each of windows that
// starts after the range does, then the range's start (-infinity without
// one).
func rangeWindows(f *Filter, cursor *Cursor) []any {
	end := time.Now()
	if !f.To.IsZero() && f.To.Before(end) {
		end = f.To
	}
	if cursor != nil && cursor.Time.Before(end) {
		end = cursor.Time
	}
	var starts []any
	for _, back := range windows {
		if from := end.Add(-back); from.After(f.From) {
			starts = append(starts, from)
		}
	}
	if f.From.IsZero() {
		return append(starts, pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true})
	}
	return append(starts, f.From)
}

// GetAlert returns one alert with its event detail. An alert id is unique
// per host only (another host may send the same one), so host picks the
// row; without it, an id two hosts share is ErrAmbiguous rather than
// whichever row PostgreSQL returns first.
func (s *Store) GetAlert(ctx context.Context, id, host string) (*Alert, error) {
	if !isUUID(id) {
		return nil, badRequest("alert id: not a UUID")
	}
	if err := checkText("host", host, maxFilterLen); err != nil {
		return nil, err
	}
	found, err := s.queryAlerts(ctx, true, "SELECT "+alertCols+", "+detailCol+" FROM alerts WHERE alert_id = $1::uuid AND ($2 = '' OR host_name = $2) LIMIT 2", id, host)
	if err != nil {
		return nil, fmt.Errorf("reading alert: %w", err)
	}
	switch len(found) {
	case 0:
		return nil, ErrNotFound
	case 1:
		if err := s.attachTriage(ctx, found); err != nil {
			return nil, err
		}
		return &found[0], nil
	}
	return nil, fmt.Errorf("%w: alert id %s is used by several hosts; name one with host=", ErrAmbiguous, id)
}

// RecentAlerts returns the newest alerts received after since (for stream
// backfill after a lost LISTEN connection), oldest first. Events whose agent
// clock is more than an hour behind are not backfilled: the bound keeps the
// query on the time index.
func (s *Store) RecentAlerts(ctx context.Context, since time.Time, limit int) ([]Alert, error) {
	out, err := s.queryAlerts(ctx, false, `SELECT * FROM (SELECT `+alertCols+` FROM alerts
WHERE received_at > $1 AND event_time > $1 - interval '1 hour'
ORDER BY received_at DESC LIMIT $2) r ORDER BY received_at`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("reading recent alerts: %w", err)
	}
	return out, nil
}

// Reread returns the stored rows of the alerts a live-feed notification
// names, by (alert_id, host_name, event_time), in the notification's order;
// alerts with no such row are left out. A notification is a hint: anyone
// able to connect can send one, so only the table is believed.
func (s *Store) Reread(ctx context.Context, notified []Alert) ([]Alert, error) {
	if len(notified) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(notified))
	hosts := make([]string, 0, len(notified))
	times := make([]time.Time, 0, len(notified))
	for _, a := range notified {
		if !isUUID(a.AlertID) {
			continue
		}
		ids, hosts, times = append(ids, a.AlertID), append(hosts, a.HostName), append(times, a.EventTime)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts a
JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS q(id, h, t, n)
  ON a.alert_id = q.id AND a.host_name = q.h AND a.event_time = q.t
ORDER BY q.n`, ids, hosts, times)
	if err != nil {
		return nil, fmt.Errorf("re-reading notified alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := scanAlert(r, &a, false)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("re-reading notified alerts: %w", err)
	}
	return out, nil
}
