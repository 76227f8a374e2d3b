package plugin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// BenchmarkRuleSetSave times one save of a rule set through PUT
// /api/v1/rules/{id} (validation, the clash check against every other
// enabled set, the new version) in a database with no other set and in one
// with 1,000 others, in the same run, and reports both and their ratio.
func BenchmarkRuleSetSave(b *testing.B) {
	ctx := context.Background()
	const others = 1000
	alone, crowded := newEnv(b), newEnv(b)
	for i := range others {
		rs := RuleSet{Name: fmt.Sprintf("set-%04d", i), Scope: contract.RuleScopeGlobal, Enabled: true, Author: "bench",
			Rules: fmt.Sprintf("- name: r%d\n  type: file\n  severity: INFO\n  paths: [/bench/%d]\n- name: p%d\n  type: process\n  severity: WARN\n  names: [tool%d]\n", i, i, i, i)}
		if _, err := crowded.ds.store.CreateRuleSet(ctx, &rs); err != nil {
			b.Fatal(err)
		}
	}
	ids := map[*env]int64{}
	for _, e := range []*env{alone, crowded} {
		code, out := e.send(b, "POST", "/api/v1/rules", "Editor", "bench", editJSON(b, map[string]any{
			"name": "target", "scope": contract.RuleScopeGlobal, "rules": "- name: t\n  type: file\n  severity: INFO\n  paths: [/bench/t0]\n"}))
		if code != 200 {
			b.Fatalf("create: %d %s", code, out)
		}
		ids[e] = decode[RuleSet](b, out).ID
	}
	version := map[*env]int{alone: 1, crowded: 1}
	save := func(e *env) time.Duration {
		start := time.Now()
		code, out := e.send(b, "PUT", fmt.Sprintf("/api/v1/rules/%d", ids[e]), "Editor", "bench", editJSON(b, map[string]any{
			"base_version": version[e], "scope": contract.RuleScopeGlobal, "enabled": true,
			"rules": fmt.Sprintf("- name: t\n  type: file\n  severity: INFO\n  paths: [/bench/t%d]\n", version[e])}))
		took := time.Since(start)
		if code != 200 {
			b.Fatalf("save: %d %s", code, out)
		}
		version[e]++
		return took
	}
	var tAlone, tCrowded time.Duration
	b.ResetTimer()
	for range b.N {
		tAlone += save(alone)
		tCrowded += save(crowded)
	}
	b.StopTimer()
	msAlone := float64(tAlone.Microseconds()) / 1e3 / float64(b.N)
	msCrowded := float64(tCrowded.Microseconds()) / 1e3 / float64(b.N)
	b.ReportMetric(msAlone, "ms/save-alone")
	b.ReportMetric(msCrowded, "ms/save-1000-sets")
	b.ReportMetric(msCrowded/msAlone, "ratio")
}
