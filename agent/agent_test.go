package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// burst is a watcher that emits n distinct trips, one per millisecond. It
// stands in for a mechanism only to generate load at a known count; the
// file rules in these tests are served by the real fanotify watcher.
type burst struct {
	n    int
	done chan struct{}
}

// fileMechanisms: the file watcher picks the best this host runs.
var fileMechanisms = []string{watcher.MechanismEBPF, watcher.MechanismEBPFLSM, watcher.MechanismEBPFSyscall,
	watcher.MechanismFanotify, watcher.MechanismFsnotify}

func (b *burst) Kind() string      { return "file" }
func (b *burst) Mechanism() string { return "test_burst" }
func (b *burst) Missing() []string { return nil }
func (b *burst) Start(ctx context.Context, sink watcher.Sink) error {
	go func() {
		defer close(b.done)
		for i := 0; i < b.n; i++ {
			sink.Trip(&event.Event{Name: event.FileAccess, Severity: event.SeverityInfo, Rule: "burst",
				Time: time.Now(), File: &event.File{Path: fmt.Sprintf("/burst/%d", i)}})
			time.Sleep(time.Millisecond)
		}
	}()
	return nil
}

func loadConfig(t *testing.T, dir, rules string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "agent.yaml")
	conf := rules + fmt.Sprintf("\nspool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\nhealth: {socket: %s/health.sock}\n", dir, dir, dir)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fileRule(name, path string) string {
	return fmt.Sprintf("  - {name: %s, type: file, severity: CRITICAL, paths: [%s]}\n", name, path)
}

