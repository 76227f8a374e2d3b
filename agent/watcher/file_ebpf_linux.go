package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/bpf"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// The eBPF file watcher (bpf/file.bpf.c) hooks the LSM checks of the VFS:
// every open, create, delete, rename and attribute change of a watched inode
// is matched, attributed and counted in the kernel, inline and without
// waiting for the agent. Identical trips (same file, rule, operation and
// process) share one kernel counter: the first reaches user space as a
// record with the whole actor (argv and executable read from the task
// itself, so a process that has already exited is still named), and the
// agent reports the count's growth every fileSummaryInterval as one event
// with tripwire.count set. The sum of counts is exact: a record the ring
// buffer could not take still leaves its count, reported without the actor,
// and a trip neither counted nor recorded is reported as loss.

// fileSummaryInterval is how often counts are read from the kernel; the
// pipeline's coalescing window defaults to the same second.
const fileSummaryInterval = time.Second

// fileReapEvery: every this many summaries, counters of exited processes are
// reported a last time and removed.
const fileReapEvery = 5

// fileEBPFDepth is how many directory levels below a recursive rule's root
// the kernel walks (TW_FILE_DEPTH in bpf/tripwire.h).
const fileEBPFDepth = 16

// fileUserHZ is USER_HZ, the unit of /proc/PID/stat's start time.
const fileUserHZ = 100

// fileRingBytes, when non-zero, overrides the file ring buffer size: tests
// shrink it to force reserve failures.
var fileRingBytes uint32

// fileEBPFPrograms names the programs of each attach mode.
var fileEBPFPrograms = map[string][]string{
	MechanismEBPF: {"tw_file_open", "tw_inode_setattr", "tw_inode_create", "tw_inode_mkdir",
		"tw_inode_unlink", "tw_inode_rmdir", "tw_inode_rename"},
	MechanismEBPFLSM: {"tw_lsm_file_open", "tw_lsm_inode_setattr", "tw_lsm_inode_create", "tw_lsm_inode_mkdir",
		"tw_lsm_inode_unlink", "tw_lsm_inode_rmdir", "tw_lsm_inode_rename"},
	MechanismEBPFSyscall: {"tw_sys_exit_open"},
}

// fileEBPFProbe loads the programs of mech without attaching them (and, for
// the LSM, checks that "bpf" is an active LSM, without which the programs
// attach and never run).
func fileEBPFProbe(mech string) error {
	if mech == MechanismEBPFLSM {
		if err := bpfLSMActive(); err != nil {
			return err
		}
	}
	coll, err := loadFileCollection(mech, 1)
	if err != nil {
		return err
	}
	coll.Close()
	return nil
}

// bpfLSMActive reads the active LSM list, mounting securityfs if it is not.
func bpfLSMActive() error {
	const lsmPath = "/sys/kernel/security/lsm"
	b, err := os.ReadFile(lsmPath)
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mount("securityfs", "/sys/kernel/security", "securityfs", 0, ""); merr != nil {
			return fmt.Errorf("reading the active LSMs: mounting securityfs: %w", merr)
		}
		b, err = os.ReadFile(lsmPath)
	}
	if err != nil {
		return fmt.Errorf("reading the active LSMs: %w", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if l == "bpf" {
			return nil
		}
	}
	return fmt.Errorf("bpf is not an active LSM (%s): boot with lsm=...,bpf", strings.TrimSpace(string(b)))
}

