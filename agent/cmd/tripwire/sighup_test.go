package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/health"
)

// TestSIGHUPReloadsRules: the real binary reloads its rules on SIGHUP,
// keeps them when the new file is invalid, and SIGTERM drains with exit 0.
func TestSIGHUPReloadsRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
	bin, err := exec.LookPath("tripwire")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"a", "b"} {
		writeFile(t, filepath.Join(dir, f), "x")
	}
	addr := filepath.Join(dir, "health.sock")
	conf := filepath.Join(dir, "agent.yaml")
	write := func(rule, path string) {
		writeFile(t, conf, fmt.Sprintf("rules:\n  - {name: %s, type: file, severity: WARN, paths: [%s]}\nspool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\nhealth: {socket: \"%s\"}\n",
			rule, path, dir, dir, addr))
	}
	rules := func() string {
		r, err := health.Fetch(context.Background(), addr)
		if err != nil || len(r.Watchers) == 0 {
			return ""
		}
		return strings.Join(r.Watchers[0].Rules, ",")
	}
	write("rule-a", filepath.Join(dir, "a"))
	agent := startAgent(t, bin, conf, addr, filepath.Join(dir, "agent.log"))
	if got := rules(); got != "rule-a" {
		t.Fatalf("rules %q before reload", got)
	}

	write("rule-b", filepath.Join(dir, "b"))
	if err := agent.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "rule-b after SIGHUP", func() bool { return rules() == "rule-b" })

	writeFile(t, conf, "rules: [{name: broken}]\n")
	if err := agent.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the invalid config to be logged", func() bool {
		return strings.Contains(readLog(dir, "agent.log"), "SIGHUP: config invalid; keeping the running rules")
	})
	if got := rules(); got != "rule-b" {
		t.Errorf("an invalid reload changed the rules to %q", got)
	}

	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, readLog(dir, "agent.log"))
	}
	if log := readLog(dir, "agent.log"); !strings.Contains(log, `"msg":"drained"`) || !strings.Contains(log, `"msg":"rules reloaded"`) {
		t.Errorf("log lacks the reload or the drain:\n%s", log)
	}
}
