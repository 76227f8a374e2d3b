package watcher

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socketDrops reads the kernel's drop counter of a socket (sk_drops, through
// SO_MEMINFO). On a TCP listener it counts handshakes dropped because the
// accept queue was full (the per-socket share of ListenOverflows/ListenDrops
// in /proc/net/netstat); on a UDP socket, datagrams dropped because the
// receive buffer was full.
func socketDrops(c syscall.Conn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err = rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		} else if size <= unix.SK_MEMINFO_DROPS*4 {
			serr = fmt.Errorf("SO_MEMINFO returned %d bytes", size)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("reading the socket's drop counter: %w", err)
	}
	return info[unix.SK_MEMINFO_DROPS], nil
}

// setBacklog shortens a listener's accept queue (listen(2) again on a
// listening socket only changes its backlog). Tests use it to overflow the
// queue on purpose.
func setBacklog(ln *net.TCPListener, n int) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), n) }); err != nil {
		return err
	}
	return lerr
}
