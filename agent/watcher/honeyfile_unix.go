//go:build !windows

package watcher

import "syscall"

// noFollow keeps planting and checking from following a symlink someone put
// where the decoy goes.
const noFollow = syscall.O_NOFOLLOW
