package pgtest

import (
	"errors"
	"syscall"
)

type credential = syscall.Credential

// procAttr runs initdb or the server as runAs (nil: as the caller). The
// server gets SIGQUIT, PostgreSQL's immediate shutdown, when the test binary
// dies without stopping it, so it never lingers.
func procAttr(runAs *credential, server bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Credential: runAs}
	if server {
		a.Pdeathsig = syscall.SIGQUIT
		a.Setpgid = true
	}
	return a
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
