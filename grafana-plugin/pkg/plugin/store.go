package plugin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store answers every read the plugin makes from the collector's PostgreSQL
// schema (migrations/0001_schema.sql). All SQL is constant text with values
// passed as parameters; filters only choose among fixed fragments.
type Store struct {
	pool         *pgxpool.Pool
	offlineAfter time.Duration
}

// NewStore wraps a pool. offlineAfter is the silence after which a host is
// reported OFFLINE regardless of its stored status.
func NewStore(pool *pgxpool.Pool, offlineAfter time.Duration) *Store {
	return &Store{pool: pool, offlineAfter: offlineAfter}
}

// Page-size bounds for every list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	maxFilterLen = 256
	maxFilterSet = 50
	maxTextLen   = 200
)

// Types and Severities are the only values those filters accept.
var (
	Types      = []string{"file", "process", "network", "agent", "audit"}
	Severities = []string{"INFO", "WARN", "CRITICAL"}
)

// ErrBadRequest marks errors caused by the caller's parameters.
var ErrBadRequest = errors.New("bad request")

// ErrNotFound is returned for an unknown id or host.
var ErrNotFound = errors.New("not found")

func badRequest(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
}

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
}

// Filter selects alerts. Empty sets and zero times mean "any".
type Filter struct {
	Hosts      []string
	Types      []string
	Severities []string
	Rules      []string
	Text       string
	From, To   time.Time // From inclusive, To exclusive
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
		{"severity", f.Severities, Severities}, {"rule", f.Rules, nil},
	} {
		if len(set.vals) > maxFilterSet {
			return badRequest("%s: at most %d values", set.name, maxFilterSet)
		}
		for _, v := range set.vals {
			if err := checkText(set.name, v, maxFilterLen); err != nil {
				return err
			}
			if set.enum != nil && !contains(set.enum, v) {
				return badRequest("%s: unknown value %q (want one of %s)", set.name, v, strings.Join(set.enum, ", "))
			}
		}
	}
	if err := checkText("q", f.Text, maxTextLen); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return badRequest("from must be before to")
	}
	return nil
}

// checkText refuses what PostgreSQL text cannot hold (NUL, invalid UTF-8) and
// oversize values, so they fail as 400 rather than as a database error.
func checkText(name, v string, max int) error {
	if len(v) > max {
		return badRequest("%s: longer than %d bytes", name, max)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return badRequest("%s: not valid UTF-8 text", name)
	}
	return nil
}

