package tripwireopamp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/tripwire-sec/tripwire/agent/management"
	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/opampsim"
	"github.com/tripwire-sec/tripwire/internal/peertls"
	"github.com/tripwire-sec/tripwire/internal/pki"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
	"github.com/tripwire-sec/tripwire/migrations"
	"github.com/tripwire-sec/tripwire/tripwireopamp/internal/metadata"
)

// runWithPostgres runs the tests (from the generated TestMain) and then
// stops the shared PostgreSQL cluster.
func runWithPostgres(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	pki   string
	url   string
	pool  *pgxpool.Pool
	store *rulestore.Store
	srv   *server
}

func startServer(t *testing.T, tweak ...func(cfg *Config, pkiDir string)) *fixture {
	t.Helper()
	dsn := pgtest.NewDB(t)
	dir := filepath.Join(t.TempDir(), "pki")
	require.NoError(t, pki.Init(dir))
	_, err := pki.IssueServer(dir, []string{"localhost", "127.0.0.1"}, 0)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = "127.0.0.1:0"
	cfg.DSN = configopaque.String(dsn)
	cfg.TLS = peertls.Config{CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
		ClientCAFile: filepath.Join(dir, pki.CACertFile), CRLFile: filepath.Join(dir, pki.CRLFile)}
	for _, f := range tweak {
		f(cfg, dir)
	}
	require.NoError(t, cfg.Validate())
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, migrations.Apply(context.Background(), pool))
	srv := ext.(*server)
	return &fixture{pki: dir, url: "wss://" + srv.addr.String() + "/v1/opamp", pool: pool, store: rulestore.New(pool), srv: srv}
}

func (f *fixture) agent(t *testing.T, host string, opts opampsim.Options) *opampsim.Agent {
	t.Helper()
	_, err := pki.IssueAgent(f.pki, host, 0)
	require.NoError(t, err)
	opts.URL, opts.Host, opts.CA = f.url, host, filepath.Join(f.pki, pki.CACertFile)
	opts.Cert, opts.Key = pki.AgentFiles(f.pki, host)
	a, err := opampsim.Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { a.Stop(context.Background()) })
	return a
}

// waitRules waits until a runs a set whose rule names are want.
func waitRules(t *testing.T, a *opampsim.Agent, want ...string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		ch := a.Changed()
		body, _ := a.Applied()
		if got := ruleNames(body); got == strings.Join(want, ",") {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			body, failed := a.Applied()
			t.Fatalf("agent runs %q (%s), want rules %v", ruleNames(body), failed, want)
		}
	}
}

func ruleNames(body []byte) string {
	var names []string
	for _, line := range strings.Split(string(body), "\n") {
		if _, n, ok := strings.Cut(line, "name: "); ok {
			names = append(names, strings.TrimSpace(n))
		}
	}
	return strings.Join(names, ",")
}

type record struct {
	status, hash, offered, lastError string
	connected, applied               bool
}

func (f *fixture) record(t *testing.T, host string) record {
	t.Helper()
	var r record
	err := f.pool.QueryRow(context.Background(), `SELECT COALESCE(rule_status, ''), COALESCE(rule_hash, ''),
		COALESCE(offered_hash, ''), COALESCE(last_apply_error, ''), connected, applied_at IS NOT NULL
		FROM agent_management WHERE host_name = $1`, host).Scan(&r.status, &r.hash, &r.offered, &r.lastError, &r.connected, &r.applied)
	if err != nil {
		return record{}
	}
	return r
}

func (f *fixture) waitRecord(t *testing.T, host string, ok func(record) bool) record {
	t.Helper()
	var r record
	require.Eventually(t, func() bool { r = f.record(t, host); return ok(r) }, 15*time.Second, 20*time.Millisecond,
		"record of %s: %+v", host, r)
	return r
}

func rule(name, path string) string {
	return fmt.Sprintf("- name: %s\n  type: file\n  severity: CRITICAL\n  paths: [%s]\n", name, path)
}

func TestOffersEachHostItsRuleSets(t *testing.T) {
	f := startServer(t)
	ctx := context.Background()
	web1 := f.agent(t, "web-01", opampsim.Options{})
	web2 := f.agent(t, "web-02", opampsim.Options{})
	db := f.agent(t, "db-01", opampsim.Options{})
	// Connected with no set yet: offered the empty set.
	for _, a := range []*opampsim.Agent{web1, web2, db} {
		waitRules(t, a)
	}

	global, err := f.store.Create(ctx, rulestore.RuleSet{Name: "base", Scope: rulestore.ScopeGlobal, Enabled: true,
		Rules: rule("passwd", "/etc/passwd"), Author: "alice"})
	require.NoError(t, err)
	for _, a := range []*opampsim.Agent{web1, web2, db} {
		waitRules(t, a, "passwd")
	}
	_, err = f.store.Create(ctx, rulestore.RuleSet{Name: "db", Scope: rulestore.ScopeHost, HostName: "db-01", Enabled: true,
		Rules: rule("pgpass", "/root/.pgpass"), Author: "alice"})
	require.NoError(t, err)
	waitRules(t, db, "passwd", "pgpass")
	r := f.waitRecord(t, "db-01", func(r record) bool { return r.status == contract.RuleStatusApplied && r.hash == r.offered })
	require.True(t, r.connected && r.applied, "%+v", r)
	body, _ := web1.Applied()
	require.Equal(t, "passwd", ruleNames(body), "a host set reached another host")

	// A disable is a version without the set: every host drops it.
	global.Enabled = false
	_, err = f.store.Update(ctx, global.Version, global)
	require.NoError(t, err)
	waitRules(t, web1)
	waitRules(t, web2)
	waitRules(t, db, "pgpass")
}

