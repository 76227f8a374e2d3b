package collector

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/opampsim"
	"github.com/tripwire-sec/tripwire/internal/pki"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
)

// fleet is the real collector with opamp.yaml layered on, n simulated
// managed agents (opamp-go clients that check an offered set with the
// agent's own validator, no local rules) and one real agent with a decoy.
type fleet struct {
	s      *stack
	pool   *pgxpool.Pool
	rules  *rulestore.Store
	sims   []*opampsim.Agent
	agent  *agentProc
	health string // the real agent's health socket
	decoy  string
	canary string   // watched by the real agent's local rule
	hosts  []string // every managed host, the real one last
}

const realHost = "opamp-real-01"

func startFleet(t testing.TB, n int) *fleet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's fanotify watcher needs root")
	}
	f := &fleet{s: newStackOn(t, pgtest.NewDB(t), "config.yaml", "opamp.yaml")}
	var err error
	if f.pool, err = pgxpool.New(context.Background(), f.s.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	f.rules = rulestore.New(f.pool)
	url := "wss://" + f.s.opamp + "/v1/opamp"
	ca := filepath.Join(f.s.pki, pki.CACertFile)
	validate := func(body []byte) error {
		_, err := (&config.Config{File: "simulated"}).WithCentralRules(body)
		return err
	}
	for i := range n {
		host := fmt.Sprintf("opamp-sim-%03d", i)
		if _, err := pki.IssueAgent(f.s.pki, host, 0); err != nil {
			t.Fatal(err)
		}
		cert, key := pki.AgentFiles(f.s.pki, host)
		a, err := opampsim.Start(context.Background(), opampsim.Options{URL: url, CA: ca, Cert: cert, Key: key, Host: host, Refuse: validate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Stop(context.Background()) })
		f.sims = append(f.sims, a)
		f.hosts = append(f.hosts, host)
	}
	dir := t.TempDir()
	f.decoy, f.canary = filepath.Join(dir, "central-decoy"), filepath.Join(dir, "canary")
	for _, p := range []string{f.decoy, f.canary} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.s.agentExtra = fmt.Sprintf("management: {endpoint: %q, server_name: localhost}\nwatchers: {file: fanotify}\n", url)
	f.agent = f.s.startAgent(t, realHost, "  - {name: local-canary, type: file, severity: INFO, paths: ["+f.canary+"]}", dir)
	f.health = filepath.Join(dir, "health.sock")
	f.hosts = append(f.hosts, realHost)
	return f
}

// save writes a new version of the global set "fleet" (creating it) and
// returns when it was saved, by the database's clock.
func (f *fleet) save(t testing.TB, enabled bool, rules string) (rulestore.RuleSet, time.Time) {
	t.Helper()
	ctx := context.Background()
	cur, err := f.current(ctx)
	var saved rulestore.RuleSet
	switch {
	case err != nil:
		saved, err = f.rules.Create(ctx, rulestore.RuleSet{Name: "fleet", Scope: rulestore.ScopeGlobal, Enabled: enabled, Rules: rules, Author: "bench"})
	default:
		cur.Enabled, cur.Rules, cur.Author = enabled, rules, "bench"
		saved, err = f.rules.Update(ctx, cur.Version, cur)
	}
	if err != nil {
		t.Fatal(err)
	}
	return saved, saved.CreatedAt
}

func (f *fleet) current(ctx context.Context) (rulestore.RuleSet, error) {
	var id int64
	if err := f.pool.QueryRow(ctx, `SELECT rule_set_id FROM rule_sets WHERE name = 'fleet'`).Scan(&id); err != nil {
		return rulestore.RuleSet{}, err
	}
	return f.rules.Get(ctx, id)
}

// hostRecord is one row of agent_management.
type hostRecord struct {
	status, hash, offered, lastError string
	appliedAt                        time.Time
}

