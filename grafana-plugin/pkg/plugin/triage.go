package plugin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tripwire-sec/tripwire/contract"
)

// Triage states (migrations/0015_triage.sql). An alert nobody triaged is
// OPEN; only OPEN alerts count for the provisioned CRITICAL alert rule.
const (
	TriageOpen         = "OPEN"
	TriageAcknowledged = "ACKNOWLEDGED"
)

// TriageStates are the only values the state filter and a change accept.
var TriageStates = []string{TriageOpen, TriageAcknowledged}

// maxNoteLen bounds a note, as the table's CHECK does.
const maxNoteLen = 4000

// Triage is an alert's current triage state.
type Triage struct {
	State     string     `json:"state"`
	Assignee  *string    `json:"assignee,omitempty"`   // a Grafana login
	UpdatedAt *time.Time `json:"updated_at,omitempty"` // unset while never triaged
	UpdatedBy *string    `json:"updated_by,omitempty"`
}

// TriageEntry is one recorded change: a state change, an assignment or a
// note, by the Grafana user who made it.
type TriageEntry struct {
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`             // state, assign or note
	State    *string   `json:"state,omitempty"`    // state: the new state
	Assignee *string   `json:"assignee,omitempty"` // assign: the new assignee, absent when unassigned
	Note     *string   `json:"note,omitempty"`
}

// AlertTriage is an alert's triage with its history, oldest first.
type AlertTriage struct {
	AlertID   string    `json:"alert_id"`
	HostName  string    `json:"host_name"`
	EventTime time.Time `json:"event_time"`
	Triage
	History []TriageEntry `json:"history"`
}

// TriageChange is the body of POST alerts/{id}/triage. Absent fields change
// nothing; an empty assignee unassigns.
type TriageChange struct {
	State    *string `json:"state"`
	Assignee *string `json:"assignee"`
	Note     *string `json:"note"`
}

func (c *TriageChange) validate() error {
	if c.State == nil && c.Assignee == nil && c.Note == nil {
		return badRequest("nothing to change: give state, assignee or note")
	}
	if c.State != nil && !slices.Contains(TriageStates, *c.State) {
		return badRequest("state: unknown value %q (want one of %s)", *c.State, strings.Join(TriageStates, ", "))
	}
	if c.Assignee != nil {
		*c.Assignee = strings.TrimSpace(*c.Assignee)
		if err := checkText("assignee", *c.Assignee, maxFilterLen); err != nil {
			return err
		}
	}
	if c.Note != nil {
		if strings.TrimSpace(*c.Note) == "" {
			return badRequest("note: empty")
		}
		if err := checkText("note", *c.Note, maxNoteLen); err != nil {
			return err
		}
	}
	return nil
}

// registerTriageRoutes adds the triage routes to registerRoutes' mux.
func (d *Datasource) registerTriageRoutes(mux *http.ServeMux) {
	// GET /api/v1/alerts/{id}/triage?host=
	mux.HandleFunc("GET /api/v1/alerts/{id}/triage", d.read(d.handleTriage))
	// POST /api/v1/alerts/{id}/triage?host= (Editor): {"state","assignee","note"}
	mux.HandleFunc("POST /api/v1/alerts/{id}/triage", d.read(d.handleTriageChange))
	// POST /api/v1/alerts/triage (Editor): {"alerts":[{"alert_id","host_name"}],"state","assignee","note"}
	mux.HandleFunc("POST /api/v1/alerts/triage", d.read(d.handleTriageBulk))
}

// maxBulk bounds one bulk change: a page of the Alerts page is 200.
const maxBulk = 500

// AlertRef names one alert: its id and its host (ids are unique per host),
// and, optionally, its event_time as listed: with it the alert is looked up
// in its day's partition only, without it in every day's (migration 0022).
type AlertRef struct {
	AlertID   string     `json:"alert_id"`
	HostName  string     `json:"host_name"`
	EventTime *time.Time `json:"event_time,omitempty"`
}

// BulkTriageChange is the body of POST alerts/triage: one change for many
// alerts.
type BulkTriageChange struct {
	Alerts []AlertRef `json:"alerts"`
	TriageChange
}

// BulkTriageResult says which alerts were changed; Missing are those no
// stored alert matched (retention may have removed them).
type BulkTriageResult struct {
	Applied int        `json:"applied"`
	Missing []AlertRef `json:"missing"`
}

func (d *Datasource) handleTriage(r *http.Request) (any, error) {
	p := newParams(r, "host")
	host := p.one("host")
	if p.err != nil {
		return nil, p.err
	}
	return d.store.AlertTriage(r.Context(), r.PathValue("id"), host)
}

// handleTriageChange acknowledges, reopens, assigns or annotates an alert,
// as the Grafana user of the request.
func (d *Datasource) handleTriageChange(r *http.Request) (any, error) {
	login, err := triageActor(r)
	if err != nil {
		return nil, err
	}
	p := newParams(r, "host")
	host := p.one("host")
	if p.err != nil {
		return nil, p.err
	}
	var c TriageChange
	if err := decodeBody(r, &c, 2*maxNoteLen+1024, "a JSON object with state, assignee or note"); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if err := d.store.ChangeTriage(r.Context(), id, host, login, &c); err != nil {
		return nil, err
	}
	log.DefaultLogger.Info("alert triaged", "alert_id", id, contract.ResourceHostName, host, "user.name", login)
	return d.store.AlertTriage(r.Context(), id, host)
}

// handleTriageBulk applies one change to up to maxBulk alerts, each named
// with its host, in one transaction, as the Grafana user of the request.
func (d *Datasource) handleTriageBulk(r *http.Request) (any, error) {
	login, err := triageActor(r)
	if err != nil {
		return nil, err
	}
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	var c BulkTriageChange
	if err := decodeBody(r, &c, 2*maxNoteLen+maxBulk*(36+maxFilterLen+90)+1024, "a JSON object with alerts and state, assignee or note"); err != nil {
		return nil, err
	}
	if len(c.Alerts) == 0 || len(c.Alerts) > maxBulk {
		return nil, badRequest("alerts: give 1..%d alerts", maxBulk)
	}
	for i, a := range c.Alerts {
		if !isUUID(a.AlertID) {
			return nil, badRequest("alerts[%d].alert_id: not a UUID", i)
		}
		if a.HostName == "" {
			return nil, badRequest("alerts[%d].host_name: required", i)
		}
		if err := checkText(fmt.Sprintf("alerts[%d].host_name", i), a.HostName, maxFilterLen); err != nil {
			return nil, err
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	res, err := d.store.ChangeTriageBulk(r.Context(), c.Alerts, login, &c.TriageChange)
	if err != nil {
		return nil, err
	}
	log.DefaultLogger.Info("alerts triaged", "alerts", res.Applied, "user.name", login)
	return res, nil
}

// triageActor is the login to attribute a triage change to. Triage is a
// SOC analyst's work, so it asks for the Editor role (or Admin); a Viewer
// reads it only.
func triageActor(r *http.Request) (string, error) {
	u, err := editor(r, "changing triage state")
	if err != nil {
		return "", err
	}
	return u.Login, nil
}

// ChangeTriage applies c to the alert id (on host, or the one host that has
// it) through tripwire_triage, the one function the plugin's read-only role
// may call for it, attributed to actor.
func (s *Store) ChangeTriage(ctx context.Context, id, host, actor string, c *TriageChange) error {
	if !isUUID(id) {
		return badRequest("alert id: not a UUID")
	}
	if err := checkText("host", host, maxFilterLen); err != nil {
		return err
	}
	var assignee *string
	if c.Assignee != nil && *c.Assignee != "" {
		assignee = c.Assignee
	}
	var matched int
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT tripwire_triage($1::uuid, $2, $3, $4, $5, $6, $7)`,
			id, host, actor, c.State, c.Assignee != nil, assignee, c.Note).Scan(&matched)
	})
	if err != nil {
		return fmt.Errorf("changing triage: %w", err)
	}
	switch matched {
	case 0:
		return ErrNotFound
	case 1:
		return nil
	}
	return fmt.Errorf("%w: alert id %s is used by several hosts; name one with host=", ErrAmbiguous, id)
}

