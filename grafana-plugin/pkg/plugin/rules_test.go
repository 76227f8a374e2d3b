package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/contract"
)

const shadowRules = "- name: shadow\n  type: file\n  severity: CRITICAL\n  paths: [/etc/shadow]\n"

func editJSON(t testing.TB, e map[string]any) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRuleSetRoles: Viewers read, Editors and Admins write, anyone else gets
// 403; nothing refused is saved.
func TestRuleSetRoles(t *testing.T) {
	e := newEnv(t)
	create := editJSON(t, map[string]any{"name": "base", "scope": contract.RuleScopeGlobal, "rules": shadowRules})
	for _, c := range []struct {
		method, path, role, login, body string
		want                            int
		wantBody                        string
	}{
		{"GET", "/api/v1/rules", "Viewer", "vic", "", 200, `"rule_sets":[]`},
		{"GET", "/api/v1/rules", "None", "nobody", "", 403, "Viewer"},
		{"GET", "/api/v1/rules", "", "", "", 403, "Viewer"},
		{"POST", "/api/v1/rules", "Viewer", "vic", create, 403, "Editor"},
		{"POST", "/api/v1/rules", "Editor", "", create, 403, "no Grafana user"},
		{"POST", "/api/v1/rules/check", "None", "nobody", create, 403, "Viewer"},
		{"DELETE", "/api/v1/rules/1", "Admin", "root", "", 405, ""},
		{"GET", "/api/v1/rules", "Viewer", "vic", "", 200, `"rule_sets":[]`}, // nothing above saved
		{"POST", "/api/v1/rules", "Editor", "ed", create, 200, `"author":"ed"`},
		{"GET", "/api/v1/rules/1", "Viewer", "vic", "", 200, `"version":1`},
		{"GET", "/api/v1/rules/2", "Viewer", "vic", "", 404, ""},
		{"GET", "/api/v1/rules/x", "Viewer", "vic", "", 400, "id"},
		{"GET", "/api/v1/rules/1?v=2", "Viewer", "vic", "", 400, "unknown parameter"},
		{"POST", "/api/v1/rules/1/disable", "Viewer", "vic", "", 403, "Editor"},
		{"PUT", "/api/v1/rules/1", "Viewer", "vic", create, 403, "Editor"},
		{"POST", "/api/v1/rules/1/disable", "Admin", "root", "", 200, `"enabled":false`},
		{"POST", "/api/v1/rules/2/disable", "Admin", "root", "", 404, ""},
		{"POST", "/api/v1/rules", "Editor", "ed", create, 400, `a rule set named \"base\" exists`},
		{"POST", "/api/v1/rules", "Editor", "ed", `{"name":"x","color":"red"}`, 400, "color"},
		{"POST", "/api/v1/rules", "Editor", "ed", ``, 400, "body"},
	} {
		code, body := e.send(t, c.method, c.path, c.role, c.login, c.body)
		if code != c.want || !strings.Contains(string(body), c.wantBody) {
			t.Errorf("%s %s as %q: %d %.300s, want %d with %q", c.method, c.path, c.role, code, body, c.want, c.wantBody)
		}
	}
	var n int
	if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM rule_set_versions`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d versions (%v), want 2: the create and the disable", n, err)
	}
}

// TestRuleSetFieldErrors: a refused edit names every field at fault, and a
// rule problem its line and key, as `tripwire validate` words it.
func TestRuleSetFieldErrors(t *testing.T) {
	e := newEnv(t)
	body := editJSON(t, map[string]any{
		"name": "bad name", "scope": contract.RuleScopeGroup, "selector": map[string]string{},
		"rules": "- name: a\n  type: file\n  severity: LOUD\n  paths: [relative]\n",
	})
	code, out := e.send(t, "POST", "/api/v1/rules", "Editor", "ed", body)
	if code != 400 {
		t.Fatalf("%d %s", code, out)
	}
	got := decode[struct{ Fields FieldErrors }](t, out).Fields
	want := FieldErrors{
		{Field: "name", Message: "want 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"},
		{Field: "selector", Message: "a group set needs at least one host attribute to match, e.g. " + contract.ResourceOSType + "=linux"},
		{Field: "rules", Line: 3, Key: "rules[0].severity", Message: `bad severity "LOUD" (want INFO, WARN or CRITICAL)`},
		{Field: "rules", Line: 4, Key: "rules[0].paths[0]", Message: `"relative" is not an absolute path`},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fields\n%+v\nwant\n%+v", got, want)
	}

	// The check route reports the same without saving, and no hosts for a
	// scope it cannot read.
	code, out = e.send(t, "POST", "/api/v1/rules/check", "Viewer", "vic", body)
	if code != 200 {
		t.Fatalf("check: %d %s", code, out)
	}
	checked := decode[struct {
		Errors FieldErrors
		Hosts  []RuleSetHost
	}](t, out)
	if !slices.Equal(checked.Errors, want) || len(checked.Hosts) != 0 {
		t.Fatalf("check: %+v", checked)
	}

	// A path that does not exist on the Grafana server is fine: it is checked
	// on the host, when the agent applies the set.
	ok := editJSON(t, map[string]any{"name": "ok", "scope": contract.RuleScopeGlobal,
		"rules": "- name: a\n  type: file\n  severity: INFO\n  paths: [/only/on/the/hosts]\n"})
	if code, out := e.send(t, "POST", "/api/v1/rules/check", "Viewer", "vic", ok); code != 200 || !strings.Contains(string(out), `"errors":[]`) {
		t.Fatalf("check of a valid set: %d %s", code, out)
	}
	for _, c := range []struct{ edit map[string]any }{
		{map[string]any{"name": "h", "scope": contract.RuleScopeHost, "rules": shadowRules}},
		{map[string]any{"name": "g", "scope": contract.RuleScopeGlobal, "host_name": "web-01", "rules": shadowRules}},
		{map[string]any{"name": "s", "scope": "everything", "rules": shadowRules}},
		{map[string]any{"name": "empty", "scope": contract.RuleScopeGlobal, "rules": ""}},
		{map[string]any{"name": "nul", "scope": contract.RuleScopeGlobal, "rules": shadowRules, "note": "a\u0000b"}},
	} {
		if code, out := e.send(t, "POST", "/api/v1/rules", "Editor", "ed", editJSON(t, c.edit)); code != 400 || !strings.Contains(string(out), `"fields"`) {
			t.Errorf("%v: %d %s, want 400 with fields", c.edit, code, out)
		}
	}
}

// TestRuleSetVersions: every change is a version attributed to the Grafana
// user who made it; an edit from a stale version is refused (409); the diff
// shows what changed.
func TestRuleSetVersions(t *testing.T) {
	e := newEnv(t)
	code, out := e.send(t, "POST", "/api/v1/rules", "Editor", "alice",
		editJSON(t, map[string]any{"name": "base", "scope": contract.RuleScopeGlobal, "rules": shadowRules, "note": "first"}))
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	id := decode[RuleSet](t, out).ID
	path := fmt.Sprintf("/api/v1/rules/%d", id)
	more := shadowRules + "- name: nc\n  type: process\n  severity: WARN\n  names: [nc]\n"
	edit := map[string]any{"base_version": 1, "scope": contract.RuleScopeGroup,
		"selector": map[string]string{contract.ResourceOSType: "linux"}, "enabled": true, "rules": more, "note": "add nc"}
	code, out = e.send(t, "PUT", path, "Admin", "bob", editJSON(t, edit))
	if v := decode[RuleSet](t, out); code != 200 || v.Version != 2 || v.Author != "bob" || v.Scope != contract.RuleScopeGroup {
		t.Fatalf("update: %d %s", code, out)
	}
	// carol edits from version 1 too: refused, nothing saved.
	edit["note"] = "carol's"
	if code, out := e.send(t, "PUT", path, "Editor", "carol", editJSON(t, edit)); code != 409 || !strings.Contains(string(out), "version 2") {
		t.Fatalf("stale update: %d %s, want 409", code, out)
	}
	if code, out := e.send(t, "POST", path+"/disable", "Editor", "carol", `{"base_version":2,"note":"noisy"}`); code != 200 || !strings.Contains(string(out), `"version":3`) {
		t.Fatalf("disable: %d %s", code, out)
	}

	code, out = e.send(t, "GET", path+"/versions", "Viewer", "vic", "")
	if code != 200 {
		t.Fatalf("versions: %d %s", code, out)
	}
	var who []string
	for _, v := range decode[struct{ Versions []RuleSet }](t, out).Versions {
		who = append(who, fmt.Sprintf("%d:%s:%t:%s", v.Version, v.Author, v.Enabled, v.Note))
	}
	if want := []string{"3:carol:false:noisy", "2:bob:true:add nc", "1:alice:true:first"}; !slices.Equal(who, want) {
		t.Fatalf("versions %v, want %v", who, want)
	}

	// Default diff: the current version against the one before.
	code, out = e.send(t, "GET", path+"/diff", "Viewer", "vic", "")
	d := decode[RuleSetDiff](t, out)
	if code != 200 || d.From == nil || d.From.Version != 2 || d.To.Version != 3 ||
		!slices.Equal(d.Changes, []FieldChange{{Field: "enabled", From: "true", To: "false"}}) {
		t.Fatalf("diff 2→3: %d %s", code, out)
	}
	for _, l := range d.Lines {
		if l.Op != " " {
			t.Fatalf("diff 2→3 changed rules: %+v", d.Lines)
		}
	}
	code, out = e.send(t, "GET", path+"/diff?from=1&to=2", "Viewer", "vic", "")
	d = decode[RuleSetDiff](t, out)
	var added []string
	for _, l := range d.Lines {
		if l.Op != " " {
			added = append(added, l.Op+l.Text)
		}
	}
	wantAdded := []string{"+- name: nc", "+  type: process", "+  severity: WARN", "+  names: [nc]"}
	if code != 200 || !slices.Equal(added, wantAdded) || len(d.Changes) != 2 || d.Changes[1].Field != "selector" ||
		d.Changes[1].To != contract.ResourceOSType+"=linux" {
		t.Fatalf("diff 1→2: %d %s", code, out)
	}
	// Version 1 has nothing before it: every line is added.
	code, out = e.send(t, "GET", path+"/diff?to=1", "Viewer", "vic", "")
	if d := decode[RuleSetDiff](t, out); code != 200 || d.From != nil || len(d.Lines) != 4 || d.Lines[0].Op != "+" {
		t.Fatalf("diff of version 1: %d %s", code, out)
	}
	if code, _ := e.send(t, "GET", path+"/diff?from=9", "Viewer", "vic", ""); code != 404 {
		t.Fatalf("diff from a missing version: %d, want 404", code)
	}
}

// TestRuleSetHosts: "which hosts get this" uses the hosts table and the
// migration's scoping function, for saved sets and for unsaved edits.
func TestRuleSetHosts(t *testing.T) {
	e := newEnv(t)
	e.seed(t) // web-01, db-01, mac-01: all linux amd64
	e.exec(t, `INSERT INTO hosts (host_name, platform, arch) VALUES ('mbp-07', 'darwin', 'arm64')`)
	for _, c := range []struct {
		edit map[string]any
		want []string
	}{
		{map[string]any{"scope": contract.RuleScopeGlobal}, []string{"db-01", "mac-01", "mbp-07", "web-01"}},
		{map[string]any{"scope": contract.RuleScopeGroup, "selector": map[string]string{contract.ResourceOSType: "linux"}},
			[]string{"db-01", "mac-01", "web-01"}},
		{map[string]any{"scope": contract.RuleScopeGroup, "selector": map[string]string{contract.ResourceOSType: "darwin", contract.ResourceHostArch: "arm64"}},
			[]string{"mbp-07"}},
		{map[string]any{"scope": contract.RuleScopeGroup, "selector": map[string]string{contract.ResourceOSType: "darwin", contract.ResourceHostArch: "amd64"}},
			nil},
		{map[string]any{"scope": contract.RuleScopeHost, "host_name": "db-01"}, []string{"db-01"}},
	} {
		c.edit["rules"] = shadowRules
		code, out := e.send(t, "POST", "/api/v1/rules/check", "Viewer", "vic", editJSON(t, c.edit))
		var got []string
		for _, h := range decode[struct{ Hosts []RuleSetHost }](t, out).Hosts {
			got = append(got, h.HostName)
		}
		if code != 200 || !slices.Equal(got, c.want) {
			t.Errorf("check %v: %d %v, want %v", c.edit, code, got, c.want)
		}
	}

	code, out := e.send(t, "POST", "/api/v1/rules", "Editor", "ed", editJSON(t, map[string]any{"name": "macs",
		"scope": contract.RuleScopeGroup, "selector": map[string]string{contract.ResourceOSType: "darwin"}, "rules": shadowRules}))
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	macs := decode[RuleSet](t, out).ID
	code, out = e.send(t, "POST", "/api/v1/rules", "Editor", "ed", editJSON(t, map[string]any{"name": "web",
		"scope": contract.RuleScopeHost, "host_name": "web-01", "rules": shadowRules}))
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	// The sets that take in a host, without their rules.
	for host, want := range map[string][]string{"mbp-07": {"macs"}, "web-01": {"web"}, "db-01": nil} {
		code, out := e.send(t, "GET", "/api/v1/rules?host="+host, "Viewer", "vic", "")
		var names []string
		for _, rs := range decode[struct {
			RuleSets []RuleSet `json:"rule_sets"`
		}](t, out).RuleSets {
			names = append(names, rs.Name)
			if rs.Rules != "" {
				t.Errorf("a list carries the rules of %s", rs.Name)
			}
		}
		if code != 200 || !slices.Equal(names, want) {
			t.Errorf("rules?host=%s: %d %v, want %v", host, code, names, want)
		}
	}
	if code, _ := e.send(t, "GET", "/api/v1/rules?host=nope", "Viewer", "vic", ""); code != 404 {
		t.Errorf("rules?host=nope: %d, want 404", code)
	}
	code, out = e.send(t, "GET", fmt.Sprintf("/api/v1/rules/%d/hosts", macs), "Viewer", "vic", "")
	got := decode[struct {
		Enabled bool
		Hosts   []RuleSetHost
	}](t, out)
	if code != 200 || !got.Enabled || len(got.Hosts) != 1 || got.Hosts[0].HostName != "mbp-07" || got.Hosts[0].Platform == nil {
		t.Fatalf("hosts: %d %s", code, out)
	}
}

// TestRuleSetNameClashes: a rule name, or a target, may be in two enabled
// sets only when no host can get both; the refusal names the line and the
// other set.
func TestRuleSetNameClashes(t *testing.T) {
	e := newEnv(t)
	e.seed(t) // web-01, db-01, mac-01: linux
	e.exec(t, `INSERT INTO hosts (host_name, platform, arch) VALUES ('mbp-07', 'darwin', 'arm64')`)
	other := "- name: other\n  type: process\n  severity: WARN\n  names: [nc]\n"
	withShadow := other + shadowRules // shadow starts on line 5
	group := func(os string) map[string]string { return map[string]string{contract.ResourceOSType: os} }
	save := func(method, path, login string, edit map[string]any) (int, string) {
		t.Helper()
		code, out := e.send(t, method, path, "Editor", login, editJSON(t, edit))
		return code, string(out)
	}
	steps := []struct {
		method, path string
		edit         map[string]any
		want         int
		wantBody     string
	}{
		{"POST", "/api/v1/rules", map[string]any{"name": "base", "scope": contract.RuleScopeGlobal, "rules": shadowRules}, 200, ""},
		// A global set reaches every host.
		{"POST", "/api/v1/rules", map[string]any{"name": "linux", "scope": contract.RuleScopeGroup, "selector": group("linux"), "rules": withShadow},
			400, `"line":5,"key":"rules[1].name","message":"duplicate rule name \"shadow\" (also in rule set \"base\", line 1), which may apply to the same hosts (global)"`},
		// A disabled set clashes with nothing, either way.
		{"POST", "/api/v1/rules", map[string]any{"name": "linux", "scope": contract.RuleScopeGroup, "selector": group("linux"), "rules": withShadow, "enabled": false}, 200, ""},
		{"POST", "/api/v1/rules/1/disable", nil, 200, ""},
		{"POST", "/api/v1/rules/2/enable", nil, 200, ""},
		// Its own names are no clash: a new version of it saves.
		{"PUT", "/api/v1/rules/2", map[string]any{"base_version": 2, "scope": contract.RuleScopeGroup, "selector": group("linux"), "rules": withShadow, "enabled": true, "note": "again"}, 200, ""},
		// Two groups that need different values of one attribute share no host.
		{"POST", "/api/v1/rules", map[string]any{"name": "darwin", "scope": contract.RuleScopeGroup, "selector": group("darwin"), "rules": shadowRules}, 200, ""},
		// A known host outside the group shares nothing; one inside does; an unknown one may.
		{"POST", "/api/v1/rules", map[string]any{"name": "db", "scope": contract.RuleScopeHost, "host_name": "db-01", "rules": shadowRules}, 400, `rule set \"linux\"`},
		{"POST", "/api/v1/rules", map[string]any{"name": "new", "scope": contract.RuleScopeHost, "host_name": "new-01", "rules": shadowRules}, 400, `rule set \"darwin\"`},
		{"POST", "/api/v1/rules", map[string]any{"name": "db", "scope": contract.RuleScopeHost, "host_name": "db-01", "rules": other}, 400, `duplicate rule name \"other\" (also in rule set \"linux\"`},
		// Another name for a target another set watches clashes too.
		{"POST", "/api/v1/rules", map[string]any{"name": "tools", "scope": contract.RuleScopeGlobal,
			"rules": "- name: nc2\n  type: process\n  severity: INFO\n  names: [nc]\n"},
			400, `"line":4,"key":"rules[0].names[0]","message":"overlapping rules: process name nc is also watched by rule \"other\" of rule set \"linux\" (line 4)`},
		// Enabling the global set again would clash with both groups.
		{"POST", "/api/v1/rules/1/enable", nil, 400, `rule set \"darwin\"`},
	}
	for i, s := range steps {
		var code int
		var out string
		if s.edit == nil {
			c, b := e.send(t, s.method, s.path, "Editor", "ed", "")
			code, out = c, string(b)
		} else {
			code, out = save(s.method, s.path, "ed", s.edit)
		}
		if code != s.want || !strings.Contains(out, s.wantBody) {
			t.Fatalf("step %d %s %s: %d %.400s, want %d with %s", i, s.method, s.path, code, out, s.want, s.wantBody)
		}
	}
	// The check route of an existing set leaves the set itself out.
	code, out := e.send(t, "POST", "/api/v1/rules/check?id=2", "Viewer", "vic", editJSON(t, map[string]any{
		"scope": contract.RuleScopeGroup, "selector": group("linux"), "rules": withShadow, "enabled": true}))
	if code != 200 || !strings.Contains(string(out), `"errors":[]`) {
		t.Fatalf("check of set 2: %d %s", code, out)
	}
	code, out = e.send(t, "POST", "/api/v1/rules/check", "Viewer", "vic", editJSON(t, map[string]any{
		"name": "x", "scope": contract.RuleScopeGroup, "selector": group("linux"), "rules": withShadow}))
	if code != 200 || !strings.Contains(string(out), `rule set \"linux\"`) {
		t.Fatalf("check of a new set: %d %s", code, out)
	}
}