// loadFileCollection loads the maps and the programs of one attach mode.
func loadFileCollection(mech string, walkDepth uint32) (*ebpf.Collection, error) {
	spec, err := bpf.LoadFile()
	if err != nil {
		return nil, fmt.Errorf("reading bpf object: %w", err)
	}
	keep := map[string]bool{}
	for _, p := range fileEBPFPrograms[mech] {
		keep[p] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	if fileRingBytes != 0 {
		spec.Maps[bpf.FileMapFileEvents].MaxEntries = fileRingBytes
	}
	if err := spec.Variables["self_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("setting self_tgid: %w", err)
	}
	if err := spec.Variables["walk_depth"].Set(walkDepth); err != nil {
		return nil, fmt.Errorf("setting walk_depth: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading file programs (%s): %w", mech, err)
	}
	return coll, nil
}

// fileAnchor is a watched inode the kernel matches against.
type fileAnchor struct {
	path string
	rule int
	kind bpf.FileTwWatchKind
}

// fileTripState is what the agent knows of one kernel counter.
type fileTripState struct {
	reported uint64
	tmpl     *event.Event // nil while excluded or before the record arrives
	excluded bool
}

type fileEBPF struct {
	rules    *fileRules
	ruleIDs  []*fileRule
	mech     string
	procRoot string
	log      *slog.Logger

	coll *ebpf.Collection
	// anchors is replaced whole by watch, under mu: the fanotify half of
	// ebpf_syscall calls rewatch from its own goroutine.
	mu      sync.Mutex
	anchors map[bpf.FileInodeKey]fileAnchor
	// Owned by the loop once start returns.
	trips      map[bpf.FileFileTripKey]*fileTripState
	ancestries map[[2]uint64]string                      // (tgid, start) → ancestry
	inodes     map[*fileRule]map[bpf.FileInodeKey]string // files under directory rules, found when a record was lost
	resolve    bool                                      // a watched path was deleted, renamed or created: resolve again at the next summary

	records, summaries, excluded, unmatched, malformed atomic.Uint64
	undetailed, unaggregated, lost, reaped, markErrors atomic.Uint64
}

func newFileEBPF(rs *fileRules, mech string, opts Options, log *slog.Logger) *fileEBPF {
	return &fileEBPF{rules: rs, ruleIDs: rs.rules, mech: mech, procRoot: opts.ProcRoot, log: log,
		anchors: map[bpf.FileInodeKey]fileAnchor{}, trips: map[bpf.FileFileTripKey]*fileTripState{},
		ancestries: map[[2]uint64]string{}}
}

func (w *fileEBPF) counters() map[string]uint64 {
	return map[string]uint64{
		"records":           w.records.Load(),
		"summaries":         w.summaries.Load(),
		"excluded_trips":    w.excluded.Load(),
		"unmatched_events":  w.unmatched.Load(),
		"malformed_records": w.malformed.Load(),
		// Trips counted whose record the ring buffer could not take: their
		// events name no actor. Trips the counter map had no room for went
		// out as records of their own. Trips lost outright are loss events.
		"undetailed_trips":   w.undetailed.Load(),
		"unaggregated_trips": w.unaggregated.Load(),
		"ringbuf_lost":       w.lost.Load(),
		"counters_reaped":    w.reaped.Load(),
		"mark_errors":        w.markErrors.Load(),
	}
}

func (w *fileEBPF) start(ctx context.Context, sink Sink) error {
	depth := uint32(1)
	if len(w.rules.recursive) > 0 {
		depth = fileEBPFDepth
	}
	coll, err := loadFileCollection(w.mech, depth)
	if err != nil {
		return err
	}
	w.coll = coll
	if err := w.watch(); err != nil {
		coll.Close()
		return err
	}
	var links []link.Link
	detach := func() {
		for _, l := range links {
			l.Close()
		}
	}
	for _, name := range fileEBPFPrograms[w.mech] {
		var l link.Link
		if w.mech == MechanismEBPFLSM {
			l, err = link.AttachLSM(link.LSMOptions{Program: coll.Programs[name]})
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: coll.Programs[name]})
		}
		if err != nil {
			detach()
			coll.Close()
			return fmt.Errorf("attaching %s: %w", name, err)
		}
		links = append(links, l)
	}
	rd, err := ringbuf.NewReader(coll.Maps[bpf.FileMapFileEvents])
	if err != nil {
		detach()
		coll.Close()
		return fmt.Errorf("opening file ring buffer: %w", err)
	}
	var reported uint64
	runEBPF(ctx, rd,
		func() { w.loop(rd, coll, sink) },
		func() { w.reportStats(coll.Maps[bpf.FileMapStats], sink, &reported) },
		nil, detach, func() { coll.Close() })
	return nil
}

