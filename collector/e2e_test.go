package collector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
	agentLog  []byte
)

// agentBinary builds the real agent (go build ./agent/cmd/tripwire) once per
// test binary. TRIPWIRE_AGENT_BIN names a prebuilt one instead.
func agentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TRIPWIRE_AGENT_BIN"); p != "" {
		return p
	}
	agentOnce.Do(func() {
		// Under _build (gitignored), rebuilt each run: Go's cache makes that
		// quick, and nothing is left in /tmp.
		agentBin, agentErr = filepath.Abs("_build/e2e-agent/tripwire")
		if agentErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", agentBin, "github.com/tripwire-sec/tripwire/agent/cmd/tripwire")
		agentLog, agentErr = cmd.CombinedOutput()
	})
	if agentErr != nil {
		t.Fatalf("building the agent: %v\n%s", agentErr, agentLog)
	}
	return agentBin
}

// stack is one collector (the shipped config files) on a fresh database,
// with a PKI and a forward sink, ready for agents.
type stack struct {
	pki      string
	db       string
	endpoint string
	opamp    string // the OpAMP server's address (opamp.yaml)
	col      *collectorProc
	sink     *otlpSink
	env      []string
	health   int
	queue    string
	configs  []string // the shipped config files, layered
	// agentExtra is appended to every agent config startAgent writes.
	agentExtra string
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackOn(t, pgtest.NewDB(t))
}

// agentProc is a running agent.
type agentProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

// startAgent issues a certificate for host if needed, writes an agent config
// with the given rules YAML, starts the agent and waits for its /healthz.
func (s *stack) startAgent(t testing.TB, host, rules string, dir string) *agentProc {
	t.Helper()
	a, _ := s.launchAgent(t, host, dir, func(certFile, keyFile, healthSock string) string {
		return fmt.Sprintf(`
host:
  name: %s
rules:
%s
transport:
  endpoint: %s
  ca: %s
  cert: %s
  key: %s
  server_name: localhost
spool: {path: %s}
audit: {path: %s}
health: {socket: "%s"}
heartbeat_interval: 5s
%s
`, host, rules, s.endpoint, filepath.Join(s.pki, pki.CACertFile), certFile, keyFile,
			filepath.Join(dir, "spool.db"), filepath.Join(dir, "audit.log"), healthSock, s.agentExtra)
	})
	return a
}

// launchAgent issues a certificate for certHost if needed, writes the agent
// config that config makes from the certificate, key and health socket paths
// into dir, starts the agent and waits for its /healthz.
func (s *stack) launchAgent(t testing.TB, certHost, dir string, config func(certFile, keyFile, healthSock string) string) (*agentProc, string) {
	t.Helper()
	certFile, keyFile := pki.AgentFiles(s.pki, certHost)
	if _, err := os.Stat(certFile); err != nil {
		if _, err := pki.IssueAgent(s.pki, certHost, 0); err != nil {
			t.Fatal(err)
		}
	}
	healthSock := filepath.Join(dir, "health.sock")
	conf := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(conf, []byte(config(certFile, keyFile, healthSock)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{log: &syncBuffer{}, done: make(chan error, 1)}
	a.cmd = exec.Command(agentBinary(t), "start", "--config", conf)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() { a.stop(t) })
	waitAgentHealthy(t, healthSock, a)
	return a, healthSock
}

// waitAgentHealthy waits until the agent answers /healthz on its socket.
func waitAgentHealthy(t testing.TB, socket string, a *agentProc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := health.Fetch(context.Background(), socket); err == nil {
			return
		}
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("agent exited during start: %v\n%s", err, a.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not healthy after 60s:\n%s", a.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *agentProc) stop(t testing.TB) {
	select {
	case err := <-a.done:
		a.done <- err
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		err := <-a.done
		a.done <- err
		t.Errorf("agent did not stop on SIGTERM within 30s:\n%s", a.log.String())
	}
}

func dbConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestEndToEndFileRead: the real agent watches a file, `cat` reads it, and the
// trip lands in PostgreSQL through the real OCB-built collector as an alert
// row with the path, the reader's PID and user, the host name from the
// certificate, and the rule's severity; with forward.yaml layered on, the
// same events also reach a second OTLP endpoint.
func TestEndToEndFileRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent's fanotify watcher needs root")
	}
	s := newStackOn(t, pgtest.NewDB(t), "config.yaml", "forward.yaml")
	dir := t.TempDir()
	secret := filepath.Join(dir, "payroll.csv")
	if err := os.WriteFile(secret, []byte("name,salary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := s.startAgent(t, "e2e-web-01", fmt.Sprintf(`
  - name: payroll
    type: file
    severity: CRITICAL
    paths: [%s]
`, secret), dir)

	cat := exec.Command("cat", secret)
	start := time.Now()
	if out, err := cat.CombinedOutput(); err != nil {
		t.Fatalf("cat: %v\n%s", err, out)
	}
	pid := cat.Process.Pid

	db := dbConn(t, s.db)
	var (
		host, severity, rule, path, user, eventName string
		gotPID                                      int64
		latency                                     time.Duration
	)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := db.QueryRow(ctx, `
			SELECT host_name, severity, rule_name, event_name,
			       alert_detail(host_id, seq, alert_id, event_detail)->>'file.path', (alert_detail(host_id, seq, alert_id, event_detail)->>'process.pid')::bigint,
			       coalesce(alert_detail(host_id, seq, alert_id, event_detail)->>'process.user.name', ''), received_at - event_time
			FROM alerts
			WHERE host_name = 'e2e-web-01' AND tripwire_type = 'file'
			  AND (alert_detail(host_id, seq, alert_id, event_detail)->>'process.pid')::bigint = $1
			ORDER BY event_time LIMIT 1`, pid).
			Scan(&host, &severity, &rule, &eventName, &path, &gotPID, &user, &latency)
		cancel()
		if err == nil {
			break
		}
		if err != pgx.ErrNoRows && ctx.Err() == nil {
			// Tables appear when the exporter has migrated; keep polling.
			t.Logf("query: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert row for cat (pid %d) after 60s\nagent log:\n%s\ncollector log:\n%s",
				pid, agent.log.String(), s.col.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("alert row after %s (event_time → received_at %s)", time.Since(start).Round(time.Millisecond), latency)
	if host != "e2e-web-01" || severity != "CRITICAL" || rule != "payroll" || path != secret || gotPID != int64(pid) || user != "root" {
		t.Errorf("alert row: host %q severity %q rule %q path %q pid %d user %q; want e2e-web-01 CRITICAL payroll %s %d root",
			host, severity, rule, path, gotPID, user, secret, pid)
	}
	if eventName != "tripwire.file.access" && eventName != "tripwire.file.open" {
		t.Errorf("event_name %q, want a file access", eventName)
	}

	// The host row carries the identity the receiver bound.
	var ip string
	var notAfter time.Time
	err := db.QueryRow(context.Background(),
		`SELECT host(ip_address), cert_not_after FROM hosts WHERE host_name = 'e2e-web-01'`).Scan(&ip, &notAfter)
	if err != nil {
		t.Fatalf("hosts row: %v", err)
	}
	if ip != "127.0.0.1" || notAfter.IsZero() {
		t.Errorf("hosts row: ip %q cert_not_after %s", ip, notAfter)
	}

	// The second pipeline forwarded the same events.
	deadline = time.Now().Add(30 * time.Second)
	for s.sink.records() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing forwarded to the second OTLP endpoint")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
