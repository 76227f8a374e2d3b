//go:build !linux

package watcher

import (
	"fmt"
	"runtime"
)

// newObserveWatcher: observing a real service's port needs Linux (eBPF or
// sock_diag); honeyports work everywhere.
func newObserveWatcher(targets []netTarget, opts Options) (Watcher, error) {
	return nil, fmt.Errorf("observe-mode network tripwires are unsupported on %s (use mode honeyport)", runtime.GOOS)
}
