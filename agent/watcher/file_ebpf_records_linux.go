package watcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/bpf"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// Sizes of a file record's parts, from the generated types of tripwire.h
// (the exec event has the same executable path and argv limits).
const (
	fileExeDepth = len(bpf.TripwireExecEvent{}.Resolved)
	fileExeLen   = len(bpf.TripwireExecEvent{}.Resolved[0])
	fileArgsLen  = len(bpf.TripwireExecEvent{}.Args)
	fileNameLen  = 256 // TW_FILE_NAME_LEN: NAME_MAX + NUL
)

// fileRecord is one record of the file ring buffer: the header, and the
// parts of its variable tail (tripwire.h), as views into the sample.
type fileRecord struct {
	bpf.FileFileEvent
	names, toNames [][fileNameLen]int8
	exe            [][fileExeLen]int8
	args           []int8
}

// parseFileRecord splits a record into its parts, or reports it malformed
// when the lengths the kernel wrote do not fit the sample or the limits.
func parseFileRecord(raw []byte) (*fileRecord, bool) {
	head := int(unsafe.Sizeof(bpf.FileFileEvent{}))
	if len(raw) < head {
		return nil, false
	}
	// A copy of the header as the C struct lays it out (the Go type is
	// generated from it with the same layout).
	r := &fileRecord{FileFileEvent: *(*bpf.FileFileEvent)(unsafe.Pointer(&raw[0]))}
	if r.Depth > fileEBPFDepth || r.ToDepth > fileEBPFDepth || r.ArgsLen > uint32(fileArgsLen) || r.ExeN > uint32(fileExeDepth) {
		return nil, false
	}
	tail := raw[head:]
	if len(tail) < int(r.Depth+r.ToDepth)*fileNameLen+int(r.ExeN)*fileExeLen+int(r.ArgsLen) {
		return nil, false
	}
	r.names, tail = slotsOf[[fileNameLen]int8](tail, int(r.Depth))
	r.toNames, tail = slotsOf[[fileNameLen]int8](tail, int(r.ToDepth))
	r.exe, tail = slotsOf[[fileExeLen]int8](tail, int(r.ExeN))
	r.args = unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(tail))), r.ArgsLen)
	return r, true
}

// slotsOf views the first n fixed-size slots of b without copying, and
// returns the rest. The caller has checked that b holds them.
func slotsOf[S any](b []byte, n int) ([]S, []byte) {
	size := int(unsafe.Sizeof(*new(S)))
	if n == 0 {
		return nil, b
	}
	return unsafe.Slice((*S)(unsafe.Pointer(&b[0])), n), b[n*size:]
}

// handle turns one record into a trip.
func (w *fileEBPF) handle(raw []byte, sink Sink) {
	ev, ok := parseFileRecord(raw)
	if !ok {
		w.malformed.Add(1)
		return
	}
	w.records.Add(1)
	e, r := w.tripOf(ev)
	var st *fileTripState
	counted := false // its trip is already in a summary sent without it
	if ev.Flags&uint32(bpf.FileTwFileFlagTW_FILE_AGGREGATED) != 0 {
		delete(w.awaiting, ev.Key)
		if st = w.trips[ev.Key]; st != nil {
			// A summary gave up waiting for this record (summarise) and
			// reported its count without it: only the actor is new.
			counted = true
		} else {
			st = &fileTripState{reported: 1}
			w.trips[ev.Key] = st
		}
	}
	if e == nil {
		w.unmatched.Add(1)
		if st != nil {
			st.excluded = true // no rule covers it: its repeats are not trips either
		}
		return
	}
	op := bpf.FileTwFileOp(ev.Key.Op)
	if op == bpf.FileTwFileOpTW_FILE_CREATE || op == bpf.FileTwFileOpTW_FILE_DELETE || op == bpf.FileTwFileOpTW_FILE_RENAME {
		// The hooks run before the change: it has most likely happened by
		// now, and whoever sees the trip should find the new file watched;
		// once more at the next summary in case it had not.
		w.rewatch()
		w.resolve = true
	}
	if r.excl.excludes(e.Process, bpfCString(ev.Comm[:])) {
		w.excluded.Add(1)
		if st != nil {
			st.excluded = true
		}
		return
	}
	if st != nil {
		st.tmpl = e
	}
	if !counted {
		sink.Trip(cloneTrip(e))
	}
}

// cloneTrip copies e so the template kept for summaries is never shared
// with the pipeline.
func cloneTrip(e *event.Event) *event.Event {
	c := *e
	if e.Process != nil {
		p := *e.Process
		c.Process = &p
	}
	if e.File != nil {
		f := *e.File
		c.File = &f
	}
	return &c
}

var fileOpNames = map[bpf.FileTwFileOp]event.Name{
	bpf.FileTwFileOpTW_FILE_ACCESS: event.FileAccess,
	bpf.FileTwFileOpTW_FILE_MODIFY: event.FileModify,
	bpf.FileTwFileOpTW_FILE_ATTRIB: event.FileAttrib,
	bpf.FileTwFileOpTW_FILE_CREATE: event.FileCreate,
	bpf.FileTwFileOpTW_FILE_DELETE: event.FileDelete,
	bpf.FileTwFileOpTW_FILE_RENAME: event.FileRename,
}