// watch fills file_watches and file_devs from the rules. A recursive rule
// also anchors every filesystem mounted below its root, since the kernel's
// walk stays on one filesystem.
func (w *fileEBPF) watch() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	coll := w.coll
	anchors := map[bpf.FileInodeKey]fileAnchor{}
	add := func(path string, rule int, kind bpf.FileTwWatchKind) error {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return fmt.Errorf("watching %s: %w", path, err)
		}
		k := bpf.FileInodeKey{Dev: kernelDev(st.Dev), Ino: st.Ino}
		if cur, ok := anchors[k]; ok && (kind == bpf.FileTwWatchKindTW_WATCH_PARENT || cur.kind != bpf.FileTwWatchKindTW_WATCH_PARENT) {
			return nil // a rule's own anchor outranks a parent's
		}
		anchors[k] = fileAnchor{path: path, rule: rule, kind: kind}
		return nil
	}
	ids := map[*fileRule]int{}
	for i, r := range w.ruleIDs {
		ids[r] = i
	}
	var mounts []string
	if len(w.rules.recursive) > 0 {
		mounts = mountPoints()
	}
	for p, r := range w.rules.files {
		if err := add(p, ids[r], bpf.FileTwWatchKindTW_WATCH_FILE); err != nil {
			return err
		}
	}
	for p, r := range w.rules.dirs {
		kind := bpf.FileTwWatchKindTW_WATCH_DIR
		if r.Recursive {
			kind = bpf.FileTwWatchKindTW_WATCH_TREE
		}
		if err := add(p, ids[r], kind); err != nil {
			return err
		}
		if !r.Recursive {
			continue
		}
		for _, m := range mounts {
			if strings.HasPrefix(m, p+"/") || (p == "/" && m != "/") {
				if err := add(m, ids[r], kind); err != nil {
					w.markErrors.Add(1)
					w.log.Warn("cannot watch a filesystem mounted in a watched tree", "file.path", m, "error", err.Error())
				}
			}
		}
	}
	// Parents last: creating or renaming something into a watched path's
	// directory replaces what the rule watches.
	for p := range w.rules.exact {
		if dir := filepath.Dir(p); dir != p {
			if err := add(dir, -1, bpf.FileTwWatchKindTW_WATCH_PARENT); err != nil {
				w.markErrors.Add(1)
				w.log.Warn("cannot watch the directory of a watched path", "file.path", dir, "error", err.Error())
			}
		}
	}
	watches, devs := coll.Maps[bpf.FileMapFileWatches], coll.Maps[bpf.FileMapFileDevs]
	one := uint8(1)
	for k, a := range anchors {
		v := bpf.FileFileWatch{Rule: uint32(max(a.rule, 0)), Kind: uint32(a.kind)}
		if err := watches.Put(k, v); err != nil {
			return fmt.Errorf("filling file_watches: %w", err)
		}
		if err := devs.Put(k.Dev, one); err != nil {
			return fmt.Errorf("filling file_devs: %w", err)
		}
	}
	for k := range w.anchors {
		if _, ok := anchors[k]; !ok {
			watches.Delete(k)
		}
	}
	w.anchors = anchors
	return nil
}

// rewatch resolves the watched paths again: one may name another file now.
func (w *fileEBPF) rewatch() {
	if err := w.watch(); err != nil {
		w.markErrors.Add(1)
		w.log.Warn("resolving watched paths again", "error", err.Error())
	}
}

// anchor looks a watched inode up.
func (w *fileEBPF) anchor(k bpf.FileInodeKey) (fileAnchor, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.anchors[k]
	return a, ok
}

// mountPoints lists this mount namespace's mount points.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, unescapeMountPath(f[4]))
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loop reads records and, every fileSummaryInterval, reports the counts'
// growth, in one goroutine so a record and the counter it started are never
// reported twice. It ends when the reader is flushed empty after detaching
// (shutdown) with a last summary: nothing counted is left unreported.
func (w *fileEBPF) loop(rd *ringbuf.Reader, coll *ebpf.Collection, sink Sink) {
	trips := coll.Maps[bpf.FileMapFileTrips]
	var rec ringbuf.Record
	next := time.Now().Add(fileSummaryInterval)
	for n := 1; ; {
		rd.SetDeadline(next)
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			w.handle(rec.RawSample, sink)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, ringbuf.ErrClosed):
			w.summarise(trips, sink, false, true)
			return
		default:
			w.log.Warn("reading file ring buffer", "error", err)
		}
		if w.resolve {
			w.resolve = false
			w.rewatch()
		}
		w.summarise(trips, sink, n%fileReapEvery == 0, false)
		n++
		next = time.Now().Add(fileSummaryInterval)
	}
}

