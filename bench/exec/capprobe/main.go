//go:build linux

// Command capprobe tries each kernel mechanism the watchers use once and
// prints what works with the capabilities it runs with. bench/exec/caps.sh
// runs it as user nobody with one capability set after another: the evidence
// behind docs/capabilities.md.
//
//	capprobe PID   # PID: a process of another user, for the /proc checks
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/bpf"
)

func try(name string, fn func() error) {
	if err := fn(); err != nil {
		fmt.Printf("%-28s FAIL %v\n", name, err)
		return
	}
	fmt.Printf("%-28s ok\n", name)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: capprobe PID")
		os.Exit(2)
	}
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range splitLines(string(b)) {
		if len(l) > 6 && l[:6] == "CapEff" {
			fmt.Println(l)
		}
	}
	try("ebpf exec load+attach", func() error {
		spec, err := bpf.LoadTripwire()
		if err != nil {
			return err
		}
		var o struct {
			P *ebpf.Program `ebpf:"tw_exec"`
			M *ebpf.Map     `ebpf:"exec_events"`
		}
		if err := spec.LoadAndAssign(&o, nil); err != nil {
			return err
		}
		defer o.P.Close()
		defer o.M.Close()
		l, err := link.AttachTracing(link.TracingOptions{Program: o.P})
		if err != nil {
			return err
		}
		return l.Close()
	})
	try("ebpf net load+attach", func() error {
		spec, err := bpf.LoadTripwire()
		if err != nil {
			return err
		}
		var o struct {
			P *ebpf.Program `ebpf:"tw_sock_state"`
			Q *ebpf.Program `ebpf:"tw_tcp_reset"`
		}
		if err := spec.LoadAndAssign(&o, nil); err != nil {
			return err
		}
		defer o.P.Close()
		defer o.Q.Close()
		l, err := link.AttachTracing(link.TracingOptions{Program: o.P})
		if err != nil {
			return err
		}
		return l.Close()
	})
	try("fanotify inode exec mark", func() error {
		fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, "/bin/true")
	})
	try("fanotify filesystem mark", func() error {
		fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, "/")
	})
	try("proc connector", func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_CONNECTOR)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		msg := make([]byte, 16+20+4)
		ne := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
		ne(msg[0:], uint32(len(msg)))
		msg[4] = 3 // NLMSG_DONE
		ne(msg[16:], 1)
		ne(msg[20:], 1)
		msg[32] = 4
		ne(msg[36:], 1)
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
		go exec.Command("/bin/true").Run()
		buf := make([]byte, 8192)
		for i := 0; i < 50; i++ {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return fmt.Errorf("recv: %w", err)
			}
			if n >= 16+20+4 && buf[36] == 2 {
				return nil
			}
		}
		return fmt.Errorf("no exec event")
	})
	try("sock_diag socket", func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	})
	try("readlink /proc/PID/exe", func() error { _, err := os.Readlink("/proc/" + os.Args[1] + "/exe"); return err })
	try("readlink /proc/PID/fd/*", func() error {
		ents, err := os.ReadDir("/proc/" + os.Args[1] + "/fd")
		if err != nil {
			return err
		}
		_, err = os.Readlink("/proc/" + os.Args[1] + "/fd/" + ents[0].Name())
		return err
	})
	try("listen tcp :81", func() error {
		l, err := net.Listen("tcp", ":81")
		if err != nil {
			return err
		}
		return l.Close()
	})
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
