//go:build unix && !linux

package pgtest

import (
	"errors"
	"syscall"
)

type credential = syscall.Credential

// procAttr runs initdb or the server as runAs (nil: as the caller). Only
// Linux has a parent-death signal: elsewhere a server whose test binary died
// lingers until sweepOrphans or a reboot.
func procAttr(runAs *credential, server bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: runAs, Setpgid: server}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
