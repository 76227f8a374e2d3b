package watcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// sockdiagInterval is the poll period of the sock_diag fallback.
const sockdiagInterval = 500 * time.Millisecond

// TCP states (include/net/tcp_states.h) of a connection that was accepted:
// established, or closing from either side. TIME_WAIT keeps a connection the
// server closed visible for a minute, so even short ones are seen if the
// server closes first.
const sockdiagStates = 1<<1 | 1<<4 | 1<<5 | 1<<6 | 1<<8 | 1<<9 | 1<<11

// sockdiag is the observe-mode fallback: it dumps TCP sockets over netlink
// sock_diag every sockdiagInterval and reports connections on watched local
// ports that were not there at the previous poll. It cannot see SYNs to
// closed ports (no scans), and a connection opened and fully closed by the
// client between two polls may be missed.
type sockdiag struct {
	ports  map[uint16][]netTarget
	owners *netOwners
	log    *slog.Logger

	polls, tripped atomic.Uint64
}

// sockdiagTuple identifies a connection across polls.
type sockdiagTuple struct {
	local, remote netip.AddrPort
}

func newSockdiag(targets []netTarget, opts Options) (*sockdiag, error) {
	w := &sockdiag{ports: netPorts(targets), owners: newNetOwners(execProcRoot(opts)), log: execNetLogger(opts)}
	if _, err := w.poll(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *sockdiag) Kind() string      { return "network" }
func (w *sockdiag) Mechanism() string { return netMechSockdiag }
func (w *sockdiag) Missing() []string { return nil }

func (w *sockdiag) Counters() map[string]uint64 {
	return map[string]uint64{"polls": w.polls.Load(), "tripped": w.tripped.Load()}
}

func (w *sockdiag) Start(ctx context.Context, sink Sink) error {
	prev, err := w.poll()
	if err != nil {
		return err
	}
	w.log.Info("network watcher started", "mechanism", netMechSockdiag, "ports", len(w.ports), "interval", sockdiagInterval)
	go func() {
		t := time.NewTicker(sockdiagInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur, err := w.poll()
			if err != nil {
				w.log.Warn("sock_diag poll failed", "error", err)
				continue
			}
			at := time.Now()
			for tu := range cur {
				if prev[tu] {
					continue
				}
				owner := w.owners.listener(tu.local.Port())
				for _, t := range w.ports[tu.local.Port()] {
					w.tripped.Add(1)
					sink.Trip(netTrip(event.NetworkConnection, t, netMechSockdiag, tu.remote, tu.local, at, owner, nil))
				}
			}
			prev = cur
		}
	}()
	return nil
}

// poll returns the connections on watched local ports now.
func (w *sockdiag) poll() (map[sockdiagTuple]bool, error) {
	w.polls.Add(1)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	out := map[sockdiagTuple]bool{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := sockdiagDump(fd, fam, func(local, remote netip.AddrPort) {
			if _, ok := w.ports[local.Port()]; ok {
				out[sockdiagTuple{local, remote}] = true
			}
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sockdiagDump asks for every TCP socket of one family in sockdiagStates
// and calls fn with its local and remote address.
func sockdiagDump(fd int, family uint8, fn func(local, remote netip.AddrPort)) error {
	const reqLen = 56 // struct inet_diag_req_v2
	req := make([]byte, unix.NLMSG_HDRLEN+reqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], sockdiagStates)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending sock_diag request: %w", err)
	}
	buf := make([]byte, 64*1024)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading sock_diag: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parsing sock_diag: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
					}
				}
				return nil
			}
			local, remote, ok := parseInetDiagMsg(m.Data)
			if ok {
				fn(local, remote)
			}
		}
	}
}

// parseInetDiagMsg reads the addresses of a struct inet_diag_msg: family at
// 0, then inet_diag_sockid at 4 (sport, dport big-endian; src, dst 16 bytes).
func parseInetDiagMsg(b []byte) (local, remote netip.AddrPort, ok bool) {
	if len(b) < 72 {
		return local, remote, false
	}
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	var src, dst netip.Addr
	switch b[0] {
	case unix.AF_INET:
		src, dst = netip.AddrFrom4([4]byte(b[8:12])), netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return local, remote, false
	}
	return netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport), true
}
