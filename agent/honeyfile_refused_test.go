package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/agent/health"
)

// A local user who owns the directory a decoy goes into swaps it for a
// symlink. The decoy is refused (planting there would follow her link), but
// that must not stop the agent: every other rule is watched, and /healthz
// says degraded and names the rule that is not served.
func TestRefusedDecoyDoesNotBlindTheAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify and to act as another user")
	}
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home, secret := filepath.Join(base, "home"), filepath.Join(base, "secret")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "ln", "-s", "/etc", filepath.Join(home, ".aws"))
	if out, err := ln.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	decoy := filepath.Join(home, ".aws", "credentials")
	rules := fmt.Sprintf("rules:\n%s  - {name: aws-decoy, type: file, severity: CRITICAL, paths: [%s], plant: {content: \"[default]\\n\"}}\n",
		fileRule("secret-read", secret), decoy)
	cfg := loadConfig(t, base, rules)
	ag, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, nil) }()
	var rep health.Report
	waitFor(t, "health or a failed start", func() bool {
		select {
		case err := <-runErr:
			runErr <- err
			return true
		default:
		}
		rep, err = health.Fetch(context.Background(), ag.HealthAddress())
		return err == nil
	})
	select {
	case err := <-runErr:
		t.Fatalf("the agent did not start: %v", err)
	default:
	}
	defer func() { cancel(); <-runErr }()
	if _, err := os.Lstat("/etc/credentials"); err == nil {
		t.Error("a decoy was planted in /etc")
	}
	if rep.Status != health.StatusDegraded || len(rep.Unserved) != 1 || !strings.Contains(rep.Unserved[0], `"aws-decoy"`) {
		t.Errorf("health %s, unserved %q; want degraded naming aws-decoy", rep.Status, rep.Unserved)
	}
	catFile(t, secret)
	waitFor(t, "a trip of the other rule", func() bool { return countRule(t, base, "secret-read", secret) > 0 })
}
