// Package collector holds the tripwire-collector distribution (the OCB
// manifest builder-config.yaml, build.sh, the example config.yaml) and its
// tests, which run the real built binary.
package collector

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tripwire-sec/tripwire/internal/pki"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildLog  []byte
)

// collectorBinary builds bin/tripwire-collector with build.sh (once per test
// binary) and returns its path. TRIPWIRE_COLLECTOR_BIN names a prebuilt one
// instead.
func collectorBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TRIPWIRE_COLLECTOR_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		cmd := exec.Command("./build.sh")
		buildLog, buildErr = cmd.CombinedOutput()
		binPath, _ = filepath.Abs("../bin/tripwire-collector")
	})
	if buildErr != nil {
		t.Fatalf("building tripwire-collector: %v\n%s", buildErr, buildLog)
	}
	return binPath
}

// pkiDir makes a CA and a server certificate for the collector.
func pkiDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.IssueServer(dir, []string{"localhost", "127.0.0.1"}, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runCollector(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(collectorBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestExampleConfigValidates checks that the shipped config.yaml, alone and
// with forward.yaml layered on, is accepted by the built distribution: every
// component it names is in the manifest and every setting parses and
// validates.
func TestExampleConfigValidates(t *testing.T) {
	env := []string{
		"TRIPWIRE_PKI_DIR=" + pkiDir(t),
		"TRIPWIRE_QUEUE_DIR=" + t.TempDir(),
		"TRIPWIRE_PG_DSN=postgres://tripwire@127.0.0.1:5432/tripwire",
		"TRIPWIRE_FORWARD_ENDPOINT=siem.example:4317",
	}
	for _, args := range [][]string{
		{"--config", "config.yaml"},
		{"--config", "config.yaml", "--config", "forward.yaml"},
		{"--config", "config.yaml", "--config", "opamp.yaml"},
	} {
		out, err := runCollector(t, env, append([]string{"validate"}, args...)...)
		if err != nil {
			t.Fatalf("validate %v: %v\n%s", args, err, out)
		}
	}
}

// TestBuiltReceiverValidatesItsConfig proves the binary carries TripWire's
// receiver, with its own Validate: a config without a client CA is refused
// with the receiver's message.
func TestBuiltReceiverValidatesItsConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	err := os.WriteFile(cfg, []byte(`
receivers:
  tripwire:
    endpoint: 127.0.0.1:0
    tls:
      cert_file: server.crt
      key_file: server.key
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [tripwire]
      exporters: [debug]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCollector(t, nil, "validate", "--config", cfg)
	if err == nil {
		t.Fatalf("validate accepted a tripwire receiver without client_ca_file:\n%s", out)
	}
	if !strings.Contains(out, "tls.client_ca_file is required") {
		t.Fatalf("validate output does not name the missing client CA:\n%s", out)
	}
}

// TestComponents checks the build has every component the manifest promises,
// of the right kind.
func TestComponents(t *testing.T) {
	out, err := runCollector(t, nil, "components")
	if err != nil {
		t.Fatalf("components: %v\n%s", err, out)
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("parsing components output: %v\n%s", err, out)
	}
	want := map[string][]string{
		"receivers":  {"tripwire", "otlp"},
		"exporters":  {"tripwire", "debug", "otlp_grpc", "otlp_http"},
		"processors": {"memory_limiter", "batch"},
		"extensions": {"file_storage", "health_check", "tripwire_opamp"},
	}
	for kind, names := range want {
		list, _ := got[kind].([]any)
		have := map[string]bool{}
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				have[fmt.Sprint(m["name"])] = true
			}
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s: %s missing from the build (have %v)", kind, n, have)
			}
		}
	}
}
