package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// fileRecordPatience: how many reaps a counter whose record was sent waits
// for that record before it is counted without it.
const fileRecordPatience = 3

// fileEBPFDepth is how many directory levels below a recursive rule's root
// the kernel walks (TW_FILE_DEPTH in bpf/tripwire.h).
const fileEBPFDepth = 16

// fileUserHZ is USER_HZ, the unit of /proc/PID/stat's start time.
const fileUserHZ = 100

// fileRingBytes, when non-zero, overrides the file ring buffer size: tests
// shrink it to force reserve failures.
var fileRingBytes uint32

// fileReaderDelay, when non-zero, is a pause after each record read: tests
// slow the reader with it so that a small ring fills whatever the machine's
// speed (a quiet machine's reader otherwise keeps up with any burst).
var fileReaderDelay time.Duration

// fileEBPFPrograms names the programs of each attach mode.
var fileEBPFPrograms = map[string][]string{
	MechanismEBPF: {"tw_file_open", "tw_inode_setattr", "tw_inode_create", "tw_inode_mkdir",
		"tw_inode_unlink", "tw_inode_rmdir", "tw_inode_rename"},
	MechanismEBPFLSM: {"tw_lsm_file_open", "tw_lsm_inode_setattr", "tw_lsm_inode_create", "tw_lsm_inode_mkdir",
		"tw_lsm_inode_unlink", "tw_lsm_inode_rmdir", "tw_lsm_inode_rename"},
	MechanismEBPFSyscall: {"tw_sys_exit_open"},
}

// fileSyscallExits are the tracepoints ebpf_syscall's program is attached
// to: the exits of the open family of system calls, those the kernel has
// (arm64 has no open or creat).
var fileSyscallExits = []string{"sys_exit_open", "sys_exit_openat", "sys_exit_openat2", "sys_exit_creat"}

// fileEBPFProbe loads the programs of mech without attaching them (and, for
// the LSM, checks that "bpf" is an active LSM, without which the programs
// attach and never run; for ebpf_syscall, that the kernel has system-call
// tracepoints).
func fileEBPFProbe(mech string) error {
	switch mech {
	case MechanismEBPFLSM:
		if err := bpfLSMActive(); err != nil {
			return err
		}
	case MechanismEBPFSyscall:
		if err := syscallTracepoints(); err != nil {
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

// syscallTracepoints checks that the kernel has the tracepoint of openat's
// exit (CONFIG_FTRACE_SYSCALLS), mounting tracefs, where tracepoints are
// found by name, if it is not.
func syscallTracepoints() error {
	const dir = "/sys/kernel/tracing"
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.TRACEFS_MAGIC {
		if merr := unix.Mount("tracefs", dir, "tracefs", 0, ""); merr != nil && !errors.Is(merr, unix.EBUSY) {
			return fmt.Errorf("finding the system-call tracepoints: mounting tracefs: %w", merr)
		}
	}
	_, err := os.Stat(dir + "/events/syscalls/sys_exit_openat/id")
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("tracefs, where tracepoints are found by name, is readable by root only: ebpf_syscall needs CAP_DAC_READ_SEARCH besides CAP_BPF and CAP_PERFMON: %w", err)
	}
	if err != nil {
		return fmt.Errorf("this kernel has no system-call tracepoints (CONFIG_FTRACE_SYSCALLS): %w", err)
	}
	return nil
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
		if mech != MechanismEBPFSyscall && errors.Is(err, unix.EPERM) {
			if caps, cerr := effectiveCaps(procfs.DefaultRoot); cerr == nil && caps.ebpf() {
				return nil, &trampolinesRefusedError{mech: mech, err: err}
			}
		}
		return nil, fmt.Errorf("loading file programs (%s): %w", mech, err)
	}
	return coll, nil
}

// trampolinesRefusedError: the kernel refused an fentry or BPF LSM program
// with EPERM although the agent may load eBPF programs. Both attach through
// BPF trampolines, which are built on ftrace; a kernel that refuses ftrace
// function tracing (lockdown, a hardened build) refuses them before the
// verifier runs, with an empty log. The loader's own hint (MEMLOCK) is wrong
// here, so the message says what an operator can act on.
type trampolinesRefusedError struct {
	mech string
	err  error
}

func (e *trampolinesRefusedError) Error() string {
	what := "fentry programs"
	if e.mech == MechanismEBPFLSM {
		what = "BPF LSM programs"
	}
	return "the kernel refused the " + what + " (EPERM, empty verifier log) although the agent may load eBPF programs: " +
		"it does not allow BPF trampolines, through which fentry and BPF LSM programs attach (a kernel that refuses ftrace " +
		"function tracing, as lockdown or a hardened build can, refuses them); ebpf_syscall catches opens at the open system calls instead, " +
		"at the cost of the kernel's tracepoint path on every system call (docs/capabilities.md)"
}

func (e *trampolinesRefusedError) Unwrap() error { return e.err }

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
	noBatch  bool // the kernel refused a batch lookup of the counters (before 5.6)
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
	awaiting   map[bpf.FileFileTripKey]int               // reaps a counter marked sent has waited for its record
	ancestries map[[2]uint64]string                      // (tgid, start) → ancestry
	inodes     map[*fileRule]map[bpf.FileInodeKey]string // files under directory rules, found when a record was lost
	resolve    bool                                      // a watched path was deleted, renamed or created: resolve again at the next summary

	records, summaries, excluded, unmatched, malformed atomic.Uint64
	undetailed, unaggregated, lost, reaped, markErrors atomic.Uint64
}

