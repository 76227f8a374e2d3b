package config

import (
	"fmt"
	"strings"

	"github.com/tripwire-sec/tripwire/agent/watcher"
)

// FileRules returns the enabled file rules for the file watcher.
func (c *Config) FileRules() []watcher.FileRule {
	var out []watcher.FileRule
	for _, r := range c.enabled(TypeFile) {
		out = append(out, watcher.FileRule{
			Name: r.Name, Severity: r.Severity, Paths: r.Paths, Recursive: r.Recursive,
			Exclude: r.Exclude, Plant: r.Plant, HoldOpens: r.HoldOpens,
		})
	}
	return out
}

// ProcessRules returns the enabled process rules for the process watcher.
func (c *Config) ProcessRules() []watcher.ProcessRule {
	var out []watcher.ProcessRule
	for _, r := range c.enabled(TypeProcess) {
		out = append(out, watcher.ProcessRule{
			Name: r.Name, Severity: r.Severity, Names: r.Names, Paths: r.Paths, Resolve: r.Resolve,
			Exclude: r.Exclude,
		})
	}
	return out
}

// NetworkRules returns the enabled network rules for the network watchers.
func (c *Config) NetworkRules() []watcher.NetworkRule {
	var out []watcher.NetworkRule
	for _, r := range c.enabled(TypeNetwork) {
		out = append(out, watcher.NetworkRule{
			Name: r.Name, Severity: r.Severity, Ports: r.Ports, Mode: r.Mode, Transport: r.Transport,
			Address: r.Address, Flood: r.Flood, Exclude: r.Exclude,
		})
	}
	return out
}

func (c *Config) enabled(typ string) []Rule {
	var out []Rule
	for _, r := range c.Rules {
		if r.Enabled && r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Warnings lists what is valid but costs the host: rules that hold opens.
func (c *Config) Warnings() []string {
	var out []string
	for _, r := range c.Rules {
		if r.Enabled && r.Type == TypeFile && r.HoldOpens {
			out = append(out, fmt.Sprintf("line %d: rule %q: hold_opens makes every open of %s wait for the agent, and blocks it while the agent is stopped (fanotify mechanism only)",
				r.Line, r.Name, strings.Join(r.Paths, ", ")))
		}
	}
	return out
}
