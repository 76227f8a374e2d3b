package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/rules"
)

// ErrConflict: the change was made from an older version than the current
// one, or the name is taken; nothing was saved.
var ErrConflict = errors.New("conflict")

// RuleSet is one version of a central rule set (migrations/0014_rules.sql).
type RuleSet struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Version   int               `json:"version"`
	Scope     string            `json:"scope"`
	Selector  map[string]string `json:"selector,omitempty"`  // group scope
	HostName  string            `json:"host_name,omitempty"` // host scope
	Enabled   bool              `json:"enabled"`
	Rules     string            `json:"rules,omitempty"` // YAML list in the agent's rules: schema; absent in lists
	Author    string            `json:"author"`
	Note      string            `json:"note"`
	CreatedAt time.Time         `json:"created_at"`
}

// RuleSetHost is a known host a rule set applies to, with how far the
// set's current version got on it (saved sets only).
type RuleSetHost struct {
	HostName string    `json:"host_name"`
	Status   string    `json:"status"`
	Platform *string   `json:"platform,omitempty"`
	Arch     *string   `json:"arch,omitempty"`
	LastSeen time.Time `json:"last_seen"`

	Rollout    string     `json:"rollout,omitempty"`     // one of the Rollout values
	ApplyError *string    `json:"apply_error,omitempty"` // FAILED: why the agent refused; offer_failed: why the collector could not compose
	AppliedAt  *time.Time `json:"applied_at,omitempty"`  // when the agent last reported a set applied
}

// Rollout values: how far a set's current version got on a host, from
// what the collector's OpAMP server recorded (agent_management).
const (
	RolloutUnmanaged   = "unmanaged"    // no OpAMP agent reported for the host
	RolloutOfferFailed = "offer_failed" // the collector could not compose the host's sets
	RolloutNotOffered  = "not_offered"  // this version (or, disabled, its removal) is not offered yet
	RolloutApplying    = "applying"     // offered; the agent has not said it applied it
	RolloutApplied     = "applied"      // the agent applied the offer that has (or, disabled, lacks) it
	RolloutFailed      = "failed"       // the agent refused the offer; its running rules stay
)

// rollout says how far version of set name (enabled or not) got on a host
// from its agent_management row; offeredSets is "name@version, ...".
func rollout(name string, version int, enabled bool, m managed) (string, *string) {
	if !m.known {
		return RolloutUnmanaged, nil
	}
	if m.offerError != nil {
		return RolloutOfferFailed, m.offerError
	}
	offered := m.offeredSets != nil && slices.Contains(strings.Split(*m.offeredSets, ", "), fmt.Sprintf("%s@%d", name, version))
	gone := m.offeredSets == nil || !slices.ContainsFunc(strings.Split(*m.offeredSets, ", "), func(s string) bool {
		return strings.HasPrefix(s, name+"@")
	})
	if (enabled && !offered) || (!enabled && !gone) || m.offeredHash == nil {
		return RolloutNotOffered, nil
	}
	if m.ruleHash == nil || *m.ruleHash != *m.offeredHash || m.ruleStatus == nil {
		return RolloutApplying, nil
	}
	switch *m.ruleStatus {
	case contract.RuleStatusApplied:
		return RolloutApplied, nil
	case contract.RuleStatusFailed:
		return RolloutFailed, m.lastApplyError
	}
	return RolloutApplying, nil
}

// managed is a host's agent_management row, as far as a rollout needs it.
type managed struct {
	known                                                      bool
	offeredHash, offeredSets, offerError, ruleStatus, ruleHash *string
	lastApplyError                                             *string
	appliedAt                                                  *time.Time
}

const selectRuleSetVersion = `SELECT s.rule_set_id, s.name, v.version, v.scope, v.selector, COALESCE(v.host_name, ''),
	v.enabled, v.rules, v.author, v.note, v.created_at
	FROM rule_sets s JOIN rule_set_versions v ON v.rule_set_id = s.rule_set_id`