func newFileEBPF(rs *fileRules, mech string, opts Options, log *slog.Logger) *fileEBPF {
	return &fileEBPF{rules: rs, ruleIDs: rs.rules, mech: mech, procRoot: opts.ProcRoot, log: log,
		anchors: map[bpf.FileInodeKey]fileAnchor{}, trips: map[bpf.FileFileTripKey]*fileTripState{},
		awaiting:   map[bpf.FileFileTripKey]int{},
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
	// Each level walked is a map lookup on every open on the host: walk
	// parents only when a directory rule needs them.
	depth := uint32(0)
	if len(w.rules.dirs) > 0 {
		depth = 1
	}
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
	links, err := attachFilePrograms(w.mech, coll)
	if err != nil {
		coll.Close()
		return err
	}
	detach := func() {
		for _, l := range links {
			l.Close()
		}
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

// attachFilePrograms attaches the programs of mech: ebpf_syscall's one to
// every tracepoint of fileSyscallExits the kernel has (openat's must be
// among them), the others each to its hook.
func attachFilePrograms(mech string, coll *ebpf.Collection) ([]link.Link, error) {
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			l.Close()
		}
		return nil, err
	}
	if mech == MechanismEBPFSyscall {
		if err := syscallTracepoints(); err != nil {
			return nil, err
		}
		for _, name := range fileSyscallExits {
			l, err := link.Tracepoint("syscalls", name, coll.Programs["tw_sys_exit_open"], nil)
			if errors.Is(err, os.ErrNotExist) && name != "sys_exit_openat" {
				continue // not a system call of this architecture
			}
			if err != nil {
				return fail(fmt.Errorf("attaching tw_sys_exit_open to syscalls/%s: %w", name, err))
			}
			links = append(links, l)
		}
		return links, nil
	}
	for _, name := range fileEBPFPrograms[mech] {
		var l link.Link
		var err error
		if mech == MechanismEBPFLSM {
			l, err = link.AttachLSM(link.LSMOptions{Program: coll.Programs[name]})
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: coll.Programs[name]})
		}
		if err != nil {
			return fail(fmt.Errorf("attaching %s: %w", name, err))
		}
		links = append(links, l)
	}
	return links, nil
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
	// The inode bits first: the kernel looks an inode up only if its bit is
	// set. Bits of inodes no longer watched are cleared with them.
	if err := setInoBits(coll.Variables[bpf.FileVarFileInoBits], anchors); err != nil {
		return err
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

// setInoBits writes file_ino_bits (bpf/file.bpf.c): one bit per folded
// inode number, set for each anchor. The kernel reads it through the shared
// mapping while it is written; every byte it sees is either the old or the
// new one, and an anchor kept keeps its bit in both.
func setInoBits(v *ebpf.Variable, anchors map[bpf.FileInodeKey]fileAnchor) error {
	words := make([]uint64, v.Size()/8)
	n := uint64(len(words)) * 64
	for k := range anchors {
		bit := (k.Ino ^ k.Ino>>32) & (n - 1) // as maybe_watched folds it
		words[bit/64] |= 1 << (bit % 64)
	}
	if err := v.Set(words); err != nil {
		return fmt.Errorf("writing file_ino_bits: %w", err)
	}
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

// dropped is how many trips so far found the ring buffer full.
func (w *fileEBPF) dropped(stats *ebpf.Map) uint64 {
	return percpuSum(stats, bpf.TripwireTwStatTW_STAT_FILE_UNDETAILED) + percpuSum(stats, bpf.TripwireTwStatTW_STAT_FILE_LOST)
}

// loop reads records and, every fileSummaryInterval, reports the counts'
// growth, in one goroutine so a record and the counter it started are never
// reported twice. It ends when the reader is flushed empty after detaching
// (shutdown) with a last summary: nothing counted is left unreported.
func (w *fileEBPF) loop(rd *ringbuf.Reader, coll *ebpf.Collection, sink Sink) {
	trips, stats := coll.Maps[bpf.FileMapFileTrips], coll.Maps[bpf.FileMapStats]
	var rec ringbuf.Record
	next := time.Now().Add(untilAligned(fileSummaryInterval))
	behind, dropped := false, w.dropped(stats)
	for n := 1; ; {
		rd.SetDeadline(next)
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			w.handle(rec.RawSample, sink)
			if fileReaderDelay > 0 {
				time.Sleep(fileReaderDelay)
			}
			// A reader that fell behind may have let the ring fill: once it
			// has caught up, trips whose records found no room are reported
			// now, not at the next summary up to a second later.
			left := rd.AvailableBytes()
			behind = behind || left > rd.BufferSize()/2
			if !behind || left > 0 {
				continue
			}
			behind = false
			d := w.dropped(stats)
			if d == dropped {
				continue
			}
			dropped = d
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
		next = time.Now().Add(untilAligned(fileSummaryInterval))
	}
}
