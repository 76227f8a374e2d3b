package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// criticalBurst emits n distinct CRITICAL trips at once: only CRITICAL
// events can push the spool over its limit (the others are shed).
type criticalBurst struct{ n int }

func (b *criticalBurst) Kind() string      { return "file" }
func (b *criticalBurst) Mechanism() string { return "test_burst" }
func (b *criticalBurst) Missing() []string { return nil }
func (b *criticalBurst) Start(ctx context.Context, sink watcher.Sink) error {
	for i := 0; i < b.n; i++ {
		sink.Trip(&event.Event{Name: event.FileAccess, Severity: event.SeverityCritical, Rule: "burst",
			Time: time.Now(), File: &event.File{Path: fmt.Sprintf("/burst/%d", i)}})
	}
	return nil
}

func writeConfig(t *testing.T, dir, body string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type runningAgent struct {
	*Agent
	reload chan *config.Config
}

func runAgent(t *testing.T, cfg *config.Config, opts Options) runningAgent {
	t.Helper()
	opts.Version = "test"
	ag, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan *config.Config)
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx, reload) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "health", func() bool { _, err := health.Fetch(context.Background(), ag.HealthAddress()); return err == nil })
	return runningAgent{ag, reload}
}

func (r runningAgent) health(t *testing.T) health.Report {
	t.Helper()
	rep, err := health.Fetch(context.Background(), r.HealthAddress())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// waitStatus waits for /healthz to say status with a reason containing
// reason (any reasons for "ok"), and for the matching status event.
func (r runningAgent) waitStatus(t *testing.T, dir, status, reason string, sev event.Severity) health.Report {
	t.Helper()
	var rep health.Report
	deadline := time.Now().Add(10 * time.Second)
	waitFor(t, status+" "+reason, func() bool {
		rep = r.health(t)
		if time.Now().After(deadline) {
			t.Fatalf("no %s %q in /healthz: %+v", status, reason, rep)
		}
		return rep.Status == status && (reason == "" || strings.Contains(strings.Join(rep.Reasons, "\n"), reason))
	})
	want := event.StatusOnline
	if status == health.StatusDegraded {
		want = event.StatusDegraded
	}
	waitFor(t, "a chained "+want+" status event of severity "+sev.String(), func() bool {
		evs := chained(t, dir, func(e *event.Event) bool {
			return e.Name == event.AgentStatus && e.Agent.Status == want && e.Severity == sev &&
				strings.Contains(e.Agent.Reasons, reason)
		})
		return len(evs) > 0
	})
	return rep
}

// TestDegradedReasons takes a real agent through each reason to be DEGRADED
// and back: a rule left unserved (a honeyport another user holds, CRITICAL),
// a file rule served by fsnotify (no reads, no actor), the spool over its
// limit, and shipping failing longer than transport.degraded_after.
func TestDegradedReasons(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
	dir := t.TempDir()
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().(*net.TCPAddr).Port
	state := fmt.Sprintf("spool: {path: %s/state/spool.db, max_events: 100}\naudit: {path: %s/state/audit.log}\nhealth: {socket: %s/health.sock}\n", dir, dir, dir)
	rules := "rules:\n" + fileRule("decoy", decoy)

	// Unserved and lacking at start: the agent runs anyway.
	ag := runAgent(t, writeConfig(t, dir, rules+honeyportRule("pg", busy)+"watchers: {file: fsnotify}\n"+state), Options{})
	rep := ag.waitStatus(t, dir, health.StatusDegraded, `unserved: network rule "pg"`, event.SeverityCritical)
	if !strings.Contains(strings.Join(rep.Reasons, "\n"), "lacking: file rules decoy are served by fsnotify") {
		t.Errorf("reasons lack the fsnotify one: %q", rep.Reasons)
	}
	// The honeyport runs, holding no socket, and tries the port again.
	if len(rep.Watchers) != 2 || rep.Watchers[0].Mechanism != "fsnotify" || rep.Watchers[1].Mechanism != "honeyport" || len(rep.Unserved) != 1 {
		t.Errorf("degraded agent: watchers %+v unserved %q", rep.Watchers, rep.Unserved)
	}

	// A reload that serves every rule with what it needs: ONLINE again.
	free := freePort(t, "tcp")
	ag.reload <- writeConfig(t, dir, rules+honeyportRule("pg", free)+"watchers: {file: fanotify}\n"+state)
	ag.waitStatus(t, dir, health.StatusOK, "", event.SeverityInfo)

	// The spool over its limit: only CRITICAL events, more than max_events.
	ag2dir := t.TempDir()
	state2 := strings.ReplaceAll(state, dir, ag2dir)
	ag2 := runAgent(t, writeConfig(t, ag2dir, state2), Options{ExtraWatchers: []watcher.Watcher{&criticalBurst{n: 150}}})
	ag2.waitStatus(t, ag2dir, health.StatusDegraded, "spool: over its limit", event.SeverityWarn)
	// Acknowledge as a shipper would: the spool drains below its limit.
	items, err := ag2.Spool().Oldest(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if err := ag2.Spool().Delete(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	ag2.waitStatus(t, ag2dir, health.StatusOK, "", event.SeverityInfo)

	// Shipping to a collector that is down for longer than degraded_after.
	ag3dir := t.TempDir()
	pkiDir := filepath.Join(ag3dir, "pki")
	for _, args := range [][]string{{"init", "--dir", pkiDir}, {"issue-agent", "web-01", "--dir", pkiDir}} {
		var out strings.Builder
		if code := pki.Main(args, &out, &out); code != 0 {
			t.Fatalf("pki %v: %d %s", args, code, out.String())
		}
	}
	dead := freePort(t, "tcp")
	transport := fmt.Sprintf("transport: {endpoint: 127.0.0.1:%d, ca: pki/ca.crt, cert: pki/agents/web-01.crt, key: pki/agents/web-01.key, degraded_after: 1s}\n", dead)
	ag3 := runAgent(t, writeConfig(t, ag3dir, transport+strings.ReplaceAll(state, dir, ag3dir)), Options{})
	ag3.waitStatus(t, ag3dir, health.StatusDegraded, "shipping: the collector has not acknowledged anything for more than 1s", event.SeverityWarn)
}

func honeyportRule(name string, port int) string {
	return fmt.Sprintf("  - {name: %s, type: network, mode: honeyport, severity: CRITICAL, ports: [%d]}\n", name, port)
}

// chained returns the events of the audit log that pred accepts.
func chained(t *testing.T, dir string, pred func(*event.Event) bool) []*event.Event {
	t.Helper()
	var out []*event.Event
	err := auditchain.ReadEntries(filepath.Join(dir, "state", "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err == nil && pred(e) {
			out = append(out, e)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func servedRules(r health.Report) []string {
	var out []string
	for _, w := range r.Watchers {
		out = append(out, w.Rules...)
	}
	slices.Sort(out)
	return out
}

// TestSquattedHoneyportBindsWithoutReload: a decoy port another process
// holds at start leaves its rule unserved (DEGRADED, CRITICAL) while the
// honeyport tries it again; once the squatter goes, the port binds without
// a reload and the agent is ONLINE again.
func TestSquattedHoneyportBindsWithoutReload(t *testing.T) {
	dir := t.TempDir()
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().(*net.TCPAddr).Port
	state := fmt.Sprintf("audit: {path: %s/state/audit.log}\nspool: {path: %s/state/spool.db}\nhealth: {socket: %s/health.sock}\n", dir, dir, dir)
	ag := runAgent(t, writeConfig(t, dir, "rules:\n"+honeyportRule("pg", busy)+state), Options{})
	rep := ag.waitStatus(t, dir, health.StatusDegraded, `unserved: network rule "pg"`, event.SeverityCritical)
	if len(rep.Unserved) != 1 || !strings.Contains(rep.Unserved[0], "tried again every") {
		t.Errorf("unserved %q", rep.Unserved)
	}
	held.Close()
	ag.waitStatus(t, dir, health.StatusOK, "", event.SeverityInfo)
	if rep := ag.health(t); len(rep.Unserved) != 0 {
		t.Errorf("ONLINE with unserved %q", rep.Unserved)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy)))
	if err != nil {
		t.Fatalf("the freed decoy port does not answer: %v", err)
	}
	conn.Close()
	waitFor(t, "a chained trip on the freed port", func() bool {
		return len(chained(t, dir, func(e *event.Event) bool {
			return e.Name == event.NetworkConnection && e.Network.DestinationPort == int64(busy)
		})) > 0
	})
}
