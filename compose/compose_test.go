// Package compose holds the Docker Compose file for the central stack. No
// Docker engine runs on the machines these tests run on, so the tests check
// the nearest real contracts: `docker compose config` (or docker-compose v1
// where the v2 plugin is missing) accepts the file; the collector and
// Grafana configuration it mounts are the files the other tests exercise
// (collector/config.yaml, dashboards/); and the collector, started as the
// image's user with the mounts' ownership and modes, comes up and stores an
// event (collector_uid_test.go).
package compose

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type resolved struct {
	Services map[string]service `yaml:"services"`
}

type service struct {
	Volumes     []volume          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	Command     []string          `yaml:"command"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// volume is a mount as either tool prints it: docker-compose v1 as
// SOURCE:TARGET[:MODE], Compose v2 in the long form.
type volume struct {
	Type, Source, Target string
	ReadOnly             bool
}

func (v *volume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 {
			return fmt.Errorf("volume %q: want SOURCE:TARGET", n.Value)
		}
		v.Source, v.Target = parts[0], parts[1]
		v.ReadOnly = len(parts) > 2 && strings.Contains(parts[2], "ro")
		v.Type = "bind"
		if !filepath.IsAbs(v.Source) {
			v.Type = "volume"
		}
		return nil
	}
	var long struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	*v = volume{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly}
	return nil
}

// composeCommand is `docker compose` (Compose v2, the Compose Specification)
// when the docker CLI has the plugin, else docker-compose v1.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if docker, err := exec.LookPath("docker"); err == nil {
		if exec.Command(docker, "compose", "version").Run() == nil {
			return []string{docker, "compose"}
		}
	}
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("neither `docker compose` nor docker-compose found: apt-get install docker-compose (.ci/run does)")
	}
	return []string{bin}
}

func composeConfig(t *testing.T) resolved {
	t.Helper()
	c := composeCommand(t)
	cmd := exec.Command(c[0], append(c[1:], "-f", "docker-compose.yml", "config")...)
	cmd.Env = append(os.Environ(), "TRIPWIRE_PG_PASSWORD=test-password", "TRIPWIRE_PG_READER_PASSWORD=test-reader-password",
		"TRIPWIRE_OIDC_CLIENT_SECRET=test-secret")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("docker-compose config rejected the file: %v\n%s", err, stderr)
	}
	var r resolved
	if err := yaml.Unmarshal(out, &r); err != nil {
		t.Fatalf("parsing docker-compose config output: %v", err)
	}
	return r
}

func TestComposeConfigValid(t *testing.T) {
	r := composeConfig(t)
	for _, name := range []string{"postgres", "collector", "grafana", "dex"} {
		s, ok := r.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		// depends_on: service_healthy needs one, and so does an operator.
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
}

// TestComposeSecrets: the network-facing collector sees no CA key and no
// agent key, only its own directory of the PKI, read-only; Grafana reads
// PostgreSQL as the read-only role; nothing secret enters the build context.
func TestComposeSecrets(t *testing.T) {
	r := composeConfig(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(repo, "compose/pki")
	for name, s := range r.Services {
		for _, v := range s.Volumes {
			if v.Type != "bind" || (v.Source != pki && !strings.HasPrefix(v.Source, pki+"/")) {
				continue
			}
			if name != "collector" || v.Source != filepath.Join(pki, "collector") || !v.ReadOnly {
				t.Errorf("%s mounts %s at %s (read-only %v): only the collector may mount compose/pki/collector, read-only",
					name, v.Source, v.Target, v.ReadOnly)
			}
		}
	}
	env := r.Services["grafana"].Environment
	if env["TRIPWIRE_PG_USER"] != "tripwire_reader" || env["TRIPWIRE_PG_PASSWORD"] != "test-reader-password" {
		t.Errorf("grafana connects as %q with the password %q, want tripwire_reader with the reader's",
			env["TRIPWIRE_PG_USER"], env["TRIPWIRE_PG_PASSWORD"])
	}
	ignore, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatalf("the collector's build context (the repository) has no .dockerignore: %v", err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, must := range []string{"compose/pki", "**/.env", "**/*.key", "**/node_modules", ".git"} {
		if !lines[must] {
			t.Errorf(".dockerignore lacks %q", must)
		}
	}
}

// TestComposeMountsTestedConfigs: what compose mounts into the collector and
// Grafana is the configuration the collector and dashboard tests use.
func TestComposeMountsTestedConfigs(t *testing.T) {
	r := composeConfig(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mounts := func(service string) map[string]string {
		m := map[string]string{}
		for _, v := range r.Services[service].Volumes {
			if v.Type == "bind" {
				m[v.Target] = v.Source
			}
		}
		return m
	}
	want := map[string]map[string]string{
		"collector": {
			"/etc/tripwire-collector/config.yaml": filepath.Join(repo, "collector/config.yaml"),
		},
		"grafana": {
			"/etc/grafana/provisioning/datasources":             filepath.Join(repo, "dashboards/provisioning/datasources"),
			"/etc/grafana/provisioning/alerting":                filepath.Join(repo, "dashboards/provisioning/alerting"),
			"/etc/grafana/provisioning/plugins":                 filepath.Join(repo, "dashboards/provisioning/plugins"),
			"/var/lib/grafana/plugins/tripwiresec-tripwire-app": filepath.Join(repo, "grafana-plugin/dist"),
		},
	}
	for service, targets := range want {
		got := mounts(service)
		for target, source := range targets {
			if got[target] != source {
				t.Errorf("%s mounts %q at %s, want %q", service, got[target], target, source)
			}
			if _, err := os.Stat(source); err != nil && !strings.HasSuffix(source, "dist") {
				t.Errorf("%s: mounted %s does not exist", service, source)
			}
		}
	}
	// The datasource provisioning expands these from Grafana's environment.
	env := r.Services["grafana"].Environment
	for _, k := range []string{"TRIPWIRE_PG_HOST", "TRIPWIRE_PG_PORT", "TRIPWIRE_PG_DATABASE", "TRIPWIRE_PG_USER", "TRIPWIRE_PG_SSLMODE", "TRIPWIRE_PG_PASSWORD"} {
		if env[k] == "" {
			t.Errorf("grafana environment lacks %s used by dashboards/provisioning/datasources", k)
		}
	}
	// Every variable collector/config.yaml needs without a default is set.
	cfg, err := os.ReadFile(filepath.Join(repo, "collector/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cenv := r.Services["collector"].Environment
	required := regexp.MustCompile(`\$\{env:([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(cfg), -1)
	if len(required) == 0 {
		t.Fatal("collector/config.yaml has no required ${env:...} variables: the check below would be empty")
	}
	for _, m := range required {
		if cenv[m[1]] == "" {
			t.Errorf("collector/config.yaml needs %s, which compose does not set", m[1])
		}
	}
}
