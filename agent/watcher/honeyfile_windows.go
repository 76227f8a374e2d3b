package watcher

import "io/fs"

// ownedBy: owners are not set on Windows (the rule's owner is ignored there).
func ownedBy(fs.FileInfo, int, int) bool { return true }
