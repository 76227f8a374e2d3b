package watcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Proc connector constants (linux/connector.h, linux/cn_proc.h); x/sys has
// only NETLINK_CONNECTOR.
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExec     = 0x00000002
	cnMsgLen          = 20 // struct cn_msg without data
)

// execProcConn is the last fallback: the netlink proc connector announces
// every exec on the host (PID only) and everything else is read from /proc,
// so a process that exits at once may leave little to read.
type execProcConn struct {
	rules    *execRules
	procRoot string
	log      *slog.Logger

	// gone counts execs whose process exited before /proc could say what
	// it ran: the proc connector gives nothing else, so they cannot be
	// matched (most are unwatched; the count is exported, not a loss).
	seen, overflows, tripped, gone atomic.Uint64
}

func newExecProcConn(rules *execRules, opts Options) (*execProcConn, error) {
	fd, err := procConnOpen()
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return &execProcConn{rules: rules, procRoot: execProcRoot(opts), log: execNetLogger(opts)}, nil
}

// procConnOpen binds to the proc connector's multicast group and asks it to
// start sending; both need CAP_NET_ADMIN.
func procConnOpen() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return -1, fmt.Errorf("opening proc connector socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding proc connector: %w", err)
	}
	// A bigger buffer rides out exec bursts; overflow is still reported.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	msg := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+4)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	cn := msg[unix.NLMSG_HDRLEN:]
	binary.NativeEndian.PutUint32(cn[0:], cnIdxProc)
	binary.NativeEndian.PutUint32(cn[4:], cnValProc)
	binary.NativeEndian.PutUint16(cn[16:], 4)
	binary.NativeEndian.PutUint32(cn[cnMsgLen:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("subscribing to proc connector: %w", err)
	}
	return fd, nil
}

func (w *execProcConn) Kind() string      { return "process" }
func (w *execProcConn) Mechanism() string { return procMechProcConn }
func (w *execProcConn) Missing() []string { return nil }

func (w *execProcConn) Counters() map[string]uint64 {
	return map[string]uint64{"exec_seen": w.seen.Load(), event.LossNetlinkOverflow: w.overflows.Load(),
		"tripped": w.tripped.Load(), "exec_gone": w.gone.Load()}
}

func (w *execProcConn) Start(ctx context.Context, sink Sink) error {
	fd, err := procConnOpen()
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "proc-connector")
	w.log.Info("process watcher started", "mechanism", procMechProcConn)

	type job struct {
		pid int
		at  time.Time
	}
	jobs := make(chan job, 4096)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				for _, e := range w.handle(j.pid, j.at) {
					w.tripped.Add(1)
					sink.Trip(e)
				}
			}
		}()
	}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer func() {
			close(jobs)
			wg.Wait()
		}()
		buf := make([]byte, 64*1024)
		for {
			n, err := f.Read(buf)
			if errors.Is(err, unix.ENOBUFS) {
				// The socket overflowed: the count is unknown, at least one.
				w.overflows.Add(1)
				sink.Lost(event.LossNetlinkOverflow, 1)
				continue
			}
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					w.log.Warn("reading proc connector", "error", err)
				}
				return
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				pid, ok := procConnExecPID(m.Data)
				if !ok {
					continue
				}
				w.seen.Add(1)
				select {
				case jobs <- job{pid: pid, at: time.Now()}:
				default:
					sink.Lost(event.LossExecBacklog, 1)
				}
			}
		}
	}()
	return nil
}

// procConnExecPID parses a cn_msg carrying a proc_event and returns the
// process (tgid) of an exec event.
func procConnExecPID(b []byte) (int, bool) {
	// cn_msg, then proc_event: what, cpu, timestamp_ns, exec{pid, tgid}.
	if len(b) < cnMsgLen+24 {
		return 0, false
	}
	if binary.NativeEndian.Uint32(b[0:]) != cnIdxProc || binary.NativeEndian.Uint32(b[4:]) != cnValProc {
		return 0, false
	}
	ev := b[cnMsgLen:]
	if binary.NativeEndian.Uint32(ev[0:]) != procEventExec {
		return 0, false
	}
	return int(binary.NativeEndian.Uint32(ev[20:])), true
}

func (w *execProcConn) handle(pid int, at time.Time) []*event.Event {
	exe := filepath.Join(w.procRoot, strconv.Itoa(pid), "exe")
	fi, err := os.Stat(exe)
	if err != nil {
		w.gone.Add(1)
		return nil
	}
	id, _ := execFileIDOf(fi)
	comm, _ := os.ReadFile(filepath.Join(w.procRoot, strconv.Itoa(pid), "comm"))
	name := strings.TrimSuffix(string(comm), "\n")
	if !w.rules.ids[id] && !w.rules.sizes[fi.Size()] && !w.rules.names[truncComm(name)] {
		return nil
	}
	s, p, missing, _ := execFromProc(w.procRoot, pid, id, at)
	if s.Comm == "" {
		s.Comm = name
	}
	s.ID, s.Size = id, fi.Size()
	return w.rules.trips(&s, p, procMechProcConn, missing, w.procRoot)
}
