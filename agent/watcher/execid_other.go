//go:build !unix

package watcher

import "io/fs"

// execFileIDOf: no inode here, so Resolve rules match by content only.
func execFileIDOf(fs.FileInfo) (execFileID, bool) { return execFileID{}, false }