func (f *fleet) records(t testing.TB) map[string]hostRecord {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT host_name, COALESCE(rule_status, ''), COALESCE(rule_hash, ''),
		COALESCE(offered_hash, ''), COALESCE(last_apply_error, ''), COALESCE(applied_at, 'epoch') FROM agent_management`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]hostRecord{}
	for rows.Next() {
		var h string
		var r hostRecord
		if err := rows.Scan(&h, &r.status, &r.hash, &r.offered, &r.lastError, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out[h] = r
	}
	return out
}

// waitAll waits until every host's record says status for the set whose
// body hash is want, and returns the records.
func (f *fleet) waitAll(t testing.TB, status, want string, within time.Duration) map[string]hostRecord {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		recs := f.records(t)
		var behind []string
		for _, h := range f.hosts {
			if r := recs[h]; r.status != status || r.hash != want {
				behind = append(behind, fmt.Sprintf("%s(%s %.8s)", h, r.status, r.hash))
			}
		}
		if len(behind) == 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hosts not %s %.8s after %s: %v\nagent log:\n%s\ncollector log:\n%s", len(behind), status, want, within,
				behind[:min(len(behind), 5)], f.agent.log.String(), f.s.col.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// offeredHash is the hash of the offer that carries the saved version of
// the set "fleet" (every host gets the same global set), or, for a disabled
// version, of the first offer without it made after the save. The offer's
// time alone is not enough: an offer composed just before the save may be
// recorded just after it.
func (f *fleet) offeredHash(t testing.TB, saved rulestore.RuleSet) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var h, sets string
		err := f.pool.QueryRow(context.Background(), `SELECT offered_hash, COALESCE(offered_sets, '') FROM agent_management
			WHERE host_name = $1 AND offered_at >= $2`, realHost, saved.CreatedAt).Scan(&h, &sets)
		if err == nil && offers(sets, saved) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("version %d saved at %s was not offered (last offer %q): %v", saved.Version, saved.CreatedAt, sets, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// offers says whether an offer listing sets ("name@version, ...") is the
// one made for saved: it lists that version, or no version of the set when
// saved disabled it.
func offers(sets string, saved rulestore.RuleSet) bool {
	for _, s := range strings.Split(sets, ", ") {
		if s == fmt.Sprintf("%s@%d", saved.Name, saved.Version) {
			return saved.Enabled
		}
		if strings.HasPrefix(s, saved.Name+"@") {
			return false
		}
	}
	return !saved.Enabled
}

func (f *fleet) served(t testing.TB) []string {
	r, _ := health.Fetch(context.Background(), f.health)
	var out []string
	for _, w := range r.Watchers {
		out = append(out, w.Rules...)
	}
	slices.Sort(out)
	return out
}

func (f *fleet) trips(t testing.TB, rule string) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE host_name = $1 AND rule_name = $2`,
		realHost, rule).Scan(&n); err != nil {
		return 0 // the exporter has not migrated yet
	}
	return n
}

func decoyRule(name, path string) string {
	return fmt.Sprintf("- {name: %s, type: file, severity: CRITICAL, paths: [%s]}\n", name, path)
}

// latencies are the save → applied times of every host for one version.
func latencies(recs map[string]hostRecord, saved time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.appliedAt.Sub(saved))
	}
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// TestCentralRulesEndToEnd (issue 15): with the real collector, PostgreSQL,
// 100 simulated managed agents and one real agent, a rule set saved in the
// table reaches all 101 and the real agent trips on it; a set the agents'
// validator refuses is refused by every one of them, recorded with the
// error, and the running rule keeps tripping; a disable takes the rule away
// and its trips stop; the collector restarted in the middle of a rollout
// leaves every agent on the latest version.
func TestCentralRulesEndToEnd(t *testing.T) {
	f := startFleet(t, 100)

	rs, saved := f.save(t, true, decoyRule("central-decoy", f.decoy))
	want := f.offeredHash(t, rs)
	recs := f.waitAll(t, contract.RuleStatusApplied, want, 60*time.Second)
	lat := latencies(recs, saved)
	t.Logf("save → applied on %d agents: p50 %s p99 %s max %s", len(lat), quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1])
	waitUntil(t, "the real agent serving the central rule", func() bool {
		return strings.Join(f.served(t), ",") == "central-decoy,local-canary"
	})
	cat(t, f.decoy)
	waitUntil(t, "a central-decoy trip in PostgreSQL", func() bool { return f.trips(t, "central-decoy") > 0 })

	// Refused everywhere: a path no host has. The running set stays.
	rs, _ = f.save(t, true, decoyRule("central-decoy", f.decoy)+decoyRule("missing", "/nonexistent/tripwire-e2e"))
	bad := f.offeredHash(t, rs)
	recs = f.waitAll(t, contract.RuleStatusFailed, bad, 60*time.Second)
	if e := recs[realHost].lastError; !strings.Contains(e, "rules[1].paths[0]: unreadable path") {
		t.Errorf("the real agent's recorded error %q does not name the missing path's rule", e)
	}
	if got := strings.Join(f.served(t), ","); got != "central-decoy,local-canary" {
		t.Errorf("after a refused set the real agent serves %q", got)
	}
	before := f.trips(t, "central-decoy")
	cat(t, f.decoy)
	waitUntil(t, "the running central rule still tripping", func() bool { return f.trips(t, "central-decoy") > before })

	// Disabled: every agent runs the empty set, the real one stops tripping.
	rs, _ = f.save(t, false, decoyRule("central-decoy", f.decoy))
	f.waitAll(t, contract.RuleStatusApplied, f.offeredHash(t, rs), 60*time.Second)
	waitUntil(t, "the central rule gone", func() bool { return strings.Join(f.served(t), ",") == "local-canary" })
	time.Sleep(time.Second) // the old watcher's marks go asynchronously
	before = f.trips(t, "central-decoy")
	cat(t, f.decoy)
	beforeCanary := f.trips(t, "local-canary")
	cat(t, f.canary)
	// The local rule's trip shows the pipeline moved past the decoy read.
	waitUntil(t, "a local-canary trip", func() bool { return f.trips(t, "local-canary") > beforeCanary })
	if n := f.trips(t, "central-decoy"); n != before {
		t.Errorf("a disabled central rule tripped: %d rows, were %d", n, before)
	}

	// Restart during a rollout: one version goes out, the collector stops
	// part-way, the next version is saved while it is down.
	f.save(t, true, decoyRule("rollout-a", f.decoy))
	time.Sleep(30 * time.Millisecond)
	f.s.col.stop(t)
	last, _ := f.save(t, true, decoyRule("rollout-b", f.decoy))
	f.s.col = startCollectorOn(t, f.s.configs, f.s.health, f.s.env...)
	final := f.offeredHash(t, last)
	f.waitAll(t, contract.RuleStatusApplied, final, 90*time.Second)
	for i, a := range f.sims {
		got, _ := a.Applied()
		if sum := hashHex(got); sum != final {
			t.Errorf("simulated agent %d runs %.8s, want %.8s", i, sum, final)
		}
	}
	waitUntil(t, "the real agent on the last version", func() bool { return strings.Join(f.served(t), ",") == "local-canary,rollout-b" })
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func cat(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("cat", path).CombinedOutput(); err != nil {
		t.Fatalf("cat %s: %v %s", path, err, out)
	}
}