func scanRuleSet(row pgx.CollectableRow) (RuleSet, error) {
	var rs RuleSet
	var sel []byte
	if err := row.Scan(&rs.ID, &rs.Name, &rs.Version, &rs.Scope, &sel, &rs.HostName,
		&rs.Enabled, &rs.Rules, &rs.Author, &rs.Note, &rs.CreatedAt); err != nil {
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

// RuleSets lists the current version of every rule set, name order,
// without their rules (a list could be large; GET rules/{id} has them).
// With host, only the sets whose scope takes in that known host, enabled or
// not; ErrNotFound when no host has the name.
func (s *Store) RuleSets(ctx context.Context, host string) ([]RuleSet, error) {
	if host != "" {
		var known bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hosts WHERE host_name = $1)`, host).Scan(&known); err != nil {
			return nil, fmt.Errorf("looking up host: %w", err)
		}
		if !known {
			return nil, ErrNotFound
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT s.rule_set_id, s.name, v.version, v.scope, v.selector, COALESCE(v.host_name, ''),
	v.enabled, '', v.author, v.note, v.created_at
	FROM rule_sets s JOIN rule_set_versions v ON v.rule_set_id = s.rule_set_id AND v.version = s.version
	WHERE $1 = '' OR EXISTS (SELECT 1 FROM hosts h WHERE h.host_name = $1
		AND tripwire_rule_scope_matches(v.scope, v.selector, v.host_name, tripwire_host_attributes(h)))
	ORDER BY s.name LIMIT 10000`, host)
	if err != nil {
		return nil, fmt.Errorf("listing rule sets: %w", err)
	}
	sets, err := pgx.CollectRows(rows, scanRuleSet)
	if err != nil {
		return nil, fmt.Errorf("listing rule sets: %w", err)
	}
	return sets, nil
}

// RuleSet returns version of set id, the current one when version is 0.
func (s *Store) RuleSet(ctx context.Context, id int64, version int) (RuleSet, error) {
	rows, err := s.pool.Query(ctx, selectRuleSetVersion+`
		AND v.version = CASE WHEN $2 = 0 THEN s.version ELSE $2 END WHERE s.rule_set_id = $1`, id, version)
	if err != nil {
		return RuleSet{}, fmt.Errorf("reading rule set: %w", err)
	}
	rs, err := pgx.CollectExactlyOneRow(rows, scanRuleSet)
	if errors.Is(err, pgx.ErrNoRows) {
		return RuleSet{}, ErrNotFound
	}
	if err != nil {
		return RuleSet{}, fmt.Errorf("reading rule set: %w", err)
	}
	return rs, nil
}

// RuleSetVersions lists every version of set id, newest first.
func (s *Store) RuleSetVersions(ctx context.Context, id int64) ([]RuleSet, error) {
	rows, err := s.pool.Query(ctx, selectRuleSetVersion+` WHERE s.rule_set_id = $1 ORDER BY v.version DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("listing rule set versions: %w", err)
	}
	versions, err := pgx.CollectRows(rows, scanRuleSet)
	if err != nil {
		return nil, fmt.Errorf("listing rule set versions: %w", err)
	}
	if len(versions) == 0 {
		return nil, ErrNotFound
	}
	return versions, nil
}

// CreateRuleSet saves rs as version 1 of a new set through
// tripwire_create_rule_set and returns its id.
func (s *Store) CreateRuleSet(ctx context.Context, rs *RuleSet) (int64, error) {
	sel, err := selectorJSON(rs)
	if err != nil {
		return 0, err
	}
	var id int64
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT tripwire_create_rule_set($1, $2, $3::jsonb, $4, $5, $6, $7, $8)`,
			rs.Name, rs.Scope, sel, rs.HostName, rs.Enabled, rs.Rules, rs.Author, rs.Note).Scan(&id)
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return 0, fieldError("name", "a rule set named %q exists", rs.Name)
	}
	if err != nil {
		return 0, fmt.Errorf("creating rule set: %w", err)
	}
	return id, nil
}

