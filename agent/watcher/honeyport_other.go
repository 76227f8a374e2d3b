//go:build !linux

package watcher

import (
	"errors"
	"net"
	"syscall"
)

// socketDrops: no per-socket drop counter is read outside Linux, so a
// connection dropped before accept goes uncounted there (docs/capabilities.md).
func socketDrops(syscall.Conn) (uint32, error) {
	return 0, errors.New("socket drop counters are read on Linux only")
}

func setBacklog(*net.TCPListener, int) error {
	return errors.New("setting the backlog is supported on Linux only")
}
