//go:build unix

package main

import "syscall"

// restrictUmask makes every file the agent creates private to it: the spool's
// WAL, the audit log and honeyfile directories are created 0600/0700 even
// where a library does not pass a mode.
func restrictUmask() { syscall.Umask(0o077) }
