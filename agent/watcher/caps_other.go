//go:build !linux

package watcher

import (
	"fmt"
	"runtime"
)

// Unserved lists the rules that cannot be served on this OS: process rules
// and observe-mode network rules need Linux; honeyports and file rules
// (fsnotify) work everywhere.
func Unserved(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	var out []string
	for _, r := range procRules {
		out = append(out, fmt.Sprintf("process rule %q: process tripwires need Linux, not %s", r.Name, runtime.GOOS))
	}
	for _, r := range netRules {
		if r.Mode != netModeHoneyport {
			out = append(out, fmt.Sprintf("network rule %q: observe mode needs Linux, not %s (use mode honeyport)", r.Name, runtime.GOOS))
		}
	}
	return out
}

// Degraded lists rules served with fewer fields: on this OS file rules use
// fsnotify, without the actor's PID.
func Degraded(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	if len(fileRules) > 0 {
		return []string{"file rules: fsnotify (no PID, user or command line of the actor) on " + runtime.GOOS}
	}
	return nil
}