func waitUntil(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkRuleRollout: each round saves a new version of a global rule set
// and waits until all 100 simulated agents and the real agent report it
// applied; it reports the p50, p99 and max time from the save to each
// agent's report, by the database's clock, over every round. The baseline,
// measured in the same rounds, is the save → NOTIFY delivery to a plain
// LISTEN connection: the floor of any push.
func BenchmarkRuleRollout(b *testing.B) {
	f := startFleet(b, 100)
	ctx := context.Background()
	listener := dbConn(b, f.s.db)
	if _, err := listener.Exec(ctx, "LISTEN "+contract.RuleSetsChannel); err != nil {
		b.Fatal(err)
	}
	var all, real, floor []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		rs, saved := f.save(b, true, decoyRule(fmt.Sprintf("rollout-%d", i), f.decoy))
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(start))
		recs := f.waitAll(b, contract.RuleStatusApplied, f.offeredHash(b, rs), 60*time.Second)
		all = append(all, latencies(recs, saved)...)
		real = append(real, recs[realHost].appliedAt.Sub(saved))
	}
	b.StopTimer()
	for _, d := range [][]time.Duration{all, real, floor} {
		slices.Sort(d)
	}
	p99, base := quantile(all, 0.99), quantile(floor, 0.99)
	b.ReportMetric(quantile(all, 0.5).Seconds()*1000, "p50-ms")
	b.ReportMetric(p99.Seconds()*1000, "p99-ms")
	b.ReportMetric(all[len(all)-1].Seconds()*1000, "max-ms")
	b.ReportMetric(float64(p99)/float64(base), "p99/notify-p99")
	b.Logf("save → applied, %d rounds × %d agents (100 simulated + 1 real): p50 %s p99 %s max %s (goal p99 <= 5s); "+
		"the real agent p50 %s max %s; baseline save → NOTIFY at a LISTEN connection p99 %s (p99 ratio %.1f)",
		b.N, len(f.hosts), quantile(all, 0.5), p99, all[len(all)-1], quantile(real, 0.5), real[len(real)-1], base, float64(p99)/float64(base))
}

