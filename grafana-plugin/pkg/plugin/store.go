package plugin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract"
)

// Store answers every read the plugin makes from the collector's PostgreSQL
// schema (migrations/0001_schema.sql). All SQL is constant text with values
// passed as parameters; filters only choose among fixed fragments.
type Store struct {
	pool         *pgxpool.Pool
	offlineAfter time.Duration

	verifyMu     sync.Mutex
	verified     map[string]verifiedPrefix // by host_id
	verifying    map[string]*sync.Mutex    // by host_id
	verifyMaxAge time.Duration
}

// NewStore wraps a pool. offlineAfter is the silence after which a host is
// reported OFFLINE regardless of its stored status.
func NewStore(pool *pgxpool.Pool, offlineAfter time.Duration) *Store {
	return &Store{pool: pool, offlineAfter: offlineAfter, verified: map[string]verifiedPrefix{},
		verifying: map[string]*sync.Mutex{}, verifyMaxAge: defaultVerifyMaxAge}
}

// Page-size bounds for every list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	maxFilterLen = 256
	maxFilterSet = 50
	maxTextLen   = 200
)

// Time ranges a Viewer may ask the work of: free-text search reads every
// row of its range, stats count every row of theirs.
const (
	MaxTextRange  = 31 * 24 * time.Hour
	MaxStatsRange = 92 * 24 * time.Hour
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

// ErrAmbiguous is returned when a request matches several things and must
// say which one it means.
var ErrAmbiguous = errors.New("ambiguous")

func badRequest(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
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

// where accumulates SQL conditions; each value becomes a $n parameter.
type where struct {
	conds []string
	args  []any
}

// add appends cond with its "?" placeholders replaced by $n for vals, in order.
func (w *where) add(cond string, vals ...any) {
	w.conds = append(w.conds, w.bind(cond, vals...))
}

// bind returns cond with its "?" placeholders replaced by $n for vals, in
// order, without adding it to the conditions.
func (w *where) bind(cond string, vals ...any) string {
	var b strings.Builder
	for _, v := range vals {
		i := strings.IndexByte(cond, '?')
		w.args = append(w.args, v)
		b.WriteString(cond[:i])
		b.WriteString("$" + strconv.Itoa(len(w.args)))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	return b.String()
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
	StatusReasons *string    `json:"status_reasons,omitempty"` // why DEGRADED, "; "-separated
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
// because a dead agent cannot update its own row. The start of the last 24
// hours is passed as a value, not now(), so that the planner keeps to
// those days' partitions.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.pool.Query(ctx, `
SELECT h.host_name, h.host_ext_id, host(h.ip_address), h.platform, h.arch, h.agent_version,
       h.watchers, h.unserved_rules, h.status_reasons, h.cert_not_after, h.first_seen, h.last_seen, h.last_alert_at,
       CASE WHEN h.status = '`+contract.StatusRetired+`' THEN h.status WHEN h.last_seen < now() - make_interval(secs => $1) THEN '`+contract.StatusOffline+`' ELSE h.status END,
       c.seq,
       (SELECT count(*) FROM alerts a WHERE a.host_id = h.host_id AND a.event_time >= $2)
FROM hosts h LEFT JOIN chain_heads c ON c.host_id = h.host_id
ORDER BY h.host_name
LIMIT 10000`, s.offlineAfter.Seconds(), time.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Host, error) {
		var h Host
		err := r.Scan(&h.HostName, &h.HostExtID, &h.IPAddress, &h.Platform, &h.Arch, &h.AgentVersion,
			&h.Watchers, &h.UnservedRules, &h.StatusReasons, &h.CertNotAfter, &h.FirstSeen, &h.LastSeen, &h.LastAlertAt,
			&h.Status, &h.ChainSeq, &h.Alerts24h)
		return h, err
	})
}

// RefusedHost is an identity the collector's receiver refused: a
// certificate whose records claimed another host, or one revoked or expired.
// Such a host has no row in hosts (nothing it sent was stored), so this is
// where it shows. One per certificate name and reason.
type RefusedHost struct {
	CertName     string     `json:"cert_name"`
	Reason       string     `json:"reason"`
	ClaimedName  *string    `json:"claimed_name,omitempty"`
	Detail       string     `json:"detail"`
	CertSerial   *string    `json:"cert_serial,omitempty"`
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
	IPAddress    *string    `json:"ip_address,omitempty"`
	FirstSeen    time.Time  `json:"first_seen"`
	LastSeen     time.Time  `json:"last_seen"`
	Refusals     int64      `json:"refusals"`
}

// RefusedHosts lists the refused identities, most recently refused first.
func (s *Store) RefusedHosts(ctx context.Context) ([]RefusedHost, error) {
	rows, err := s.pool.Query(ctx, `
SELECT cert_name, reason, claimed_name, detail, cert_serial, cert_not_after, host(ip_address),
       first_seen, last_seen, refusals
FROM refused_hosts
ORDER BY last_seen DESC, cert_name, reason
LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("listing refused hosts: %w", err)
	}
	refused, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RefusedHost, error) {
		var h RefusedHost
		err := r.Scan(&h.CertName, &h.Reason, &h.ClaimedName, &h.Detail, &h.CertSerial, &h.CertNotAfter, &h.IPAddress,
			&h.FirstSeen, &h.LastSeen, &h.Refusals)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing refused hosts: %w", err)
	}
	if refused == nil {
		refused = []RefusedHost{}
	}
	return refused, nil
}

// Ping checks that PostgreSQL answers and the TripWire schema is there.
func (s *Store) Ping(ctx context.Context) (hosts int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM hosts`).Scan(&hosts)
	return hosts, err
}