// ChangeTriageBulk applies c to each alert in one transaction, attributed to
// actor, and says which alerts no stored alert matched.
func (s *Store) ChangeTriageBulk(ctx context.Context, alerts []AlertRef, actor string, c *TriageChange) (*BulkTriageResult, error) {
	ids := make([]string, len(alerts))
	hosts := make([]string, len(alerts))
	times := make([]pgtype.Timestamptz, len(alerts))
	for i, a := range alerts {
		ids[i], hosts[i] = a.AlertID, a.HostName
		if a.EventTime != nil {
			times[i] = pgtype.Timestamptz{Time: *a.EventTime, Valid: true}
		}
	}
	var assignee *string
	if c.Assignee != nil && *c.Assignee != "" {
		assignee = c.Assignee
	}
	res := &BulkTriageResult{Missing: []AlertRef{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		res.Applied, res.Missing = 0, res.Missing[:0]
		rows, err := tx.Query(ctx, `SELECT q.n, tripwire_triage(q.id, q.h, $3, $4, $5, $6, $7, q.tm)
FROM unnest($1::uuid[], $2::text[], $8::timestamptz[]) WITH ORDINALITY AS q(id, h, tm, n) ORDER BY q.n`,
			ids, hosts, actor, c.State, c.Assignee != nil, assignee, c.Note, times)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n, matched int
			if err := rows.Scan(&n, &matched); err != nil {
				return err
			}
			// With a host named, an id matches one alert or none.
			if matched == 1 {
				res.Applied++
			} else {
				res.Missing = append(res.Missing, alerts[n-1])
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("changing triage: %w", err)
	}
	return res, nil
}

// AlertTriage returns the triage and history of the alert id (on host, or
// the one host that has it).
func (s *Store) AlertTriage(ctx context.Context, id, host string) (*AlertTriage, error) {
	if !isUUID(id) {
		return nil, badRequest("alert id: not a UUID")
	}
	if err := checkText("host", host, maxFilterLen); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT a.alert_id::text, a.host_name, a.event_time, coalesce(t.state, '`+TriageOpen+`'),
       t.assignee, t.updated_at, t.updated_by
FROM (SELECT alert_id, host_id, host_name, event_time FROM alerts
      WHERE alert_id = $1::uuid AND ($2 = '' OR host_name = $2) LIMIT 2) a
LEFT JOIN alert_triage t ON t.alert_id = a.alert_id AND t.host_id = a.host_id AND t.event_time = a.event_time`, id, host)
	if err != nil {
		return nil, fmt.Errorf("reading triage: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AlertTriage, error) {
		var a AlertTriage
		err := r.Scan(&a.AlertID, &a.HostName, &a.EventTime, &a.State, &a.Assignee, &a.UpdatedAt, &a.UpdatedBy)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading triage: %w", err)
	}
	switch len(found) {
	case 0:
		return nil, ErrNotFound
	case 1:
	default:
		return nil, fmt.Errorf("%w: alert id %s is used by several hosts; name one with host=", ErrAmbiguous, id)
	}
	a := &found[0]
	rows, err = s.pool.Query(ctx, `SELECT e.at, e.actor, e.action, e.state, e.assignee, e.note
FROM alert_triage_history e JOIN hosts h ON h.host_id = e.host_id
WHERE e.alert_id = $1::uuid AND h.host_name = $2 AND e.event_time = $3
ORDER BY e.entry_id LIMIT 1000`, a.AlertID, a.HostName, a.EventTime)
	if err != nil {
		return nil, fmt.Errorf("reading triage history: %w", err)
	}
	a.History, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TriageEntry, error) {
		var e TriageEntry
		err := r.Scan(&e.At, &e.Actor, &e.Action, &e.State, &e.Assignee, &e.Note)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading triage history: %w", err)
	}
	if a.History == nil {
		a.History = []TriageEntry{}
	}
	return a, nil
}

// attachTriage sets each alert's Triage, OPEN where nobody triaged it: one
// lookup for the page, by the alerts' keys.
func (s *Store) attachTriage(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	ids := make([]string, len(alerts))
	hosts := make([]string, len(alerts))
	times := make([]time.Time, len(alerts))
	for i, a := range alerts {
		ids[i], hosts[i], times[i] = a.AlertID, a.HostName, a.EventTime
	}
	rows, err := s.pool.Query(ctx, `SELECT q.n, t.state, t.assignee, t.updated_at, t.updated_by
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS q(id, h, tm, n)
JOIN hosts h ON h.host_name = q.h
JOIN alert_triage t ON t.alert_id = q.id AND t.host_id = h.host_id AND t.event_time = q.tm`, ids, hosts, times)
	if err != nil {
		return fmt.Errorf("reading triage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var t Triage
		if err := rows.Scan(&n, &t.State, &t.Assignee, &t.UpdatedAt, &t.UpdatedBy); err != nil {
			return fmt.Errorf("reading triage: %w", err)
		}
		if n >= 1 && n <= len(alerts) {
			alerts[n-1].Triage = &t
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading triage: %w", err)
	}
	for i := range alerts {
		if alerts[i].Triage == nil {
			alerts[i].Triage = &Triage{State: TriageOpen}
		}
	}
	return nil
}

// triageWhere adds f's triage conditions to the alerts query. Triage rows
// are few (people write them): OPEN, the common filter, is an anti-join
// that keeps the time-ordered index scan; other states start from
// alert_triage. Column names are unqualified, as alertWhere's are, and
// refer to the alerts row of the enclosing query.
func triageWhere(w *where, f *Filter) {
	const key = "t.alert_id = alerts.alert_id AND t.host_id = alerts.host_id AND t.event_time = alerts.event_time"
	// PostgreSQL does not carry the alerts' time range across the join:
	// bound the triage rows read by it too.
	var inRange []any
	tr := ""
	if !f.From.IsZero() {
		tr += " AND t.event_time >= ?"
		inRange = append(inRange, f.From)
	}
	if !f.To.IsZero() {
		tr += " AND t.event_time < ?"
		inRange = append(inRange, f.To)
	}
	const fromTriage = "(alert_id, host_id, event_time) IN (SELECT t.alert_id, t.host_id, t.event_time FROM alert_triage t WHERE "
	if len(f.States) > 0 && len(f.States) < len(TriageStates) {
		if slices.Contains(f.States, TriageOpen) {
			w.add("NOT EXISTS (SELECT 1 FROM alert_triage t WHERE "+key+" AND t.state <> ALL(?))", f.States)
		} else {
			w.add(fromTriage+"t.state = ANY(?)"+tr+")", append([]any{f.States}, inRange...)...)
		}
	}
	if f.Assignee != "" {
		w.add(fromTriage+"t.assignee = ?"+tr+")", append([]any{f.Assignee}, inRange...)...)
	}
}

// liveTriageFilter refuses a streamed query whose triage filter the stream
// cannot honour: the stream carries new alerts, which are OPEN and
// unassigned, and triage changes are not streamed (the page filters them on
// load).
func liveTriageFilter(f *Filter) error {
	if f.Assignee != "" || (len(f.States) > 0 && !slices.Contains(f.States, TriageOpen)) {
		return badRequest("live: new alerts are %s and unassigned; a stream cannot filter on other triage states", TriageOpen)
	}
	return nil
}
