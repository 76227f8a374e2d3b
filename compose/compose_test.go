// Package compose holds the Docker Compose file for the central stack. No
// Docker engine runs on the machines these tests run on, so the test checks
// the nearest real contract: `docker-compose config` accepts the file, and
// the collector and Grafana configuration it mounts are the files the other
// tests exercise (collector/config.yaml, dashboards/).
package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type resolved struct {
	Services map[string]struct {
		Volumes     []string          `yaml:"volumes"` // docker-compose 1.x prints SOURCE:TARGET[:MODE]
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

func composeConfig(t *testing.T) resolved {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not found: apt-get install docker-compose (.ci/run does)")
	}
	cmd := exec.Command(bin, "-f", "docker-compose.yml", "config")
	cmd.Env = append(os.Environ(), "TRIPWIRE_PG_PASSWORD=test-password", "TRIPWIRE_OIDC_CLIENT_SECRET=test-secret")
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
		if _, ok := r.Services[name]; !ok {
			t.Errorf("service %s missing", name)
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
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && filepath.IsAbs(parts[0]) {
				m[parts[1]] = parts[0]
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
			"/etc/grafana/provisioning/dashboards":              filepath.Join(repo, "dashboards/provisioning/dashboards"),
			"/etc/grafana/provisioning/alerting":                filepath.Join(repo, "dashboards/provisioning/alerting"),
			"/etc/grafana/provisioning/plugins":                 filepath.Join(repo, "dashboards/provisioning/plugins"),
			"/etc/grafana/dashboards/tripwire":                  filepath.Join(repo, "dashboards"),
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
	// The dashboards provider must read the directory compose mounts.
	prov, err := os.ReadFile(filepath.Join(repo, "dashboards/provisioning/dashboards/tripwire.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prov), "path: /etc/grafana/dashboards/tripwire") {
		t.Error("dashboards provider path differs from where compose mounts dashboards/")
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
