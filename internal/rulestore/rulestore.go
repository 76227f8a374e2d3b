// Package rulestore reads and writes TripWire's central rule sets in
// PostgreSQL (migration 0014_rules): rules defined once in Grafana and
// pushed to the agents over OpAMP.
//
// Start with [Store.ForHost]: given a host's attributes it returns the rule
// sets that apply to it now, the current version of every enabled set whose
// scope matches. [Store.Create] and [Store.Update] save sets, each save a new
// [RuleSet] version attributed to its author; every save NOTIFYs
// [contract.RuleSetsChannel] so a collector can LISTEN and push at once.
//
// A set's Rules are a YAML list in the agent's `rules:` schema; this package
// stores them as given: the writer validates them.
package rulestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract"
)

// Scopes of a rule set; see [contract.RuleScopeGlobal].
const (
	ScopeGlobal = contract.RuleScopeGlobal
	ScopeGroup  = contract.RuleScopeGroup
	ScopeHost   = contract.RuleScopeHost
)

// Errors of [Store.Update] and [Store.Get], compared with errors.Is.
var (
	// ErrNotFound: no rule set has the id.
	ErrNotFound = errors.New("no such rule set")
	// ErrStale: the set has a newer version than the one the change was
	// made from; nothing was saved.
	ErrStale = errors.New("rule set changed since the base version")
	// ErrNameTaken: another set has the name.
	ErrNameTaken = errors.New("rule set name taken")
)

// RuleSet is one version of a rule set.
type RuleSet struct {
	ID      int64  // assigned by Create
	Name    string // unique; letters, digits, '.', '_', '-'; never changes
	Version int    // 1 for a new set, +1 per change

	Scope    string            // ScopeGlobal, ScopeGroup or ScopeHost
	Selector map[string]string // ScopeGroup: host attributes that must all match
	HostName string            // ScopeHost: the host's certificate CN

	Enabled bool
	Rules   string // YAML list of rules, as the agent's rules: key

	Author    string    // the Grafana user who saved this version
	Note      string    // why, as the author wrote it
	CreatedAt time.Time // when this version was saved
}

// Store reads and writes rule sets through a pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool; the schema must be migrated.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const selectCurrent = `SELECT s.rule_set_id, s.name, v.version, v.scope, v.selector, COALESCE(v.host_name, ''),
	v.enabled, v.rules, v.author, v.note, v.created_at
	FROM rule_sets s JOIN rule_set_versions v ON v.rule_set_id = s.rule_set_id AND v.version = s.version`

// ForHost returns the current version of every enabled rule set that
// applies to a host with attrs (resource attribute names such as
// [contract.ResourceHostName] and [contract.ResourceOSType] to values),
// ordered by name. A host set matches attrs[contract.ResourceHostName].
func (s *Store) ForHost(ctx context.Context, attrs map[string]string) ([]RuleSet, error) {
	a, err := json.Marshal(attrs)
	if err != nil {
		return nil, fmt.Errorf("encoding host attributes: %w", err)
	}
	rows, err := s.pool.Query(ctx, selectCurrent+`
		WHERE v.enabled AND tripwire_rule_scope_matches(v.scope, v.selector, v.host_name, $1::jsonb)
		ORDER BY s.name`, string(a))
	if err != nil {
		return nil, fmt.Errorf("reading rule sets: %w", err)
	}
	sets, err := pgx.CollectRows(rows, scanRuleSet)
	if err != nil {
		return nil, fmt.Errorf("reading rule sets: %w", err)
	}
	return sets, nil
}

// Get returns the current version of set id.
func (s *Store) Get(ctx context.Context, id int64) (RuleSet, error) {
	rows, err := s.pool.Query(ctx, selectCurrent+` WHERE s.rule_set_id = $1`, id)
	if err != nil {
		return RuleSet{}, fmt.Errorf("reading rule set %d: %w", id, err)
	}
	rs, err := pgx.CollectExactlyOneRow(rows, scanRuleSet)
	if errors.Is(err, pgx.ErrNoRows) {
		return RuleSet{}, fmt.Errorf("rule set %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return RuleSet{}, fmt.Errorf("reading rule set %d: %w", id, err)
	}
	return rs, nil
}

// Create saves rs as version 1 of a new set and returns it as stored.
func (s *Store) Create(ctx context.Context, rs RuleSet) (RuleSet, error) {
	sel, err := selector(rs)
	if err != nil {
		return RuleSet{}, err
	}
	var id int64
	err = s.pool.QueryRow(ctx, `SELECT tripwire_create_rule_set($1, $2, $3::jsonb, $4, $5, $6, $7, $8)`,
		rs.Name, rs.Scope, sel, rs.HostName, rs.Enabled, rs.Rules, rs.Author, rs.Note).Scan(&id)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return RuleSet{}, fmt.Errorf("creating rule set %q: %w", rs.Name, ErrNameTaken)
	}
	if err != nil {
		return RuleSet{}, fmt.Errorf("creating rule set %q: %w", rs.Name, err)
	}
	return s.Get(ctx, id)
}

// Update saves rs (its ID set, its Name ignored) as the next version of the
// set, made from version base, and returns the set's current version. When
// the set has moved past base it saves nothing and returns [ErrStale]; a
// change equal to the current version saves nothing and returns it.
func (s *Store) Update(ctx context.Context, base int, rs RuleSet) (RuleSet, error) {
	sel, err := selector(rs)
	if err != nil {
		return RuleSet{}, err
	}
	var saved bool
	var version int
	err = s.pool.QueryRow(ctx, `SELECT saved, version FROM tripwire_update_rule_set($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)`,
		rs.ID, base, rs.Scope, sel, rs.HostName, rs.Enabled, rs.Rules, rs.Author, rs.Note).Scan(&saved, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return RuleSet{}, fmt.Errorf("rule set %d: %w", rs.ID, ErrNotFound)
	case err != nil:
		return RuleSet{}, fmt.Errorf("updating rule set %d: %w", rs.ID, err)
	case !saved:
		return RuleSet{}, fmt.Errorf("rule set %d is at version %d, not %d: %w", rs.ID, version, base, ErrStale)
	}
	return s.Get(ctx, rs.ID)
}

// selector encodes rs's selector as the table stores it: an object, empty
// unless the scope is a group.
func selector(rs RuleSet) (string, error) {
	sel := rs.Selector
	if sel == nil {
		sel = map[string]string{}
	}
	b, err := json.Marshal(sel)
	if err != nil {
		return "", fmt.Errorf("encoding selector: %w", err)
	}
	return string(b), nil
}

func scanRuleSet(row pgx.CollectableRow) (RuleSet, error) {
	var rs RuleSet
	var sel []byte
	err := row.Scan(&rs.ID, &rs.Name, &rs.Version, &rs.Scope, &sel, &rs.HostName,
		&rs.Enabled, &rs.Rules, &rs.Author, &rs.Note, &rs.CreatedAt)
	if err != nil {
		return rs, err
	}
	if err := json.Unmarshal(sel, &rs.Selector); err != nil {
		return rs, fmt.Errorf("decoding selector of rule set %q: %w", rs.Name, err)
	}
	if len(rs.Selector) == 0 {
		rs.Selector = nil
	}
	return rs, nil
}
