//go:build unix

package watcher

import (
	"io/fs"
	"syscall"
)

func execFileIDOf(fi fs.FileInfo) (execFileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return execFileID{}, false
	}
	return execFileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true
}
