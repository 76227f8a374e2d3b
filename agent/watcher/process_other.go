//go:build !linux

package watcher

import (
	"fmt"
	"io/fs"
	"runtime"
)

// NewProcessWatcher needs Linux (eBPF, fanotify or the proc connector).
func NewProcessWatcher(rules []ProcessRule, opts Options) (Watcher, error) {
	return nil, fmt.Errorf("process tripwires are unsupported on %s", runtime.GOOS)
}

func execFileIDOf(fs.FileInfo) (execFileID, bool) { return execFileID{}, false }