// TestRuleSetRollout: the hosts of a set say how far its current version
// got on each, from what the OpAMP server recorded.
func TestRuleSetRollout(t *testing.T) {
	e := newEnv(t)
	e.seed(t) // web-01, db-01, mac-01
	for _, h := range []string{"mbp-07", "old-01", "bad-01"} {
		e.exec(t, `INSERT INTO hosts (host_name, platform) VALUES ($1, 'linux')`, h)
	}
	code, out := e.send(t, "POST", "/api/v1/rules", "Editor", "ed",
		editJSON(t, map[string]any{"name": "base", "scope": contract.RuleScopeGlobal, "rules": shadowRules}))
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	report := func(host, sets, offered, applied, status string, applyErr, offerErr any) {
		t.Helper()
		e.exec(t, `INSERT INTO agent_management (host_name, offered_sets, offered_hash, rule_hash, rule_status, last_apply_error, offer_error)
VALUES ($1, NULLIF($2, '-'), $3, $4, NULLIF($5, ''), $6, $7)
ON CONFLICT (host_name) DO UPDATE SET offered_sets = NULLIF($2, '-'), offered_hash = $3, rule_hash = $4,
  rule_status = NULLIF($5, ''), last_apply_error = $6, offer_error = $7`,
			host, sets, offered, applied, status, applyErr, offerErr)
	}
	report("web-01", "base@1", "h1", "h1", contract.RuleStatusApplied, nil, nil)
	report("db-01", "base@1, tools@2", "h1", "h0", contract.RuleStatusApplied, nil, nil) // still on the previous offer
	report("mac-01", "tools@2, base@1", "h1", "h1", contract.RuleStatusFailed, "rules[0].paths[0]: unreadable path", nil)
	report("mbp-07", "base-old@1", "h9", "h9", contract.RuleStatusApplied, nil, nil) // a prefix is not the set
	report("bad-01", "-", "", "", "", nil, "duplicate rule name")
	rollouts := func() map[string]string {
		t.Helper()
		code, out := e.send(t, "GET", "/api/v1/rules/1/hosts", "Viewer", "vic", "")
		if code != 200 {
			t.Fatalf("hosts: %d %s", code, out)
		}
		got := map[string]string{}
		for _, h := range decode[struct{ Hosts []RuleSetHost }](t, out).Hosts {
			got[h.HostName] = h.Rollout
			if h.ApplyError != nil {
				got[h.HostName] += ": " + *h.ApplyError
			}
		}
		return got
	}
	want := map[string]string{
		"web-01": RolloutApplied,
		"db-01":  RolloutApplying,
		"mac-01": RolloutFailed + ": rules[0].paths[0]: unreadable path",
		"mbp-07": RolloutNotOffered,
		"old-01": RolloutUnmanaged,
		"bad-01": RolloutOfferFailed + ": duplicate rule name",
	}
	if got := rollouts(); !maps.Equal(got, want) {
		t.Fatalf("rollout of version 1:\n%v\nwant\n%v", got, want)
	}
	// Disabled, the set is rolled out when the offer no longer has it.
	if code, out := e.send(t, "POST", "/api/v1/rules/1/disable", "Editor", "ed", ""); code != 200 {
		t.Fatalf("disable: %d %s", code, out)
	}
	report("db-01", "tools@2", "h2", "h2", contract.RuleStatusApplied, nil, nil)
	got := rollouts()
	if got["web-01"] != RolloutNotOffered || got["db-01"] != RolloutApplied || got["mbp-07"] != RolloutApplied {
		t.Fatalf("rollout of the disable: %v", got)
	}
	// A check of an edit says nothing of rollout.
	code, out = e.send(t, "POST", "/api/v1/rules/check?id=1", "Viewer", "vic",
		editJSON(t, map[string]any{"scope": contract.RuleScopeGlobal, "rules": shadowRules, "enabled": true}))
	if code != 200 || strings.Contains(string(out), "rollout") {
		t.Fatalf("check: %d %s", code, out)
	}
}
