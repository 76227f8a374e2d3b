package watcher

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// inotifyReads gives the fsnotify fallback the reads the fsnotify library
// does not expose: IN_ACCESS on the watched files and directories, from a
// second inotify instance. Like the rest of the fallback it cannot name the
// reader. The kernel merges an access into an identical one still queued, so
// its count of reads is a lower bound.
type inotifyReads struct {
	f    *os.File
	log  *slog.Logger
	mu   sync.Mutex
	wds  map[int32]string // watch descriptor → watched path
	dirs map[string]bool  // directories: accesses carry an entry name
}

func newInotifyReads(log *slog.Logger) (*inotifyReads, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("opening inotify for reads: %w", err)
	}
	return &inotifyReads{f: os.NewFile(uintptr(fd), "inotify-reads"), log: log, wds: map[int32]string{}, dirs: map[string]bool{}}, nil
}

// watch adds IN_ACCESS on path, a file or a directory (whose entries'
// reads it then reports).
func (r *inotifyReads) watch(path string, dir bool) error {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return err
	}
	var wd int
	var werr error
	if err := rc.Control(func(fd uintptr) {
		wd, werr = unix.InotifyAddWatch(int(fd), path, unix.IN_ACCESS|unix.IN_ONLYDIR*boolBit(dir))
	}); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("watching reads of %s: %w", path, werr)
	}
	r.mu.Lock()
	r.wds[int32(wd)] = path
	r.dirs[path] = dir
	r.mu.Unlock()
	return nil
}

func boolBit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (r *inotifyReads) close() { r.f.Close() }

// run reports reads until the instance is closed.
func (r *inotifyReads) run(rules *fileRules, sink Sink, unmatched func()) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				r.log.Warn("reading inotify read events", "error", err.Error())
			}
			return
		}
		r.handle(buf[:n], rules, sink, unmatched)
	}
}

func (r *inotifyReads) handle(b []byte, rules *fileRules, sink Sink, unmatched func()) {
	const hdr = unix.SizeofInotifyEvent
	now := time.Now()
	for len(b) >= hdr {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		nameLen := int(binary.NativeEndian.Uint32(b[12:]))
		if hdr+nameLen > len(b) {
			return
		}
		name := string(b[hdr : hdr+nameLen])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		b = b[hdr+nameLen:]
		if mask&unix.IN_Q_OVERFLOW != 0 {
			sink.Lost(event.LossKernelOverflow, 1)
			continue
		}
		if mask&unix.IN_ACCESS == 0 {
			continue
		}
		r.mu.Lock()
		path, ok := r.wds[wd]
		r.mu.Unlock()
		if !ok {
			continue
		}
		if name != "" {
			path = filepath.Join(path, name)
		}
		rule := rules.match(path)
		if rule == nil {
			unmatched()
			continue
		}
		sink.Trip(fileTrip(event.FileAccess, rule, MechanismFsnotify, path, "", now, nil, fsnotifyMissing))
	}
}
