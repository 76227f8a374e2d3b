package watcher

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/bpf"
)

func TestParseNetListenInode(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   3: garbage
`
	if ino, ok := parseNetListenInode([]byte(tcp), 8080); !ok || ino != 31337 {
		t.Errorf("port 8080: %d %v, want the listener 31337", ino, ok)
	}
	if ino, ok := parseNetListenInode([]byte(tcp), 22); !ok || ino != 999 {
		t.Errorf("port 22: %d %v", ino, ok)
	}
	if _, ok := parseNetListenInode([]byte(tcp), 50000); ok {
		t.Error("port 50000 has no listener")
	}
}

func TestParseInetDiagMsg(t *testing.T) {
	b := make([]byte, 72)
	b[0] = unix.AF_INET6
	binary.BigEndian.PutUint16(b[4:], 5432)
	binary.BigEndian.PutUint16(b[6:], 40000)
	copy(b[8:], netip.MustParseAddr("::1").AsSlice())
	copy(b[24:], netip.MustParseAddr("2001:db8::7").AsSlice())
	local, remote, ok := parseInetDiagMsg(b)
	if !ok || local.String() != "[::1]:5432" || remote.String() != "[2001:db8::7]:40000" {
		t.Errorf("got %v %v %v", local, remote, ok)
	}
	if _, _, ok := parseInetDiagMsg(b[:71]); ok {
		t.Error("short message accepted")
	}
	b[0] = 99
	if _, _, ok := parseInetDiagMsg(b); ok {
		t.Error("unknown family accepted")
	}
}

func TestProcConnExecPID(t *testing.T) {
	b := make([]byte, cnMsgLen+24)
	binary.NativeEndian.PutUint32(b[0:], cnIdxProc)
	binary.NativeEndian.PutUint32(b[4:], cnValProc)
	binary.NativeEndian.PutUint32(b[cnMsgLen:], procEventExec)
	binary.NativeEndian.PutUint32(b[cnMsgLen+16:], 4321) // pid (thread)
	binary.NativeEndian.PutUint32(b[cnMsgLen+20:], 4300) // tgid
	if pid, ok := procConnExecPID(b); !ok || pid != 4300 {
		t.Errorf("exec: %d %v, want tgid 4300", pid, ok)
	}
	binary.NativeEndian.PutUint32(b[cnMsgLen:], 1) // fork
	if _, ok := procConnExecPID(b); ok {
		t.Error("fork event taken for exec")
	}
	if _, ok := procConnExecPID(b[:30]); ok {
		t.Error("short message accepted")
	}
}

func TestExecSightingOf(t *testing.T) {
	var ev bpf.TripwireExecEvent
	ev.Pid, ev.Ppid, ev.Uid = 10, 1, 1000
	setC(ev.Comm[:], "nc")
	setC(ev.Filename[:], "/usr/bin/nc")
	args := "nc\x00-l\x00"
	setC(ev.Args[:], args)
	ev.ArgsLen = uint32(len(args))
	ev.Dev = 8<<20 | 1 // kernel encoding of 8:1
	s, ok := execSightingOf(&ev)
	if !ok || s.PID != 10 || s.Comm != "nc" || s.Filename != "/usr/bin/nc" || string(s.Args) != args || s.ID.Dev != unix.Mkdev(8, 1) {
		t.Errorf("got %+v %v", s, ok)
	}
	if kernelDev(unix.Mkdev(259, 300)) != 259<<20|300 || userDev(259<<20|300) != unix.Mkdev(259, 300) {
		t.Error("dev encoding does not round-trip")
	}
	ev.ArgsLen = uint32(len(ev.Args) + 1)
	if _, ok := execSightingOf(&ev); ok {
		t.Error("args_len beyond the buffer accepted")
	}
	ev.ArgsLen, ev.Pid = 0, 0
	if _, ok := execSightingOf(&ev); ok {
		t.Error("pid 0 accepted")
	}
}

// setC writes s into a C char array of a kernel record.
func setC(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
}

func TestExecSightingResolved(t *testing.T) {
	var ev bpf.TripwireExecEvent
	ev.Pid = 10
	for i, c := range []string{"tw-nc", "x", "", "shm", "dev"} { // leaf first; "" is a mount crossing
		setC(ev.Resolved[i][:], c)
	}
	ev.ResolvedN = 5
	if s, ok := execSightingOf(&ev); !ok || s.Resolved != "/dev/shm/x/tw-nc" {
		t.Errorf("resolved = %q %v", s.Resolved, ok)
	}
	ev.Flags = uint32(bpf.TripwireTwExecFlagTW_EXEC_RESOLVED_PARTIAL)
	if s, _ := execSightingOf(&ev); s.Resolved != "" {
		t.Errorf("a partial walk gave %q", s.Resolved)
	}
	ev.ResolvedN = uint32(len(ev.Resolved) + 1)
	if _, ok := execSightingOf(&ev); ok {
		t.Error("resolved_n beyond the slots accepted")
	}
}
