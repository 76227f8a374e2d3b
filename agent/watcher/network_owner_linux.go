package watcher

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// netOwnerTTL bounds how long a listener's owner is trusted: services restart.
const netOwnerTTL = 10 * time.Second

// netOwners finds the process that owns a listening port or a socket: the
// socket's inode from /proc/net/tcp{,6}, then the process holding
// socket:[inode] among /proc/*/fd. The kernel event cannot say (on loopback
// the running task is the client, on a NIC it is softirq). Results are cached
// per port because the /proc/*/fd walk costs milliseconds.
type netOwners struct {
	procRoot string
	mu       sync.Mutex
	byPort   map[uint16]netOwnerEntry
}

type netOwnerEntry struct {
	at    time.Time
	inode uint64
	proc  *event.Process
}

func newNetOwners(procRoot string) *netOwners {
	return &netOwners{procRoot: procRoot, byPort: map[uint16]netOwnerEntry{}}
}

// listener returns the owner of the socket listening on port, or nil.
func (o *netOwners) listener(port uint16) *event.Process {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.byPort[port]; ok && time.Since(e.at) < netOwnerTTL {
		return e.proc
	}
	var inode uint64
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		if ino, ok := netListenInode(filepath.Join(o.procRoot, f), port); ok {
			inode = ino
			break
		}
	}
	var p *event.Process
	if inode != 0 {
		p = o.socket(inode)
	}
	o.byPort[port] = netOwnerEntry{at: time.Now(), inode: inode, proc: p}
	return p
}

// socket returns the process holding the socket with this inode, or nil.
func (o *netOwners) socket(inode uint64) *event.Process {
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	dirs, err := os.ReadDir(o.procRoot)
	if err != nil {
		return nil
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(o.procRoot, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && l == want {
				p, _ := procfs.Read(o.procRoot, pid)
				return &p
			}
		}
	}
	return nil
}

// netListenInode finds the inode of the socket in LISTEN state (0A) on port
// in a /proc/net/tcp-format file.
func netListenInode(path string, port uint16) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseNetListenInode(b, port)
}

// parseNetListenInode is the pure part of netListenInode.
func parseNetListenInode(b []byte, port uint16) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		return ino, true
	}
	return 0, false
}