func contains(set []string, v string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

// where accumulates SQL conditions; each value becomes a $n parameter.
type where struct {
	conds []string
	args  []any
}

// add appends cond with its "?" placeholders replaced by $n for vals, in order.
func (w *where) add(cond string, vals ...any) {
	var b strings.Builder
	for _, v := range vals {
		i := strings.IndexByte(cond, '?')
		w.args = append(w.args, v)
		b.WriteString(cond[:i])
		b.WriteString("$" + strconv.Itoa(len(w.args)))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	w.conds = append(w.conds, b.String())
}

// inSet adds "col = value" for one value and "col = ANY(values)" for
// several. The distinction matters for speed: PostgreSQL 15 walks a
// (col, event_time) index in time order only for an equality, so one value
// reads just the newest page of rows while ANY reads and sorts them all.
func (w *where) inSet(col, cast string, vals []string) {
	switch len(vals) {
	case 0:
	case 1:
		w.add(col+" = ?"+cast, vals[0])
	default:
		arrayCast := ""
		if cast != "" {
			arrayCast = cast + "[]"
		}
		w.add(col+" = ANY(?"+arrayCast+")", vals)
	}
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// param adds a value and returns its placeholder, for use outside WHERE.
func (w *where) param(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// likeEscape makes s a literal ILIKE substring pattern.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
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
	if f.Text != "" {
		p := likeEscape(f.Text)
		w.add("(summary ILIKE ? OR rule_name ILIKE ? OR event_detail::text ILIKE ?)", p, p, p)
	}
	return w, hosts, nil
}

func (s *Store) hostIDs(ctx context.Context, names []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT host_id::text FROM hosts WHERE host_name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("resolving hosts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("resolving hosts: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

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
	w, hosts, err := s.alertWhere(ctx, f, true)
	if err != nil {
		return nil, err
	}
	if cursor != nil {
		w.add("(event_time, alert_id) < (?, ?::uuid)", cursor.Time, cursor.ID)
	}
	cols := alertCols
	if withDetail {
		cols += ", event_detail"
	}
	const order = " ORDER BY event_time DESC, alert_id DESC LIMIT "
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
		q = "SELECT " + cols + " FROM (" + strings.Join(branches, " UNION ALL ") + ") a" + order + lim
	}
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	defer rows.Close()
	page := &AlertPage{Alerts: make([]Alert, 0, min(limit, 128))}
	for rows.Next() {
		var a Alert
		if err := scanAlert(rows, &a, withDetail); err != nil {
			return nil, fmt.Errorf("listing alerts: %w", err)
		}
		page.Alerts = append(page.Alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	if len(page.Alerts) > limit {
		page.Alerts = page.Alerts[:limit]
		last := page.Alerts[limit-1]
		page.Next = Cursor{Time: last.EventTime, ID: last.AlertID}.Encode()
	}
	return page, nil
}

// GetAlert returns one alert with its event detail.
func (s *Store) GetAlert(ctx context.Context, id string) (*Alert, error) {
	if !isUUID(id) {
		return nil, badRequest("alert id: not a UUID")
	}
	var a Alert
	err := scanAlert(s.pool.QueryRow(ctx,
		"SELECT "+alertCols+", event_detail FROM alerts WHERE alert_id = $1::uuid LIMIT 1", id), &a, true)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading alert: %w", err)
	}
	return &a, nil
}

// Host is one monitored host with its derived status.
type Host struct {
	HostName      string     `json:"host_name"`
	HostExtID     *string    `json:"host_id,omitempty"`
	IPAddress     *string    `json:"ip_address,omitempty"`
	Platform      *string    `json:"platform,omitempty"`
	Arch          *string    `json:"arch,omitempty"`
	AgentVersion  *string    `json:"agent_version,omitempty"`
	Watchers      *string    `json:"watchers,omitempty"`
	UnservedRules *string    `json:"unserved_rules,omitempty"`
	CertNotAfter  *time.Time `json:"cert_not_after,omitempty"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	LastAlertAt   *time.Time `json:"last_alert_at,omitempty"`
	Status        string     `json:"status"`
	ChainSeq      *int64     `json:"chain_head_seq,omitempty"`
	Alerts24h     int64      `json:"alerts_24h"`
}

// Hosts lists every host, name order. The status is derived at query time:
// a host silent for longer than offlineAfter is OFFLINE whatever its row says,
// because a dead agent cannot update its own row.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.pool.Query(ctx, `
SELECT h.host_name, h.host_ext_id, host(h.ip_address), h.platform, h.arch, h.agent_version,
       h.watchers, h.unserved_rules, h.cert_not_after, h.first_seen, h.last_seen, h.last_alert_at,
       CASE WHEN h.last_seen < now() - make_interval(secs => $1) THEN 'OFFLINE' ELSE h.status END,
       c.seq,
       (SELECT count(*) FROM alerts a WHERE a.host_id = h.host_id AND a.event_time >= now() - interval '24 hours')
FROM hosts h LEFT JOIN chain_heads c ON c.host_id = h.host_id
ORDER BY h.host_name
LIMIT 10000`, s.offlineAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Host, error) {
		var h Host
		err := r.Scan(&h.HostName, &h.HostExtID, &h.IPAddress, &h.Platform, &h.Arch, &h.AgentVersion,
			&h.Watchers, &h.UnservedRules, &h.CertNotAfter, &h.FirstSeen, &h.LastSeen, &h.LastAlertAt,
			&h.Status, &h.ChainSeq, &h.Alerts24h)
		return h, err
	})
}

// AuditEntry is one received link of a host's audit chain.
type AuditEntry struct {
	Seq        int64           `json:"seq"`
	AlertID    string          `json:"alert_id"`
	EventTime  time.Time       `json:"event_time"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
	Payload    json.RawMessage `json:"payload"`
	ReceivedAt time.Time       `json:"received_at"`
}

// AuditPage is a page of a host's audit entries, highest seq first.
type AuditPage struct {
	Host    string       `json:"host"`
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next_cursor,omitempty"`
}

func (s *Store) hostID(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", badRequest("host: required")
	}
	if err := checkText("host", name, maxFilterLen); err != nil {
		return "", err
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT host_id::text FROM hosts WHERE host_name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolving host: %w", err)
	}
	return id, nil
}

// AuditEntries lists a host's chain entries in [from, to), highest seq first,
// before the seq in cursor (0 = from the top).
func (s *Store) AuditEntries(ctx context.Context, host string, from, to time.Time, limit int, beforeSeq int64) (*AuditPage, error) {
	if limit < 1 || limit > MaxLimit {
		return nil, badRequest("limit: must be 1..%d", MaxLimit)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, badRequest("from must be before to")
	}
	id, err := s.hostID(ctx, host)
	if err != nil {
		return nil, err
	}
	w := &where{}
	w.add("host_id = ?::uuid", id)
	if !from.IsZero() {
		w.add("event_time >= ?", from)
	}
	if !to.IsZero() {
		w.add("event_time < ?", to)
	}
	if beforeSeq > 0 {
		w.add("seq < ?", beforeSeq)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, alert_id::text, event_time, prev_hash, hash, payload, received_at
FROM audit_entries`+w.sql()+` ORDER BY seq DESC LIMIT `+w.param(limit+1), w.args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.Seq, &e.AlertID, &e.EventTime, &e.PrevHash, &e.Hash, &e.Payload, &e.ReceivedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	page := &AuditPage{Host: host, Entries: entries}
	if page.Entries == nil {
		page.Entries = []AuditEntry{}
	}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = strconv.FormatInt(page.Entries[limit-1].Seq, 10)
	}
	return page, nil
}

// ChainBreak is a break, either found now by recomputation or recorded by
// the collector in chain_breaks.
type ChainBreak struct {
	Kind         string     `json:"kind"` // gap, link, mismatch, payload, head, or the collector's kind
	Seq          int64      `json:"seq,omitempty"`
	ExpectedSeq  *int64     `json:"expected_seq,omitempty"`
	GotSeq       *int64     `json:"got_seq,omitempty"`
	ExpectedHash *string    `json:"expected_hash,omitempty"`
	GotHash      *string    `json:"got_hash,omitempty"`
	Detail       string     `json:"detail,omitempty"`
	DetectedAt   *time.Time `json:"detected_at,omitempty"`
	AlertID      *string    `json:"alert_id,omitempty"`
}

// ChainStatus is the result of re-verifying a host's chain from audit_entries.
type ChainStatus struct {
	Host string `json:"host"`
	// Intact is true when recomputation found no break and the collector
	// recorded none.
	Intact  bool  `json:"intact"`
	Entries int64 `json:"entries"`
	// FirstSeq is the lowest stored seq; VerifiedUpTo the highest seq up to
	// which every link from FirstSeq recomputes (0 when even the first fails).
	FirstSeq     int64        `json:"first_seq"`
	VerifiedUpTo int64        `json:"verified_up_to_seq"`
	HeadSeq      *int64       `json:"head_seq,omitempty"`
	HeadHash     *string      `json:"head_hash,omitempty"`
	Breaks       []ChainBreak `json:"breaks"`
	Truncated    bool         `json:"breaks_truncated,omitempty"`
	Recorded     []ChainBreak `json:"recorded_breaks"`
}

const maxReportedBreaks = 100

// VerifyChain recomputes every hash of a host's stored chain: hash =
// SHA-256(prev_hash ‖ canonical(payload)), each prev_hash equal to the hash
// before it, seqs without gaps, genesis at seq 1, and the last entry equal to
// the collector's chain head. Rows are streamed, so memory does not grow with
// the chain.
func (s *Store) VerifyChain(ctx context.Context, host string) (*ChainStatus, error) {
	id, err := s.hostID(ctx, host)
	if err != nil {
		return nil, err
	}
	st := &ChainStatus{Host: host, Breaks: []ChainBreak{}, Recorded: []ChainBreak{}}
	addBreak := func(b ChainBreak) {
		if len(st.Breaks) < maxReportedBreaks {
			st.Breaks = append(st.Breaks, b)
		} else {
			st.Truncated = true
		}
	}
	rows, err := s.pool.Query(ctx,
		`SELECT seq, prev_hash, hash, payload::text FROM audit_entries WHERE host_id = $1::uuid ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("reading audit entries: %w", err)
	}
	var (
		seq            int64
		prevHash, hash string
		payload        []byte
		lastSeq        int64
		lastHash       string
		broken         bool
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &prevHash, &hash, &payload}, func() error {
		st.Entries++
		ok := true
		switch {
		case st.Entries == 1:
			st.FirstSeq = seq
			// A chain stored from seq 1 must start at genesis; one stored
			// from later (the collector joined mid-chain) is anchored on its
			// first prev_hash.
			if seq == 1 && prevHash != genesisHash {
				ok = false
				addBreak(ChainBreak{Kind: "link", Seq: seq, ExpectedHash: ptr(genesisHash), GotHash: ptr(prevHash),
					Detail: "first entry does not start at genesis"})
			}
		case seq != lastSeq+1:
			ok = false
			addBreak(ChainBreak{Kind: "gap", Seq: seq, ExpectedSeq: ptr(lastSeq + 1), GotSeq: ptr(seq),
				Detail: fmt.Sprintf("%d entries missing", seq-lastSeq-1)})
		case prevHash != lastHash:
			ok = false
			addBreak(ChainBreak{Kind: "link", Seq: seq, ExpectedHash: ptr(lastHash), GotHash: ptr(prevHash),
				Detail: "prev_hash does not match the previous entry's hash"})
		}
		canon, err := canonicalFromJSON(payload)
		if err != nil {
			ok = false
			addBreak(ChainBreak{Kind: "payload", Seq: seq, Detail: err.Error()})
		} else if got := chainHash(prevHash, canon); got != hash {
			ok = false
			addBreak(ChainBreak{Kind: "mismatch", Seq: seq, ExpectedHash: ptr(got), GotHash: ptr(hash),
				Detail: "stored hash does not match the recomputed hash"})
		}
		if !ok {
			broken = true
		}
		if !broken {
			st.VerifiedUpTo = seq
		}
		lastSeq, lastHash = seq, hash
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verifying chain: %w", err)
	}

	var headSeq int64
	var headHash string
	err = s.pool.QueryRow(ctx, `SELECT seq, hash FROM chain_heads WHERE host_id = $1::uuid`, id).Scan(&headSeq, &headHash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("reading chain head: %w", err)
	default:
		st.HeadSeq, st.HeadHash = &headSeq, &headHash
		if st.Entries > 0 && (headSeq != lastSeq || headHash != lastHash) {
			broken = true
			addBreak(ChainBreak{Kind: "head", Seq: headSeq, ExpectedSeq: ptr(headSeq), GotSeq: ptr(lastSeq),
				ExpectedHash: ptr(headHash), GotHash: ptr(lastHash),
				Detail: "the stored entries do not end at the collector's chain head"})
		}
	}

	rows, err = s.pool.Query(ctx, `SELECT kind, expected_seq, got_seq, expected_hash, got_hash, detected_at, alert_id::text
FROM chain_breaks WHERE host_id = $1::uuid ORDER BY detected_at DESC, break_id DESC LIMIT 100`, id)
	if err != nil {
		return nil, fmt.Errorf("reading chain breaks: %w", err)
	}
	st.Recorded, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainBreak, error) {
		var b ChainBreak
		err := r.Scan(&b.Kind, &b.ExpectedSeq, &b.GotSeq, &b.ExpectedHash, &b.GotHash, &b.DetectedAt, &b.AlertID)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading chain breaks: %w", err)
	}
	if st.Recorded == nil {
		st.Recorded = []ChainBreak{}
	}
	// accounted_gap is the agent's own report of shed events, not tampering.
	recordedTampering := false
	for _, b := range st.Recorded {
		if b.Kind != "accounted_gap" {
			recordedTampering = true
		}
	}
	st.Intact = !broken && !recordedTampering
	return st, nil
}

func ptr[T any](v T) *T { return &v }

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
	rows, err := s.pool.Query(ctx, `SELECT CASE WHEN last_seen < now() - make_interval(secs => $1) THEN 'OFFLINE' ELSE status END, count(*)
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

// Ping checks that PostgreSQL answers and the TripWire schema is there.
func (s *Store) Ping(ctx context.Context) (hosts int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM hosts`).Scan(&hosts)
	return hosts, err
}

// RecentAlerts returns the newest alerts received after since (for stream
// backfill after a lost LISTEN connection), oldest first. Events whose agent
// clock is more than an hour behind are not backfilled: the bound keeps the
// query on the time index.
func (s *Store) RecentAlerts(ctx context.Context, since time.Time, limit int) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM (SELECT `+alertCols+` FROM alerts
WHERE received_at > $1 AND event_time > $1 - interval '1 hour'
ORDER BY received_at DESC LIMIT $2) r ORDER BY received_at`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("reading recent alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		if err := scanAlert(rows, &a, false); err != nil {
			return nil, fmt.Errorf("reading recent alerts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
