package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// TestShipperWiring starts the agent with a transport whose collector is
// down: the agent runs, keeps events in the spool, and the shipper's metrics
// are on the agent's /metrics.
func TestShipperWiring(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	for _, args := range [][]string{{"init", "--dir", pkiDir}, {"issue-agent", "web-01", "--dir", pkiDir}} {
		var out strings.Builder
		if code := pki.Main(args, &out, &out); code != 0 {
			t.Fatalf("pki %v: %d %s", args, code, out.String())
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "agent.yaml")
	body := fmt.Sprintf(`host: {name: web-01}
transport:
  endpoint: %s
  ca: pki/ca.crt
  cert: pki/agents/web-01.crt
  key: pki/agents/web-01.key
spool: {path: state/spool.db}
audit: {path: state/audit.log}
health: {socket: health.sock}
`, dead)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	waitFor(t, "health", func() bool {
		r, err := health.Fetch(context.Background(), a.HealthAddress())
		return err == nil && r.SpoolDepth >= 1 // the agent.start event waits in the spool
	})
	// The shipper registers its metrics when Run starts it, which may be just
	// after /healthz first answers.
	metrics := func() string {
		m, _, err := health.Get(context.Background(), a.HealthAddress(), "/metrics")
		if err != nil {
			return ""
		}
		return string(m)
	}
	waitFor(t, "the shipper's metrics on the agent's registry", func() bool {
		return strings.Contains(metrics(), "tripwire_shipper_")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