// tripOf builds the event of a record, or nil when no rule covers it (a
// sibling of a watched file created in its directory).
func (w *fileEBPF) tripOf(ev *fileRecord) (*event.Event, *fileRule) {
	name, ok := fileOpNames[bpf.FileTwFileOp(ev.Key.Op)]
	if !ok {
		return nil, nil
	}
	a, ok := w.anchor(bpf.FileInodeKey{Dev: ev.AnchorDev, Ino: ev.AnchorIno})
	if !ok {
		return nil, nil // watches changed since
	}
	path := joinBelow(a.path, ev.names)
	var r *fileRule
	if a.kind == bpf.FileTwWatchKindTW_WATCH_PARENT || a.rule < 0 || a.rule >= len(w.ruleIDs) {
		r = w.rules.match(path)
	} else {
		r = w.ruleIDs[a.rule]
	}
	var other string
	if name == event.FileRename {
		other = w.otherPath(ev)
		if r == nil {
			r = w.rules.match(other)
		}
	}
	if r == nil {
		return nil, nil
	}
	from, to := path, other
	if ev.Flags&uint32(bpf.FileTwFileFlagTW_FILE_INTO) != 0 {
		from, to = other, path
	}
	proc, missing := w.actorOf(ev)
	return fileTrip(name, r, w.mech, from, to, bootToWall(ev.BootNs), proc, missing), r
}

// otherPath is the side of a rename that did not match, walked to its
// filesystem root and placed under where that filesystem is mounted.
func (w *fileEBPF) otherPath(ev *fileRecord) string {
	rel := joinBelow("", ev.toNames)
	if ev.Flags&uint32(bpf.FileTwFileFlagTW_FILE_TO_ROOT) == 0 {
		return "..." + rel // deeper than the walk: the leading directories are unknown
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, a := range w.anchors {
		if k.Dev == ev.ToDev {
			if root := fsRoot(a.path, k.Dev); root != "" {
				return filepath.Clean(root + rel)
			}
		}
	}
	return rel
}

// fsRoot finds where the filesystem dev holding path is mounted, by walking
// up from path while the device stays the same.
func fsRoot(path string, kdev uint64) string {
	for p := path; ; {
		up := filepath.Dir(p)
		var st unix.Stat_t
		if up == p || unix.Stat(up, &st) != nil || kernelDev(st.Dev) != kdev {
			return p
		}
		p = up
	}
}

// joinBelow appends names (leaf first, as the kernel walks) under base.
func joinBelow(base string, names [][fileNameLen]int8) string {
	var b strings.Builder
	b.WriteString(base)
	for i := len(names) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(bpfCString(names[i][:]))
	}
	return b.String()
}

// actorOf is the process the kernel saw, completed from /proc only where the
// kernel could not read it and the process is still there.
func (w *fileEBPF) actorOf(ev *fileRecord) (*event.Process, []string) {
	uid := strconv.FormatUint(uint64(ev.Uid), 10)
	p := &event.Process{
		PID:      int64(ev.Key.Tgid),
		PPID:     int64(ev.Ppid),
		UserID:   uid,
		UserName: procfs.UserName(uid),
		CgroupID: int64(ev.CgroupId),
	}
	var missing []string
	const incomplete = uint32(bpf.TripwireTwExecFlagTW_EXEC_RESOLVED_PARTIAL | bpf.TripwireTwExecFlagTW_EXEC_RESOLVED_CUT)
	if ev.ExeN > 0 && ev.TaskFlags&incomplete == 0 {
		p.ExecutablePath = procfs.Printable(joinSlots(ev.exe))
	} else if exe, err := os.Readlink(filepath.Join(w.procRoot, strconv.Itoa(int(ev.Key.Tgid)), "exe")); err == nil {
		p.ExecutablePath = procfs.Printable(exe)
	} else {
		missing = append(missing, procfs.KeyExecutable)
	}
	if ev.ArgsLen > 0 {
		line, cut := procfs.CommandLine(bpfBytes(ev.args))
		p.CommandLine = line
		p.ArgsTruncated = cut || ev.TaskFlags&uint32(bpf.TripwireTwExecFlagTW_EXEC_ARGS_TRUNCATED) != 0
	} else if rp, err := procfs.Read(w.procRoot, int(ev.Key.Tgid)); err == nil || rp.CommandLine != "" {
		p.CommandLine, p.ArgsTruncated = rp.CommandLine, rp.ArgsTruncated
	} else {
		missing = append(missing, procfs.KeyCommandLine)
	}
	if p.UserName == "" {
		missing = append(missing, procfs.KeyUserName)
	}
	p.Ancestry = w.ancestry(ev.Key, p.PPID)
	return p, missing
}

// ancestry reads the actor's parents from /proc, once per process while
// it keeps tripping (a process reading a whole tree is one actor).
func (w *fileEBPF) ancestry(k bpf.FileFileTripKey, ppid int64) string {
	if ppid <= 0 {
		return ""
	}
	id := [2]uint64{uint64(k.Tgid), k.StartNs}
	if a, ok := w.ancestries[id]; ok {
		return a
	}
	if len(w.ancestries) >= fanActorCacheSize {
		clear(w.ancestries)
	}
	a := procfs.AncestryFrom(w.procRoot, int(ppid), fanAncestryDepth)
	w.ancestries[id] = a
	return a
}

// joinSlots joins path components the kernel wrote leaf first.
func joinSlots(slots [][fileExeLen]int8) string {
	parts := make([]string, 0, len(slots))
	for i := len(slots) - 1; i >= 0; i-- {
		if c := bpfCString(slots[i][:]); c != "" {
			parts = append(parts, c)
		}
	}
	return "/" + strings.Join(parts, "/")
}
