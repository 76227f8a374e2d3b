package config

import (
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/contract/rules"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// rules checks the rules: list with the shared validator (the one the
// central rule editor runs), including the checks that need this host, and
// converts the rules to the agent's types.
func (d *decoder) rules(f rules.Field) []Rule {
	checked := rules.Decode(d.Decoder, f, rules.Local)
	out := make([]Rule, 0, len(checked))
	for _, r := range checked {
		out = append(out, agentRule(r))
	}
	d.checked = checked
	return out
}

// agentRule converts a checked rule; its severity is valid. A zero flood
// bound is the watcher's default.
func agentRule(r rules.Rule) Rule {
	sev, _ := event.ParseSeverity(r.Severity)
	out := Rule{
		Name: r.Name, Type: r.Type, Severity: sev, Enabled: r.Enabled, Line: r.Line,
		Paths: r.Paths, Recursive: r.Recursive, HoldOpens: r.HoldOpens,
		Names: r.Names, Resolve: r.Resolve,
		Ports: r.Ports, Mode: r.Mode, Transport: r.Transport, Address: r.Address,
		Flood:   watcher.Flood{Sources: r.Flood.Sources, Window: r.Flood.Window},
		Exclude: watcher.Exclusions{Processes: r.Exclude.Processes, Users: r.Exclude.Users},
	}
	if r.Plant != nil {
		out.Plant = &watcher.Honeyfile{Content: r.Plant.Content, Mode: r.Plant.Mode, Owner: r.Plant.Owner, Group: r.Plant.Group}
	}
	return out
}

// checkStateOutsideRules keeps the agent's own files out of watched paths: a
// watcher without PIDs (fsnotify) could not tell the agent's writes from an
// intruder's, and every spool commit would trip a rule and feed itself.
func (d *decoder) checkStateOutsideRules(c *Config) {
	state := []struct{ key, path string }{
		{"spool.path", c.Spool.Path}, {"audit.path", c.Audit.Path},
	}
	for i, r := range d.checked {
		if !r.Enabled || r.Type != TypeFile {
			continue
		}
		for j, p := range r.Paths {
			for _, s := range state {
				watched := s.path == p ||
					(r.Recursive && rules.Within(s.path, p)) ||
					filepath.Dir(s.path) == p
				if watched {
					d.Errorf(&yaml.Node{Line: r.PathLines[j]}, fmt.Sprintf("rules[%d].paths[%d]", i, j),
						"watches the agent's own %s (%s); move %s out of watched paths", s.key, s.path, s.key)
				}
			}
		}
	}
}
