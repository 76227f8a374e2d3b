//go:build !linux

package agent

import "runtime/debug"

// releaseStartupMemory gives back the heap that starting the watchers grew.
func releaseStartupMemory() {
	debug.FreeOSMemory()
}
