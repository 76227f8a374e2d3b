package watcher

import "fmt"

// Platforms the agent is built for, as GOOS names.
var Platforms = []string{"linux", "darwin", "windows"}

// PlatformUnserved lists the rules an agent on goos cannot serve whatever its
// privileges, one line each with the reason: `tripwire validate --target`
// prints it, and the agent on that OS reports it. Only observe-mode network
// rules are left: watching a real service's port needs eBPF or sock_diag.
// What the agent's capabilities leave unserved on Linux is [Unserved]'s job.
func PlatformUnserved(goos string, fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	if goos == "linux" {
		return nil
	}
	var out []string
	for _, r := range netRules {
		if r.Mode != netModeHoneyport {
			out = append(out, fmt.Sprintf("network rule %q: observe mode needs Linux (eBPF or sock_diag), not %s: use mode honeyport", r.Name, goos))
		}
	}
	return out
}

// PlatformDegraded lists the rules an agent on goos serves with less than
// Linux gives: no reads and no actor for file rules (macOS would need
// Endpoint Security, an entitlement; Windows a minifilter driver), process
// rules by polling.
func PlatformDegraded(goos string, fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	if goos == "linux" {
		return nil
	}
	var out []string
	if len(fileRules) > 0 {
		mech := "kqueue"
		if goos == "windows" {
			mech = "ReadDirectoryChangesW"
		}
		out = append(out, fmt.Sprintf("file rules: fsnotify (%s) on %s sees writes, creates, deletes and renames, not reads, and not the actor", mech, goos))
	}
	if len(procRules) > 0 {
		out = append(out, fmt.Sprintf("process rules: polling the process table every %s on %s: a process shorter than that can be missed", DefaultProcessPollInterval, goos))
	}
	return out
}
