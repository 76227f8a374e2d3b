package rulestore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const fileRules = `- name: shadow
  type: file
  severity: CRITICAL
  paths: [/etc/shadow]
`

func newStore(t *testing.T) (*rulestore.Store, *pgxpool.Pool, string) {
	t.Helper()
	url := pgtest.NewSchemaDB(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return rulestore.New(pool), pool, url
}

func create(t *testing.T, s *rulestore.Store, rs rulestore.RuleSet) rulestore.RuleSet {
	t.Helper()
	if rs.Rules == "" {
		rs.Rules = fileRules
	}
	if rs.Author == "" {
		rs.Author = "alice"
	}
	got, err := s.Create(context.Background(), rs)
	if err != nil {
		t.Fatalf("Create %s: %v", rs.Name, err)
	}
	return got
}

func names(sets []rulestore.RuleSet) []string {
	var out []string
	for _, s := range sets {
		out = append(out, s.Name)
	}
	return out
}

func TestForHostScopes(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	create(t, s, rulestore.RuleSet{Name: "everywhere", Scope: rulestore.ScopeGlobal, Enabled: true})
	create(t, s, rulestore.RuleSet{Name: "linux-amd64", Scope: rulestore.ScopeGroup, Enabled: true,
		Selector: map[string]string{contract.ResourceOSType: "linux", contract.ResourceHostArch: "amd64"}})
	create(t, s, rulestore.RuleSet{Name: "db1-only", Scope: rulestore.ScopeHost, HostName: "db1", Enabled: true})
	create(t, s, rulestore.RuleSet{Name: "off", Scope: rulestore.ScopeGlobal, Enabled: false})

	for _, tc := range []struct {
		attrs map[string]string
		want  []string
	}{
		{map[string]string{contract.ResourceHostName: "db1", contract.ResourceOSType: "linux", contract.ResourceHostArch: "amd64"},
			[]string{"db1-only", "everywhere", "linux-amd64"}},
		{map[string]string{contract.ResourceHostName: "web1", contract.ResourceOSType: "linux", contract.ResourceHostArch: "amd64"},
			[]string{"everywhere", "linux-amd64"}},
		// One selector key missing or different: not in the group.
		{map[string]string{contract.ResourceHostName: "web2", contract.ResourceOSType: "linux", contract.ResourceHostArch: "arm64"},
			[]string{"everywhere"}},
		{map[string]string{contract.ResourceHostName: "mac1", contract.ResourceOSType: "darwin"},
			[]string{"everywhere"}},
		// The host name is compared whole.
		{map[string]string{contract.ResourceHostName: "db10"}, []string{"everywhere"}},
		{nil, []string{"everywhere"}},
	} {
		sets, err := s.ForHost(ctx, tc.attrs)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(sets); !slices.Equal(got, tc.want) {
			t.Errorf("ForHost(%v) = %v, want %v", tc.attrs, got, tc.want)
		}
	}
}

func TestUpdateKeepsVersions(t *testing.T) {
	ctx := context.Background()
	s, pool, _ := newStore(t)
	v1 := create(t, s, rulestore.RuleSet{Name: "base", Scope: rulestore.ScopeGlobal, Enabled: true, Note: "first"})
	if v1.Version != 1 || v1.Author != "alice" || v1.Rules != fileRules || v1.Scope != rulestore.ScopeGlobal || v1.CreatedAt.IsZero() {
		t.Fatalf("created %+v", v1)
	}

	next := v1
	next.Scope, next.Selector = rulestore.ScopeGroup, map[string]string{contract.ResourceOSType: "linux"}
	next.Author, next.Note = "bob", "linux only"
	v2, err := s.Update(ctx, 1, next)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Author != "bob" || v2.Note != "linux only" || v2.Selector[contract.ResourceOSType] != "linux" {
		t.Fatalf("updated %+v", v2)
	}

	// Made from version 1 after version 2 exists: refused, nothing saved.
	stale := v1
	stale.Enabled, stale.Author = false, "carol"
	if _, err := s.Update(ctx, 1, stale); !errors.Is(err, rulestore.ErrStale) {
		t.Fatalf("stale update: %v, want ErrStale", err)
	}
	// The same content again: no new version.
	same, err := s.Update(ctx, 2, next)
	if err != nil || same.Version != 2 {
		t.Fatalf("unchanged update: version %d, %v; want 2", same.Version, err)
	}
	// A disable is a version too.
	off := v2
	off.Enabled, off.Author = false, "carol"
	v3, err := s.Update(ctx, 2, off)
	if err != nil || v3.Version != 3 || v3.Enabled {
		t.Fatalf("disable: %+v, %v", v3, err)
	}
	if sets, err := s.ForHost(ctx, map[string]string{contract.ResourceOSType: "linux"}); err != nil || len(sets) != 0 {
		t.Fatalf("disabled set still applies: %v, %v", names(sets), err)
	}

	rows, _ := pool.Query(ctx, `SELECT version, author, enabled FROM rule_set_versions WHERE rule_set_id = $1 ORDER BY version`, v1.ID)
	type version struct {
		V       int
		Author  string
		Enabled bool
	}
	history, err := pgx.CollectRows(rows, pgx.RowToStructByPos[version])
	if err != nil {
		t.Fatal(err)
	}
	want := []version{{1, "alice", true}, {2, "bob", true}, {3, "carol", false}}
	if !slices.Equal(history, want) {
		t.Fatalf("history %v, want %v", history, want)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := create(t, s, rulestore.RuleSet{Name: "a", Scope: rulestore.ScopeGlobal, Enabled: true})

	if _, err := s.Create(ctx, rulestore.RuleSet{Name: "a", Scope: rulestore.ScopeGlobal, Rules: fileRules, Author: "bob"}); !errors.Is(err, rulestore.ErrNameTaken) {
		t.Errorf("duplicate name: %v, want ErrNameTaken", err)
	}
	if _, err := s.Get(ctx, a.ID+100); !errors.Is(err, rulestore.ErrNotFound) {
		t.Errorf("Get of a missing id: %v, want ErrNotFound", err)
	}
	missing := a
	missing.ID += 100
	if _, err := s.Update(ctx, 1, missing); !errors.Is(err, rulestore.ErrNotFound) {
		t.Errorf("Update of a missing id: %v, want ErrNotFound", err)
	}
	for _, bad := range []rulestore.RuleSet{
		{Name: "no-selector", Scope: rulestore.ScopeGroup},
		{Name: "no-host", Scope: rulestore.ScopeHost},
		{Name: "host-and-global", Scope: rulestore.ScopeGlobal, HostName: "db1"},
		{Name: "selector-on-host", Scope: rulestore.ScopeHost, HostName: "db1", Selector: map[string]string{contract.ResourceOSType: "linux"}},
		{Name: "everything", Scope: "everything"},
		{Name: "bad name", Scope: rulestore.ScopeGlobal},
		{Name: "", Scope: rulestore.ScopeGlobal},
		{Name: "anonymous", Scope: rulestore.ScopeGlobal, Author: ""},
	} {
		if bad.Name != "anonymous" {
			bad.Author = "bob"
		}
		bad.Rules = fileRules
		if _, err := s.Create(ctx, bad); err == nil {
			t.Errorf("Create(%+v) succeeded", bad)
		}
	}
}

// TestSaveNotifies: a collector LISTENing on the channel hears every save,
// with the set's id.
func TestSaveNotifies(t *testing.T) {
	ctx := context.Background()
	s, _, url := newStore(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{contract.RuleSetsChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	rs := create(t, s, rulestore.RuleSet{Name: "n", Scope: rulestore.ScopeGlobal, Enabled: true})
	rs.Enabled = false
	if _, err := s.Update(ctx, 1, rs); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("notification %d: %v", i+1, err)
		}
		if n.Channel != contract.RuleSetsChannel || n.Payload != strconv.FormatInt(rs.ID, 10) {
			t.Fatalf("notification %d: %s %q, want %s %d", i+1, n.Channel, n.Payload, contract.RuleSetsChannel, rs.ID)
		}
	}
}

// TestReaderWritesOnlyThroughFunctions: the plugin's read-only role saves
// sets through the functions but cannot write the tables directly, so no
// version escapes the history.
func TestReaderWritesOnlyThroughFunctions(t *testing.T) {
	ctx := context.Background()
	_, pool, _ := newStore(t)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE tripwire_reader"); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := tx.QueryRow(ctx, `SELECT tripwire_create_rule_set('r', $1, '{}', '', true, $2, 'alice', '')`,
		rulestore.ScopeGlobal, fileRules).Scan(&id); err != nil {
		t.Fatalf("reader cannot create through the function: %v", err)
	}
	var saved bool
	if err := tx.QueryRow(ctx, `SELECT saved FROM tripwire_update_rule_set($1, 1, $2, '{}', '', false, $3, 'bob', '')`,
		id, rulestore.ScopeGlobal, fileRules).Scan(&saved); err != nil || !saved {
		t.Fatalf("reader cannot update through the function: %v %v", saved, err)
	}
	for _, write := range []string{
		"UPDATE rule_set_versions SET author = 'mallory'",
		"DELETE FROM rule_set_versions",
		"UPDATE rule_sets SET version = 1",
	} {
		if _, err := tx.Exec(ctx, "SAVEPOINT w"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, write); err == nil {
			t.Errorf("tripwire_reader may run %q", write)
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT w"); err != nil {
			t.Fatal(err)
		}
	}
}