func TestRecordsARefusal(t *testing.T) {
	f := startServer(t)
	a := f.agent(t, "web-01", opampsim.Options{Refuse: func(body []byte) error {
		if strings.Contains(string(body), "clash") {
			return errors.New(`central rule set:4: rules: rule "clash" is also defined in /etc/tripwire/config.yaml (line 9)`)
		}
		return nil
	}})
	waitRules(t, a)
	_, err := f.store.Create(context.Background(), rulestore.RuleSet{Name: "bad", Scope: rulestore.ScopeGlobal, Enabled: true,
		Rules: rule("clash", "/etc/shadow"), Author: "alice"})
	require.NoError(t, err)
	r := f.waitRecord(t, "web-01", func(r record) bool { return r.status == contract.RuleStatusFailed })
	require.Contains(t, r.lastError, `rule "clash" is also defined`)
	require.Equal(t, r.offered, r.hash, "the refusal is about the offered set")
	body, _ := a.Applied()
	require.Empty(t, ruleNames(body), "the refused set is not run")
}

// TestNoResendOfTheRunningSet: an agent that reconnects reporting
// the set it runs is not sent it again.
func TestNoResendOfTheRunningSet(t *testing.T) {
	f := startServer(t)
	first := f.agent(t, "web-01", opampsim.Options{})
	waitRules(t, first)
	_, err := f.store.Create(context.Background(), rulestore.RuleSet{Name: "base", Scope: rulestore.ScopeGlobal, Enabled: true,
		Rules: rule("passwd", "/etc/passwd"), Author: "alice"})
	require.NoError(t, err)
	waitRules(t, first, "passwd")
	running, _ := first.Applied()
	require.NoError(t, first.Stop(context.Background()))

	applies := make(chan []byte, 4)
	again := f.agent(t, "web-01", opampsim.Options{Running: running, OnApplied: func(b []byte, _ time.Time) { applies <- b }})
	f.waitRecord(t, "web-01", func(r record) bool { return r.connected && r.status == contract.RuleStatusApplied })
	select {
	case b := <-applies:
		t.Fatalf("the running set was sent again: %q", b)
	case <-time.After(time.Second):
	}
	_ = again
}

func TestRefusesOtherIdentities(t *testing.T) {
	f := startServer(t)
	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, pki.Init(other))
	_, err := pki.IssueAgent(other, "web-01", 0)
	require.NoError(t, err)
	cert, key := pki.AgentFiles(other, "web-01")
	a, err := opampsim.Start(context.Background(), opampsim.Options{URL: f.url, Host: "web-01",
		CA: filepath.Join(f.pki, pki.CACertFile), Cert: cert, Key: key})
	require.NoError(t, err)
	defer a.Stop(context.Background())

	_, err = pki.IssueAgent(f.pki, "revoked-01", 0)
	require.NoError(t, err)
	_, err = pki.Revoke(f.pki, "revoked-01")
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // the CRL file is looked at once a second at most
	rc, rk := pki.AgentFiles(f.pki, "revoked-01")
	b, err := opampsim.Start(context.Background(), opampsim.Options{URL: f.url, Host: "revoked-01",
		CA: filepath.Join(f.pki, pki.CACertFile), Cert: rc, Key: rk})
	require.NoError(t, err)
	defer b.Stop(context.Background())

	time.Sleep(2 * time.Second)
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM agent_management`).Scan(&n))
	require.Zero(t, n, "a certificate from another CA or a revoked one was let in")
}

// TestEnrollment: a host without a certificate gets its first one with a
// one-time bootstrap token for its name, for a key it made; the token is
// good once, before it expires, for that host only; the certificate is
// recorded for revocation and identifies the host from then on.
func TestEnrollment(t *testing.T) {
	f := startServer(t, func(cfg *Config, dir string) { cfg.CAKeyFile = filepath.Join(dir, pki.CAKeyFile) })
	ctx := context.Background()
	dir := t.TempDir()
	enroll := func(host, token, name string) (*x509.Certificate, error) {
		return management.Enroll(ctx, management.Enrollment{Endpoint: f.url, CA: filepath.Join(f.pki, pki.CACertFile),
			Host: host, Token: token, Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")})
	}
	token, _, err := pki.NewToken(ctx, f.pool, "new-01", time.Minute)
	require.NoError(t, err)

	_, err = enroll("other-01", token, "wrong-host")
	require.ErrorContains(t, err, "issued for another host")
	cert, err := enroll("new-01", token, "new-01")
	require.NoError(t, err)
	require.Equal(t, "new-01", cert.Subject.CommonName)
	fi, err := os.Stat(filepath.Join(dir, "new-01.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	var how string
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT how FROM pki_certificates WHERE serial = $1 AND host_name = 'new-01'`,
		cert.SerialNumber.Text(16)).Scan(&how))
	require.Equal(t, pki.HowEnroll, how)

	_, err = enroll("new-01", token, "again")
	require.ErrorContains(t, err, "already used")
	expiring, _, err := pki.NewToken(ctx, f.pool, "new-02", time.Millisecond)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	_, err = enroll("new-02", expiring, "new-02")
	require.ErrorContains(t, err, "expired")

	// The enrolled certificate is the host's identity.
	a, err := opampsim.Start(ctx, opampsim.Options{URL: f.url, Host: "new-01", CA: filepath.Join(f.pki, pki.CACertFile),
		Cert: filepath.Join(dir, "new-01.crt"), Key: filepath.Join(dir, "new-01.key")})
	require.NoError(t, err)
	defer a.Stop(ctx)
	f.waitRecord(t, "new-01", func(r record) bool { return r.connected })
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM agent_management WHERE host_name <> 'new-01'`).Scan(&n))
	require.Zero(t, n, "an enrolling client was recorded as an agent")
}