// UpdateRuleSet saves rs as the next version of set rs.ID, made from version
// base, through tripwire_update_rule_set; a change equal to the current
// version saves nothing. ErrConflict when the set has moved past base.
func (s *Store) UpdateRuleSet(ctx context.Context, base int, rs *RuleSet) error {
	sel, err := selectorJSON(rs)
	if err != nil {
		return err
	}
	var saved bool
	var version int
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT saved, version FROM tripwire_update_rule_set($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)`,
			rs.ID, base, rs.Scope, sel, rs.HostName, rs.Enabled, rs.Rules, rs.Author, rs.Note).Scan(&saved, &version)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("updating rule set: %w", err)
	case !saved:
		return fmt.Errorf("%w: rule set %q is at version %d, the change was made from version %d; reload and edit again",
			ErrConflict, rs.Name, version, base)
	}
	return nil
}

// RuleSetHosts lists the known hosts a set scoped like rs applies to (its
// enabled flag aside), by the migration's own scoping function.
func (s *Store) RuleSetHosts(ctx context.Context, rs *RuleSet) ([]RuleSetHost, error) {
	sel, err := selectorJSON(rs)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
SELECT h.host_name,
       CASE WHEN h.status = '`+contract.StatusRetired+`' THEN h.status WHEN h.last_seen < now() - make_interval(secs => $5) THEN '`+contract.StatusOffline+`' ELSE h.status END,
       h.platform, h.arch, h.last_seen,
       m.host_name IS NOT NULL, m.offered_hash, m.offered_sets, m.offer_error, m.rule_status, m.rule_hash,
       m.last_apply_error, m.applied_at
FROM hosts h LEFT JOIN agent_management m ON m.host_name = h.host_name
WHERE tripwire_rule_scope_matches($1, $2::jsonb, $3, tripwire_host_attributes(h))
ORDER BY h.host_name
LIMIT $4`, rs.Scope, sel, rs.HostName, MaxLimit, s.offlineAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("listing the hosts of a rule set: %w", err)
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RuleSetHost, error) {
		var h RuleSetHost
		var m managed
		err := r.Scan(&h.HostName, &h.Status, &h.Platform, &h.Arch, &h.LastSeen,
			&m.known, &m.offeredHash, &m.offeredSets, &m.offerError, &m.ruleStatus, &m.ruleHash, &m.lastApplyError, &m.appliedAt)
		if rs.Version > 0 { // a saved version, not an edit being checked
			h.Rollout, h.ApplyError = rollout(rs.Name, rs.Version, rs.Enabled, m)
			h.AppliedAt = m.appliedAt
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing the hosts of a rule set: %w", err)
	}
	return hosts, nil
}

// selectorJSON is rs's selector as the table stores it: an object, empty
// unless the scope is a group.
func selectorJSON(rs *RuleSet) (string, error) {
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

// RuleSetClashes refuses what rs has in common with another enabled set
// that may apply to one same host: a rule name, or a target both watch (see
// rules.Clashes). The host's agent would be sent both and refuse the whole
// set. A set that is disabled, or whose rules do not parse, clashes with
// nothing.
func (s *Store) RuleSetClashes(ctx context.Context, rs *RuleSet) (FieldErrors, error) {
	if !rs.Enabled {
		return nil, nil
	}
	mine, err := rules.Parse("rules", []byte(rs.Rules), nil)
	if err != nil {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, selectRuleSetVersion+` AND v.version = s.version
		WHERE v.enabled AND s.rule_set_id <> $1 ORDER BY s.name`, rs.ID)
	if err != nil {
		return nil, fmt.Errorf("reading rule sets: %w", err)
	}
	others, err := pgx.CollectRows(rows, scanRuleSet)
	if err != nil {
		return nil, fmt.Errorf("reading rule sets: %w", err)
	}
	var fe FieldErrors
	for _, other := range others {
		theirs, err := rules.Parse("rules", []byte(other.Rules), nil)
		if err != nil {
			continue // saved before a stricter validator; the agent will say
		}
		clashes := rules.Clashes(mine, theirs, fmt.Sprintf("rule set %q", other.Name))
		if len(clashes) == 0 {
			continue
		}
		may, err := s.mayShareHost(ctx, rs, &other)
		if err != nil {
			return nil, err
		}
		if !may {
			continue
		}
		for _, c := range clashes {
			fe = append(fe, FieldError{Field: "rules", Line: c.Line, Key: c.Key,
				Message: c.Msg + ", which may apply to the same hosts (" + other.Scope + ")"})
		}
	}
	return fe, nil
}

// mayShareHost says whether some host could get both sets: a global set
// reaches every host; two groups can both match unless one attribute must
// have two values; a host set and a group share a host when the host's
// known attributes match the group, or when the host is not known yet.
func (s *Store) mayShareHost(ctx context.Context, a, b *RuleSet) (bool, error) {
	if a.Scope == contract.RuleScopeHost && b.Scope != contract.RuleScopeHost {
		a, b = b, a
	}
	switch {
	case a.Scope == contract.RuleScopeGlobal || b.Scope == contract.RuleScopeGlobal:
		return true, nil
	case a.Scope == contract.RuleScopeHost: // both host sets
		return a.HostName == b.HostName, nil
	case b.Scope == contract.RuleScopeGroup: // both groups
		for k, v := range a.Selector {
			if w, ok := b.Selector[k]; ok && w != v {
				return false, nil
			}
		}
		return true, nil
	}
	// a is a group, b one host.
	sel, err := selectorJSON(a)
	if err != nil {
		return false, err
	}
	var matches bool
	err = s.pool.QueryRow(ctx, `SELECT tripwire_rule_scope_matches($1, $2::jsonb, '', tripwire_host_attributes(h))
		FROM hosts h WHERE h.host_name = $3`, contract.RuleScopeGroup, sel, b.HostName).Scan(&matches)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading host %q: %w", b.HostName, err)
	}
	return matches, nil
}