// handle turns one record into a trip.
func (w *fileEBPF) handle(raw []byte, sink Sink) {
	if len(raw) < int(unsafe.Sizeof(bpf.FileFileEvent{})) {
		w.malformed.Add(1)
		return
	}
	// A copy of the record as the C struct lays it out (the Go type is
	// generated from it with the same layout); binary.Decode would walk
	// its 14 KB one byte at a time.
	ev := *(*bpf.FileFileEvent)(unsafe.Pointer(&raw[0]))
	if ev.Depth > fileEBPFDepth || ev.ToDepth > fileEBPFDepth ||
		ev.ArgsLen > uint32(len(ev.Args)) || ev.ExeN > uint32(len(ev.Exe)) {
		w.malformed.Add(1)
		return
	}
	w.records.Add(1)
	e, r := w.tripOf(&ev)
	var st *fileTripState
	counted := false // its trip is already in a summary sent without it
	if ev.Flags&uint32(bpf.FileTwFileFlagTW_FILE_AGGREGATED) != 0 {
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
func (w *fileEBPF) tripOf(ev *bpf.FileFileEvent) (*event.Event, *fileRule) {
	name, ok := fileOpNames[bpf.FileTwFileOp(ev.Key.Op)]
	if !ok {
		return nil, nil
	}
	a, ok := w.anchor(bpf.FileInodeKey{Dev: ev.AnchorDev, Ino: ev.AnchorIno})
	if !ok {
		return nil, nil // watches changed since
	}
	path := joinBelow(a.path, ev.Names[:ev.Depth])
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
func (w *fileEBPF) otherPath(ev *bpf.FileFileEvent) string {
	rel := joinBelow("", ev.ToNames[:ev.ToDepth])
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
func joinBelow(base string, names [][256]int8) string {
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
func (w *fileEBPF) actorOf(ev *bpf.FileFileEvent) (*event.Process, []string) {
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
		p.ExecutablePath = procfs.Printable(joinSlots(ev.Exe[:ev.ExeN]))
	} else if exe, err := os.Readlink(filepath.Join(w.procRoot, strconv.Itoa(int(ev.Key.Tgid)), "exe")); err == nil {
		p.ExecutablePath = procfs.Printable(exe)
	} else {
		missing = append(missing, procfs.KeyExecutable)
	}
	if ev.ArgsLen > 0 {
		line, cut := procfs.CommandLine(bpfBytes(ev.Args[:ev.ArgsLen]))
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
func joinSlots(slots [][64]int8) string {
	parts := make([]string, 0, len(slots))
	for i := len(slots) - 1; i >= 0; i-- {
		if c := bpfCString(slots[i][:]); c != "" {
			parts = append(parts, c)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// summarise reports every counter's growth since it was last reported. With
// reap, counters of processes that have exited are read a last time and
// removed; at shutdown (final) everything is reported.
func (w *fileEBPF) summarise(m *ebpf.Map, sink Sink, reap, final bool) {
	w.inodes = nil
	var k bpf.FileFileTripKey
	var v bpf.FileFileTripCount
	type entry struct {
		k bpf.FileFileTripKey
		v bpf.FileFileTripCount
	}
	var all []entry
	it := m.Iterate()
	for it.Next(&k, &v) {
		all = append(all, entry{k, v})
	}
	if err := it.Err(); err != nil {
		w.log.Warn("reading file trip counters", "error", err.Error())
	}
	for _, e := range all {
		st := w.trips[e.k]
		if st == nil {
			switch {
			case bpf.FileTwRecordState(e.v.Record) == bpf.FileTwRecordStateTW_RECORD_LOST:
				w.undetailed.Add(1)
				st = &fileTripState{}
				w.trips[e.k] = st
			case final || bpf.FileTwRecordState(e.v.Record) == bpf.FileTwRecordStateTW_RECORD_SENT && reap:
				// The record never arrived (malformed): count without it.
				st = &fileTripState{}
				w.trips[e.k] = st
			default:
				continue // its record is still on the ring buffer
			}
		}
		gone := false
		if reap && !final {
			if gone = w.exited(e.k); gone {
				// Dead, so the count is final: read it once more.
				if err := m.Lookup(e.k, &e.v); err != nil {
					continue
				}
			}
		}
		if e.v.Count > st.reported {
			w.report(e.k, st, e.v, sink)
		}
		if gone {
			m.Delete(e.k)
			delete(w.trips, e.k)
			w.reaped.Add(1)
		}
	}
}

// report emits one event for the trips counted since the last report.
func (w *fileEBPF) report(k bpf.FileFileTripKey, st *fileTripState, v bpf.FileFileTripCount, sink Sink) {
	n := int64(v.Count - st.reported)
	st.reported = v.Count
	if st.excluded {
		w.excluded.Add(uint64(n))
		return
	}
	e := st.tmpl
	if e == nil {
		e = w.undetailedTrip(k)
		if e == nil {
			w.unmatched.Add(uint64(n))
			return
		}
	} else {
		e = cloneTrip(e)
	}
	e.Count = n
	e.Time = bootToWall(v.LastNs)
	e.ObservedTime = e.Time
	w.summaries.Add(1)
	sink.Trip(e)
}

// undetailedTrip is the event of a counter whose record was lost: the file
// and the process ID are known from the key, the rest only if the process
// is still there.
func (w *fileEBPF) undetailedTrip(k bpf.FileFileTripKey) *event.Event {
	if int(k.Rule) >= len(w.ruleIDs) {
		return nil
	}
	r := w.ruleIDs[k.Rule]
	a, _ := w.anchor(bpf.FileInodeKey{Dev: k.Dev, Ino: k.Ino})
	path := a.path
	if path == "" {
		path = w.pathOfInode(r, bpf.FileInodeKey{Dev: k.Dev, Ino: k.Ino})
	}
	name := fileOpNames[bpf.FileTwFileOp(k.Op)]
	p, err := procfs.Read(w.procRoot, int(k.Tgid))
	p.PID = int64(k.Tgid)
	return fileTrip(name, r, w.mech, path, "", time.Now(), &p, procfs.MissingKeys(err))
}

// pathOfInode finds a file of a directory rule by its inode, walking the
// rule's directories once per summary round that needs it: the ring buffer
// overflowed, so the record that named the file is gone. If the file is no
// longer there, the rule's directory stands for it.
func (w *fileEBPF) pathOfInode(r *fileRule, k bpf.FileInodeKey) string {
	if w.inodes == nil {
		w.inodes = map[*fileRule]map[bpf.FileInodeKey]string{}
	}
	found, ok := w.inodes[r]
	if !ok {
		found = map[bpf.FileInodeKey]string{}
		w.inodes[r] = found
		for _, root := range r.Paths {
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if d.IsDir() && p != root && !r.Recursive {
					return fs.SkipDir
				}
				var st unix.Stat_t
				if unix.Lstat(p, &st) == nil {
					found[bpf.FileInodeKey{Dev: kernelDev(st.Dev), Ino: st.Ino}] = p
				}
				return nil
			})
		}
	}
	if p, ok := found[k]; ok {
		return p
	}
	return r.Paths[0]
}

// exited reports whether the process of a counter has exited: its PID is
// gone or now names a process started at another time.
func (w *fileEBPF) exited(k bpf.FileFileTripKey) bool {
	st, err := procfs.ReadStat(w.procRoot, int(k.Tgid))
	if err != nil {
		return errors.Is(err, procfs.ErrGone)
	}
	return st.StartTime != k.StartNs/uint64(time.Second/fileUserHZ)
}

// reportStats reports records and trips the ring buffer could not take.
func (w *fileEBPF) reportStats(m *ebpf.Map, sink Sink, reported *uint64) {
	w.unaggregated.Store(percpuSum(m, bpf.TripwireTwStatTW_STAT_FILE_UNAGGREGATED))
	lost := percpuSum(m, bpf.TripwireTwStatTW_STAT_FILE_LOST)
	w.lost.Store(lost)
	reportRingbufLoss(sink, w.log, "file ring buffer full: file trips lost", lost, reported)
}
