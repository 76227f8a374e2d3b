//go:build !linux

package watcher

import "runtime"

// Unserved lists the rules that cannot be served on this OS.
func Unserved(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	return PlatformUnserved(runtime.GOOS, fileRules, procRules, netRules)
}

// Degraded lists the rules served here with fewer fields or less coverage
// than on Linux.
func Degraded(fileRules []FileRule, procRules []ProcessRule, netRules []NetworkRule) []string {
	return PlatformDegraded(runtime.GOOS, fileRules, procRules, netRules)
}
