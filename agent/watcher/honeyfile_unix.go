//go:build !windows

package watcher

import (
	"io/fs"
	"syscall"
)

// ownedBy reports whether fi belongs to uid and gid; -1 matches any.
func ownedBy(fi fs.FileInfo, uid, gid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return (uid < 0 || int(st.Uid) == uid) && (gid < 0 || int(st.Gid) == gid)
}
