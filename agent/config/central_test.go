package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadLocal(t *testing.T, dir, rules string) *Config {
	t.Helper()
	for _, f := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := "spool: {path: " + dir + "/state/spool.db}\naudit: {path: " + dir + "/state/audit.log}\n" + rules
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(conf, "$DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWithCentralRules(t *testing.T) {
	dir := t.TempDir()
	local := loadLocal(t, dir, `rules:
  - {name: local-a, type: file, severity: WARN, paths: [$DIR/a]}
`)
	cases := []struct {
		name, central string
		want          []string // rule names, or
		err           string   // a part of the error
	}{
		{"added", "rules:\n  - {name: central-b, type: file, severity: CRITICAL, paths: [" + dir + "/b]}\n",
			[]string{"local-a", "central-b"}, ""},
		{"empty set", "", []string{"local-a"}, ""},
		{"empty list", "rules: []\n", []string{"local-a"}, ""},
		{"name clash", "rules:\n  - {name: local-a, type: file, severity: WARN, paths: [" + dir + "/b]}\n",
			nil, `central rule set:2: rules[0].name: rule "local-a" is also defined in ` + local.File},
		{"overlap with a local rule", "rules:\n  - {name: central-a, type: file, severity: WARN, paths: [" + dir + "/a]}\n",
			nil, "beside the rules of " + local.File + `: overlapping rules: path ` + dir + `/a is also watched by rule "local-a"`},
		{"invalid alone", "rules:\n  - {name: central-c, type: file, severity: LOUD, paths: [" + dir + "/c]}\n",
			nil, `central rule set:2: rules[0].severity: bad severity "LOUD"`},
		{"unknown key", "rules: []\nwatchers: {file: ebpf}\n", nil, `central rule set:2: watchers: unknown key`},
		{"agent state", "rules:\n  - {name: central-s, type: file, severity: WARN, recursive: true, paths: [" + dir + "/state]}\n",
			nil, "watches the agent's own spool.path"},
		{"not YAML", "rules: [\n", nil, "central rule set:1: invalid YAML: line 1"},
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := local.WithCentralRules([]byte(tc.central))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range got.Rules {
				names = append(names, r.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("rules %v, want %v", names, tc.want)
			}
			if len(local.Rules) != 1 {
				t.Errorf("the local config changed: %d rules", len(local.Rules))
			}
		})
	}
}

func TestManagementSection(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "agent.pem", "agent.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := loadLocal(t, dir, `transport: {endpoint: "c:4317", ca: ca.pem, cert: agent.pem, key: agent.key, server_name: c}
management: {endpoint: "wss://c:4320/v1/opamp"}
`)
	m := c.Management
	if m.CA != filepath.Join(dir, "ca.pem") || m.Cert != filepath.Join(dir, "agent.pem") || m.Key != filepath.Join(dir, "agent.key") ||
		m.ServerName != "c" || m.RulesFile != filepath.Join(dir, "state", "central-rules.yaml") {
		t.Errorf("management defaults: %+v", m)
	}
	if off := loadLocal(t, dir, ""); off.Management.Endpoint != "" {
		t.Errorf("management on by default: %+v", off.Management)
	}
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("management: {endpoint: \"http://c:4320/v1/opamp\"}\n"), 0o600)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "management.endpoint: want wss://") || !strings.Contains(err.Error(), "management.cert: required") {
		t.Errorf("error %v", err)
	}
}