// TestCertificateRenewalWhileEventsFlow (issue 15): the real agent renews its
// client certificate over OpAMP (a CSR for a key made on the host; the
// collector signs it with the CA of opamp.yaml's renewal_pki_dir) while a
// decoy is read over and over: every read is stored exactly once, the
// certificate file holds the new certificate for the new key, and the
// collector saw events under it.
func TestCertificateRenewalWhileEventsFlow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent's fanotify watcher needs root")
	}
	s := newStackOn(t, pgtest.NewDB(t), "config.yaml", "opamp.yaml")
	const host = "renew-01"
	// Due 10 s after issue: not at the agent's first connection, but at
	// the SIGHUP below, while reads go on.
	issued, err := pki.IssueAgent(s.pki, host, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renewBefore := 2*time.Hour - 10*time.Second
	due := issued.NotAfter.Add(-renewBefore)
	s.agentExtra = fmt.Sprintf("management: {endpoint: \"wss://%s/v1/opamp\", server_name: localhost, renew_before: %s}\nwatchers: {file: fanotify}\n",
		s.opamp, renewBefore)
	dir := t.TempDir()
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := s.startAgent(t, host, "  - {name: decoy, type: file, severity: WARN, paths: ["+decoy+"]}", dir)
	certFile, _ := pki.AgentFiles(s.pki, host)

	stop := make(chan struct{})
	readsDone := make(chan int)
	go func() {
		n := 0
		defer func() { readsDone <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := exec.Command("cat", decoy).Run(); err != nil {
				t.Error(err)
				return
			}
			n++
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(time.Until(due) + 500*time.Millisecond)
	if serial := certSerial(t, certFile); serial != issued.Serial {
		t.Fatalf("renewed before it was due (serial %s)", serial)
	}
	if err := agent.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the renewed certificate", func() bool { return certSerial(t, certFile) != issued.Serial })
	time.Sleep(2 * time.Second) // reads under the new certificate
	close(stop)
	reads := <-readsDone

	db := dbConn(t, s.db)
	var stored, distinct int
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT alert_detail(host_id, seq, alert_id, event_detail)->>'process.pid')
			FROM alerts WHERE host_name = $1 AND rule_name = 'decoy'`, host).Scan(&stored, &distinct)
		if err == nil && stored >= reads {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reads stored after 60s\nagent log:\n%s", stored, reads, agent.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would land meanwhile
	db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT alert_detail(host_id, seq, alert_id, event_detail)->>'process.pid')
		FROM alerts WHERE host_name = $1 AND rule_name = 'decoy'`, host).Scan(&stored, &distinct)
	if stored != reads || distinct != reads {
		t.Errorf("%d reads: %d rows, %d distinct readers; want each once", reads, stored, distinct)
	}
	var notAfter time.Time
	if err := db.QueryRow(context.Background(), `SELECT cert_not_after FROM hosts WHERE host_name = $1`, host).Scan(&notAfter); err != nil {
		t.Fatal(err)
	}
	if !notAfter.After(issued.NotAfter.Add(time.Hour)) {
		t.Errorf("the collector's last certificate of %s expires %s: the renewed one was not used", host, notAfter)
	}
	t.Logf("%d reads, renewed at %s, every read stored once", reads, time.Since(due).Round(time.Millisecond))
	// And PostgreSQL holds exactly the events of the agent's audit chain.
	s.compareChain(t, &tripFiles{rule: "decoy", n: reads}, filepath.Join(dir, "audit.log"), agent)
}

func certSerial(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// TestEnrollWithBootstrapToken (issue 15): with the real binaries, `tripwire
// pki token HOST --dsn` issues a one-time token, `tripwire enroll` gets the
// host's first certificate with it from the collector (a key made on the
// host, only the CSR sent), a second enroll with the same token is refused
// as used, and the enrolled agent's trips are stored under its name.
func TestEnrollWithBootstrapToken(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent's fanotify watcher needs root")
	}
	s := newStackOn(t, pgtest.NewDB(t), "config.yaml", "opamp.yaml")
	const host = "enroll-01"
	bin := agentBinary(t)
	waitUntil(t, "the schema", func() bool {
		var n int
		return dbConn(t, s.db).QueryRow(context.Background(), `SELECT count(*) FROM pki_bootstrap_tokens`).Scan(&n) == nil
	})
	tok, err := exec.Command(bin, "pki", "token", "--dsn", s.db, "--ttl", "5m", host).Output()
	if err != nil {
		t.Fatalf("pki token: %v", err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, tok, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.AgentFiles(s.pki, host)
	enroll := func(cert, key string) (string, error) {
		out, err := exec.Command(bin, "enroll", "--endpoint", "wss://"+s.opamp+"/v1/opamp", "--ca", filepath.Join(s.pki, pki.CACertFile),
			"--server-name", "localhost", "--host", host, "--token-file", tokenFile, "--cert", cert, "--key", key).CombinedOutput()
		return string(out), err
	}
	if out, err := enroll(cert, key); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if out, err := enroll(filepath.Join(dir, "again.crt"), filepath.Join(dir, "again.key")); err == nil || !strings.Contains(out, "already used") {
		t.Errorf("a reused token: %v\n%s", err, out)
	}
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// startAgent finds the enrolled certificate where it would have issued one.
	s.startAgent(t, host, "  - {name: decoy, type: file, severity: WARN, paths: ["+decoy+"]}", dir)
	cat(t, decoy)
	db := dbConn(t, s.db)
	waitUntil(t, "the enrolled agent's trip", func() bool {
		var n int
		return db.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE host_name = $1 AND rule_name = 'decoy'`, host).Scan(&n) == nil && n > 0
	})
}
