package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/peertls"
	"github.com/tripwire-sec/tripwire/internal/pki"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
	"github.com/tripwire-sec/tripwire/migrations"
	"github.com/tripwire-sec/tripwire/tripwireopamp"
)

// TestMain stops the PostgreSQL cluster the central rules test shares, if it
// started one.
func TestMain(m *testing.M) { pgtest.Main(m) }

// opampServer starts the collector's OpAMP extension (the real component, in
// this process) on port, with rule sets in the PostgreSQL at dsn.
func opampServer(t *testing.T, pkiDir, dsn string, port int) extension.Extension {
	t.Helper()
	f := tripwireopamp.NewFactory()
	cfg := f.CreateDefaultConfig().(*tripwireopamp.Config)
	cfg.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.DSN = configopaque.String(dsn)
	cfg.TLS = peertls.Config{CertFile: filepath.Join(pkiDir, pki.ServerCertFile), KeyFile: filepath.Join(pkiDir, pki.ServerKeyFile),
		ClientCAFile: filepath.Join(pkiDir, pki.CACertFile)}
	set := extensiontest.NewNopSettings(f.Type())
	set.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	ext, err := f.Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	return ext
}

// managed is an OpAMP server (the collector's extension) on a fresh
// database, with a PKI that has a certificate for agent-01.
type managed struct {
	pool       *pgxpool.Pool
	rules      *rulestore.Store
	port       int
	pki        string
	stopServer func()
}