// TestReloadKeepsQueuedEvents reloads the rules (SIGHUP's path) while a burst
// of trips is flowing: the new rule trips, /healthz shows only it, and
// every trip of the burst is chained and spooled exactly once. (That the old
// rule no longer trips is not asserted: the old watcher releases its marks
// asynchronously after it is cancelled, and waiting for that is timing.)
func TestReloadKeepsQueuedEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
	dir := t.TempDir()
	a1, b1 := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a1, b1} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := loadConfig(t, dir, "rules:\n"+fileRule("rule-a", a1))
	const n = 2000
	b := &burst{n: n, done: make(chan struct{})}
	ag, err := New(cfg, Options{Version: "test", ExtraWatchers: []watcher.Watcher{b}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan *config.Config)
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, reload) }()
	addr := ag.HealthAddress()
	waitFor(t, "health", func() bool { _, err := health.Fetch(context.Background(), addr); return err == nil })

	// /healthz names both watchers; /metrics has the agent's counters.
	rep, err := health.Fetch(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != health.StatusOK || len(rep.Watchers) != 2 || !slices.Contains(fileMechanisms, rep.Watchers[0].Mechanism) ||
		rep.Watchers[0].Rules[0] != "rule-a" || rep.Watchers[1].Mechanism != "test_burst" {
		t.Errorf("healthz %+v", rep)
	}
	fileMech := rep.Watchers[0].Mechanism
	// rule-a trips before the reload.
	// cat, not os.ReadFile: the agent never reports its own accesses.
	catFile(t, a1)
	waitFor(t, "a trip of rule-a", func() bool { return countRule(t, dir, "rule-a", a1) > 0 })

	reload <- loadConfig(t, dir, "rules:\n"+fileRule("rule-b", b1))
	waitFor(t, "the reload", func() bool {
		r, err := health.Fetch(context.Background(), addr)
		return err == nil && len(r.Watchers) == 2 && len(r.Watchers[0].Rules) == 1 && r.Watchers[0].Rules[0] == "rule-b"
	})
	catFile(t, b1)
	waitFor(t, "a trip of rule-b", func() bool { return countRule(t, dir, "rule-b", b1) > 0 })
	<-b.done

	metrics, _, err := health.Get(context.Background(), addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tripwire_agent_events_total{rule="burst",type="file"}`, "tripwire_agent_spool_depth", `tripwire_agent_watchers{kind="file",mechanism="` + fileMech + `"} 1`,
		`tripwire_agent_watcher_counter{kind="file",mechanism="` + fileMech + `",name=`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	paths := map[string]int{}
	rep2, err := auditchain.VerifyFile(filepath.Join(dir, "state", "audit.log"), nil)
	if err != nil || rep2.Break != nil {
		t.Fatalf("chain: %v %v", err, rep2.Break)
	}
	sp, err := spool.Open(spool.Options{Path: filepath.Join(dir, "state", "spool.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	items, err := sp.Oldest(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(items)) != rep2.LastSeq {
		t.Errorf("spool holds %d events, chain %d", len(items), rep2.LastSeq)
	}
	for _, it := range items {
		if it.Event.Rule == "burst" {
			paths[it.Event.File.Path]++
		}
	}
	for i := 0; i < n; i++ {
		if c := paths[fmt.Sprintf("/burst/%d", i)]; c != 1 {
			t.Fatalf("burst trip %d spooled %d times, want once", i, c)
		}
	}
}

func catFile(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("cat", path).CombinedOutput(); err != nil {
		t.Fatalf("cat %s: %v %s", path, err, out)
	}
}

// countRule counts chained events of rule on path (reading the audit log).
func countRule(t *testing.T, dir, rule, path string) int {
	n := 0
	err := auditchain.ReadEntries(filepath.Join(dir, "state", "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Rule == rule && e.File != nil && e.File.Path == path {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartWithAWatcherThatCannotStart: a rule that cannot be watched is
// reported as unserved (healthz, a CRITICAL status event) and the agent runs
// on: one config serves a fleet whose hosts cannot all serve every rule.
func TestStartWithAWatcherThatCannotStart(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "s")
	if err := os.WriteFile(sec, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, dir, "rules:\n"+fileRule("s", sec)+"watchers: {file: fanotify}\n")
	if err := os.Remove(sec); err != nil { // gone between validate and start
		t.Fatal(err)
	}
	ag := runAgent(t, cfg, Options{})
	rep := ag.waitStatus(t, dir, health.StatusDegraded, `unserved: file rule "s"`, event.SeverityCritical)
	if len(rep.Watchers) != 0 || len(rep.Unserved) != 1 {
		t.Errorf("healthz %+v", rep)
	}
}

// TestFsnotifyEventsSayWhatIsMissing forces the fsnotify fallback: a write
// to a watched file is chained with the mechanism and the fields fsnotify
// cannot fill, and /healthz shows the same.
func TestFsnotifyEventsSayWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "watched")
	if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, dir, "rules:\n"+fileRule("w", f)+"watchers: {file: fsnotify}\n")
	ag, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx, nil) }()
	waitFor(t, "health", func() bool { _, err := health.Fetch(context.Background(), ag.HealthAddress()); return err == nil })
	rep, _ := health.Fetch(context.Background(), ag.HealthAddress())
	if len(rep.Watchers) != 1 || rep.Watchers[0].Mechanism != "fsnotify" || !slices.Contains(rep.Watchers[0].Missing, "process.pid") {
		t.Errorf("healthz watchers %+v", rep.Watchers)
	}
	if out, err := exec.Command("sh", "-c", "echo more >> "+f).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var got *event.Event
	waitFor(t, "a trip of rule w", func() bool {
		_ = auditchain.ReadEntries(filepath.Join(dir, "state", "audit.log"), 1, func(en auditchain.Entry) error {
			if e, err := event.ParseCanonical(en.Payload); err == nil && e.Rule == "w" {
				got = e
			}
			return nil
		})
		return got != nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got.Mechanism != "fsnotify" || !slices.Contains(got.Missing, "process.pid") || (got.Process != nil && got.Process.PID != 0) {
		t.Errorf("fsnotify event %s", got.Canonical())
	}
}
