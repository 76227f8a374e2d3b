package rules

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// errorsOf returns each problem of err as "line key: msg".
func errorsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		out = append(out, strings.TrimPrefix(line, "set.yaml:"))
	}
	return out
}

func TestParseCentralSet(t *testing.T) {
	set := `- name: shadow
  type: file
  severity: CRITICAL
  paths: [/nonexistent/on/this/machine/shadow]
- name: nc
  type: process
  severity: WARN
  names: [nc, ncat]
- name: ssh-decoy
  type: network
  severity: INFO
  mode: honeyport
  ports: [2222]
  flood: {sources: 5, window: 30s}
`
	rs, err := Parse("set.yaml", []byte(set), nil)
	if err != nil {
		t.Fatalf("a valid central set is refused: %v", err)
	}
	if len(rs) != 3 || rs[0].Severity != "CRITICAL" || rs[0].PathLines[0] != 4 || rs[1].Names[1] != "ncat" ||
		rs[2].Flood.Sources != 5 || rs[2].Flood.Window.Seconds() != 30 || !rs[2].Enabled {
		t.Fatalf("parsed %+v", rs)
	}
	// The same set checked on a host: the path must exist there.
	_, err = Parse("set.yaml", []byte(set), Local)
	want := []string{"4: rules[0].paths[0]: unreadable path: no such file or directory"}
	if got := errorsOf(t, err); !slices.Equal(got, want) {
		t.Fatalf("on this host:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParseErrorsPlaced: every problem is reported at once, at its line and
// key, in line order.
func TestParseErrorsPlaced(t *testing.T) {
	set := `- name: a
  type: file
  severity: LOUD
  paths: [relative]
- name: a
  type: network
  severity: INFO
  ports: [70000]
  paths: [/etc]
- type: process
  severity: WARN
  names: [/bin/sh]
`
	_, err := Parse("set.yaml", []byte(set), nil)
	want := []string{
		`3: rules[0].severity: bad severity "LOUD" (want INFO, WARN or CRITICAL)`,
		`4: rules[0].paths[0]: "relative" is not an absolute path`,
		`5: rules[1].name: duplicate rule name "a" (first at line 1)`,
		`8: rules[1].ports[0]: bad port "70000" (want 1 to 65535)`,
		`9: rules[1].paths: not a key of a network rule (want ports, mode, transport, address, flood)`,
		`10: rules[2].name: required`,
		`12: rules[2].names[0]: "/bin/sh" is a path; put it under paths`,
	}
	if got := errorsOf(t, err); !slices.Equal(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var first *Error
	if !errors.As(err, &first) || first.Line != 3 || first.Key != "rules[0].severity" {
		t.Fatalf("first error %+v, want line 3 at rules[0].severity", first)
	}
}

func TestParseDocumentShape(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"name: a\n", `1: rules: want a list of rules, got a mapping`},
		{"- [\n", `1: invalid YAML: `},
		{"- name: a\n---\n- name: b\n", `2: more than one YAML document`},
	} {
		_, err := Parse("set.yaml", []byte(tc.doc), nil)
		if got := strings.Join(errorsOf(t, err), "\n"); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Parse(%q) = %q, want %q...", tc.doc, got, tc.want)
		}
	}
	if rs, err := Parse("set.yaml", nil, nil); err != nil || len(rs) != 0 {
		t.Errorf("an empty set: %v, %v", rs, err)
	}
}

// TestOverlapsWithinSet: two enabled rules of one set watching the same
// target would report each trip twice.
func TestOverlapsWithinSet(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	set := `- name: tree
  type: file
  severity: INFO
  recursive: true
  paths: [` + dir + `]
- name: inside
  type: file
  severity: INFO
  paths: [` + dir + `/sub]
- name: off
  type: file
  severity: INFO
  enabled: false
  paths: [` + dir + `]
`
	_, err := Parse("set.yaml", []byte(set), Local)
	want := []string{`9: rules[1].paths[0]: overlapping rules: ` + dir + `/sub is inside ` + dir + `, watched recursively by rule "tree" (line 5)`}
	if got := errorsOf(t, err); !slices.Equal(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClashes(t *testing.T) {
	base := `- name: shadow
  type: file
  severity: CRITICAL
  paths: [/etc/shadow]
- name: www
  type: file
  severity: INFO
  recursive: true
  paths: [/srv/www]
- name: ssh
  type: network
  severity: INFO
  ports: [22]
- name: off
  type: process
  severity: INFO
  enabled: false
  names: [nc]
`
	mine := `- name: shadow
  type: process
  severity: WARN
  names: [nc]
- name: secrets
  type: file
  severity: WARN
  paths: [/etc/passwd, /etc/shadow, /srv/www/config]
- name: etc
  type: file
  severity: INFO
  recursive: true
  paths: [/etc/ssh]
- name: ssh2
  type: network
  severity: INFO
  ports: [2222, 22]
`
	theirs, err := Parse("base", []byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("mine", []byte(mine), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range Clashes(m, theirs, `rule set "base"`) {
		got = append(got, strings.TrimPrefix(e.Error(), ":"))
	}
	want := []string{
		`1: rules[0].name: duplicate rule name "shadow" (also in rule set "base", line 1)`,
		`8: rules[1].paths[1]: overlapping rules: path /etc/shadow is also watched by rule "shadow" of rule set "base" (line 4)`,
		`8: rules[1].paths[2]: overlapping rules: /srv/www/config is inside /srv/www, watched recursively by rule "www" of rule set "base" (line 9)`,
		`17: rules[3].ports[1]: overlapping rules: port tcp/22 is also watched by rule "ssh" of rule set "base" (line 13)`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("clashes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The disabled rule "off" watches nc too: no clash with it. The other
	// way round, a recursive directory of mine takes in their path.
	got = nil
	for _, e := range Clashes(theirs, m, `rule set "mine"`) {
		got = append(got, strings.TrimPrefix(e.Error(), ":"))
	}
	if len(got) != 4 || got[2] != `9: rules[1].paths[0]: overlapping rules: watches /srv/www recursively, and /srv/www/config inside it is watched by rule "secrets" of rule set "mine" (line 8)` {
		t.Fatalf("reverse clashes:\n%s", strings.Join(got, "\n"))
	}
}