func startManagement(t *testing.T, dir string) *managed {
	t.Helper()
	ctx := context.Background()
	pkiDir := filepath.Join(dir, "pki")
	if err := pki.Init(pkiDir); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.IssueServer(pkiDir, []string{"127.0.0.1"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.IssueAgent(pkiDir, "agent-01", 0); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.NewDB(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rules := rulestore.New(pool)
	port := freePort(t, "tcp")
	srv := opampServer(t, pkiDir, dsn, port)
	stopServer := func() {
		if srv != nil {
			srv.Shutdown(ctx)
			srv = nil
		}
	}
	t.Cleanup(stopServer)

	return &managed{pool: pool, rules: rules, port: port, pki: pkiDir, stopServer: stopServer}
}

// TestCentralRules (issue 15): a rule set saved in PostgreSQL reaches the
// agent over OpAMP and is applied beside the local rules, and its file trips;
// a set that clashes with a local rule is refused, reported, and the running
// rules stay; a disable removes the central rule; an agent restarted without
// the server runs the set it kept.
func TestCentralRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
	ctx := context.Background()
	dir := t.TempDir()
	m := startManagement(t, dir)
	pool, rules, port, pkiDir := m.pool, m.rules, m.port, m.pki
	stopServer := m.stopServer
	defer stopServer()

	local, central := filepath.Join(dir, "local-decoy"), filepath.Join(dir, "central-decoy")
	for _, p := range []string{local, central} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := pki.AgentFiles(pkiDir, "agent-01")
	conf := fmt.Sprintf("host: {name: agent-01}\nwatchers: {file: fanotify}\nmanagement: {endpoint: \"wss://127.0.0.1:%d/v1/opamp\", ca: %s, cert: %s, key: %s}\nrules:\n",
		port, filepath.Join(pkiDir, pki.CACertFile), cert, key) + fileRule("local-decoy", local)
	run := func() (*Agent, func()) {
		ag, err := New(loadConfig(t, dir, conf), Options{Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		runErr := make(chan error, 1)
		go func() { runErr <- ag.Run(rctx, make(chan *config.Config)) }()
		return ag, func() {
			cancel()
			if err := <-runErr; err != nil {
				t.Error(err)
			}
		}
	}
	ag, stop := run()
	defer func() { stop() }()
	served := func(ag *Agent) string {
		r, _ := health.Fetch(ctx, ag.HealthAddress())
		return strings.Join(servedRules(r), ",")
	}
	record := func() (status, lastErr string) {
		pool.QueryRow(ctx, `SELECT COALESCE(rule_status, ''), COALESCE(last_apply_error, '') FROM agent_management
			WHERE host_name = 'agent-01'`).Scan(&status, &lastErr)
		return
	}
	waitFor(t, "the local rule", func() bool { return served(ag) == "local-decoy" })

	set, err := rules.Create(ctx, rulestore.RuleSet{Name: "decoys", Scope: rulestore.ScopeHost, HostName: "agent-01",
		Enabled: true, Rules: fileRule("central-decoy", central), Author: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the central rule beside the local one", func() bool { return served(ag) == "central-decoy,local-decoy" })
	catFile(t, central)
	waitFor(t, "a trip of the central rule", func() bool { return countRule(t, dir, "central-decoy", central) > 0 })
	waitFor(t, "the server's record of the applied set", func() bool { s, _ := record(); return s == contract.RuleStatusApplied })
	var healthy bool
	var healthStatus, effective string
	waitFor(t, "health and effective config in the server's record", func() bool {
		err := pool.QueryRow(ctx, `SELECT COALESCE(healthy, false), COALESCE(health_status, ''), COALESCE(effective_config_hash, '')
			FROM agent_management WHERE host_name = 'agent-01'`).Scan(&healthy, &healthStatus, &effective)
		return err == nil && healthStatus != "" && effective != ""
	})
	if !healthy || healthStatus != event.StatusOnline || len(effective) != 64 {
		t.Errorf("recorded health %v %q, effective config hash %q", healthy, healthStatus, effective)
	}
	kept := filepath.Join(dir, "state", "central-rules.yaml")
	if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept central rule set: %v %v", fi, err)
	}

	// A set naming a local rule is refused whole: the running rules stay.
	clash := set
	clash.Rules = fileRule("central-decoy", central) + fileRule("local-decoy", filepath.Join(dir, "other"))
	if clash, err = rules.Update(ctx, set.Version, clash); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal in the server's record", func() bool { s, _ := record(); return s == contract.RuleStatusFailed })
	if _, e := record(); !strings.Contains(e, `rule "local-decoy" is also defined in`) {
		t.Errorf("recorded error %q", e)
	}
	if got := served(ag); got != "central-decoy,local-decoy" {
		t.Errorf("after a refused set the agent serves %q", got)
	}

	// A disable takes the central rule away; the local one stays.
	off := clash
	off.Enabled = false
	if off, err = rules.Update(ctx, clash.Version, off); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the central rule gone", func() bool { return served(ag) == "local-decoy" })

	// Enabled again, then the agent restarts while the server is down: it
	// runs the set it kept.
	on := off
	on.Enabled, on.Rules = true, fileRule("central-decoy", central)
	if _, err = rules.Update(ctx, off.Version, on); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the central rule back", func() bool { return served(ag) == "central-decoy,local-decoy" })
	stop()
	stopServer()
	before := countRule(t, dir, "central-decoy", central)
	ag, stop = run()
	waitFor(t, "the kept central rule after a restart without the server", func() bool { return served(ag) == "central-decoy,local-decoy" })
	catFile(t, central)
	waitFor(t, "a trip of the kept central rule", func() bool { return countRule(t, dir, "central-decoy", central) > before })
	if n := len(chained(t, dir, func(e *event.Event) bool { return e.Name == event.AgentStart })); n != 2 {
		t.Errorf("%d agent starts chained, want 2", n)
	}
}

// TestCentralApplyMissesNoTrip: while a local decoy is read by a stream of
// processes, central sets that change the file watcher's rules are applied
// four times (each restarts the file watcher, the new one beside the old):
// every read is chained exactly once.
func TestCentralApplyMissesNoTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
	ctx := context.Background()
	dir := t.TempDir()
	m := startManagement(t, dir)
	local := filepath.Join(dir, "local-decoy")
	var others []string
	for i := range 4 {
		others = append(others, filepath.Join(dir, fmt.Sprintf("central-%d", i)))
	}
	for _, p := range append([]string{local}, others...) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := pki.AgentFiles(m.pki, "agent-01")
	conf := fmt.Sprintf("host: {name: agent-01}\nwatchers: {file: fanotify}\nmanagement: {endpoint: \"wss://127.0.0.1:%d/v1/opamp\", ca: %s, cert: %s, key: %s}\nrules:\n",
		m.port, filepath.Join(m.pki, pki.CACertFile), cert, key) + fileRule("local-decoy", local)
	ag, err := New(loadConfig(t, dir, conf), Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(rctx, make(chan *config.Config)) }()
	served := func() string {
		r, _ := health.Fetch(ctx, ag.HealthAddress())
		return strings.Join(servedRules(r), ",")
	}
	waitFor(t, "the local rule", func() bool { return served() == "local-decoy" })

	const reads = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range reads {
			catFile(t, local)
		}
	}()
	set, err := m.rules.Create(ctx, rulestore.RuleSet{Name: "rotating", Scope: rulestore.ScopeGlobal, Enabled: true,
		Rules: fileRule("central-0", others[0]), Author: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "central-0", func() bool { return served() == "central-0,local-decoy" })
	for i := 1; i < len(others); i++ {
		set.Rules = fileRule(fmt.Sprintf("central-%d", i), others[i])
		if set, err = m.rules.Update(ctx, set.Version, set); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("central-%d,local-decoy", i)
		waitFor(t, want, func() bool { return served() == want })
	}
	<-done
	waitFor(t, "every read chained", func() bool { return countRule(t, dir, "local-decoy", local) >= reads })
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive meanwhile
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if n := countRule(t, dir, "local-decoy", local); n != reads {
		t.Errorf("%d reads chained %d times across 4 central applies, want exactly once each", reads, n)
		byPID := map[int64]int{}
		for _, e := range chained(t, dir, func(e *event.Event) bool { return e.Rule == "local-decoy" }) {
			if e.Process != nil {
				byPID[e.Process.PID]++
			}
		}
		for pid, c := range byPID {
			if c > 1 {
				for _, e := range chained(t, dir, func(e *event.Event) bool { return e.Rule == "local-decoy" && e.Process != nil && e.Process.PID == pid }) {
					t.Logf("pid %d: %s %s seq %d mechanism %s exe %q file %+v", pid, e.Name, e.Time.Format(time.RFC3339Nano), e.Seq, e.Mechanism, e.Process.ExecutablePath, *e.File)
				}
			}
		}
	}
}
