package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
)

// An agent started with the default health settings must not tell a local
// user its rule names or whether a trip fired: nobody asks /healthz and
// /metrics wherever the agent serves them by default.
func TestHealthHiddenFromLocalUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify and to act as another user")
	}
	dir := t.TempDir()
	decoy := filepath.Join(dir, "decoy")
	if err := os.WriteFile(decoy, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "agent.yaml")
	conf := "rules:\n" + fileRule("secret-decoy-rule", decoy) +
		fmt.Sprintf("spool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\n", dir, dir)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, nil) }()
	defer func() { cancel(); <-runErr }()
	catFile(t, decoy)
	endpoint := ag.HealthAddress()
	for _, path := range []string{"/healthz", "/metrics"} {
		args := []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "curl", "-s", "--max-time", "5"}
		if strings.HasPrefix(endpoint, "/") {
			args = append(args, "--unix-socket", endpoint, "http://agent"+path)
		} else {
			args = append(args, "http://"+endpoint+path)
		}
		var body []byte
		var curlErr error
		waitFor(t, "an answer or a refusal", func() bool {
			out, err := exec.Command("setpriv", args...).Output()
			body, curlErr = out, err
			// curl: 7 cannot connect, 22 HTTP error; 0 with a body is an answer.
			return err != nil || strings.Contains(string(out), "secret-decoy-rule") || strings.Contains(string(out), "tripwire_agent_events_total")
		})
		if strings.Contains(string(body), "secret-decoy-rule") {
			t.Errorf("nobody read %s at %s: it names the rule", path, endpoint)
		} else {
			t.Logf("nobody asking %s at %s: %v", path, endpoint, curlErr)
		}
	}
	// The agent does serve it, to root.
	if r, err := health.Fetch(context.Background(), endpoint); err != nil || len(r.Watchers) == 0 || r.Watchers[0].Rules[0] != "secret-decoy-rule" {
		t.Errorf("root reading health at %s: %+v %v", endpoint, r, err)
	}
}
