package pgtest

import "syscall"

// credential stands in for the Unix one: on Windows the harness compiles (so
// the packages that use it vet on every target) but never switches users.
type credential struct{ Uid, Gid uint32 }

func procAttr(*credential, bool) *syscall.SysProcAttr { return nil }

// processAlive says yes: without a cheap liveness check, sweepOrphans keeps
// every directory rather than remove a running cluster's.
func processAlive(int) bool { return true }
