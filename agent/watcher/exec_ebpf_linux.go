package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// execStatsInterval is how often kernel counters are read and ring-buffer
// losses reported.
const execStatsInterval = time.Second

// execRefreshInterval is how often watched paths are resolved again: a
// package upgrade replaces a binary with a new inode and new content, and the
// kernel maps must follow. A variable so tests can shorten it.
var execRefreshInterval = time.Minute

// execRingBytes, when non-zero, overrides the exec ring buffer size: tests
// shrink it below one record to force reserve failures.
var execRingBytes uint32

// execObjects is the part of the BPF collection the exec watcher loads.
type execObjects struct {
	TwExec     *ebpf.Program `ebpf:"tw_exec"`
	ExecNames  *ebpf.Map     `ebpf:"exec_names"`
	ExecInodes *ebpf.Map     `ebpf:"exec_inodes"`
	ExecSizes  *ebpf.Map     `ebpf:"exec_sizes"`
	ExecEvents *ebpf.Map     `ebpf:"exec_events"`
	Stats      *ebpf.Map     `ebpf:"stats"`
}

func (o *execObjects) Close() error {
	var errs []error
	if o.TwExec != nil {
		errs = append(errs, o.TwExec.Close())
	}
	for _, m := range []*ebpf.Map{o.ExecNames, o.ExecInodes, o.ExecSizes, o.ExecEvents, o.Stats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

func loadExecObjects() (*execObjects, error) {
	spec, err := bpf.LoadTripwire()
	if err != nil {
		return nil, fmt.Errorf("reading bpf object: %w", err)
	}
	if execRingBytes != 0 {
		spec.Maps["exec_events"].MaxEntries = execRingBytes
	}
	var objs execObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("loading exec program: %w", err)
	}
	return &objs, nil
}

// execEBPF is the process watcher on sched_process_exec: execs are matched
// against maps of watched names, inodes and sizes in the kernel, so only
// candidate execs (and never unwatched ones) reach user space.
type execEBPF struct {
	rules    atomic.Pointer[execRules]
	procRoot string
	log      *slog.Logger

	seen, sent, lost, malformed, tripped atomic.Uint64
}

func newExecEBPF(rules *execRules, opts Options) (*execEBPF, error) {
	// Load once to learn now, not at Start, whether this kernel and these
	// capabilities can run the program.
	objs, err := loadExecObjects()
	if err != nil {
		return nil, err
	}
	objs.Close()
	w := &execEBPF{procRoot: execProcRoot(opts), log: execNetLogger(opts)}
	w.rules.Store(rules)
	return w, nil
}

func (w *execEBPF) Kind() string      { return "process" }
func (w *execEBPF) Mechanism() string { return procMechEBPF }
func (w *execEBPF) Missing() []string { return nil }

func (w *execEBPF) Counters() map[string]uint64 {
	return map[string]uint64{
		"exec_seen": w.seen.Load(), "exec_matched": w.sent.Load(), "ringbuf_lost": w.lost.Load(),
		"malformed": w.malformed.Load(), "tripped": w.tripped.Load(),
	}
}

func (w *execEBPF) Start(ctx context.Context, sink Sink) error {
	objs, err := loadExecObjects()
	if err != nil {
		return err
	}
	rules := w.rules.Load()
	if err := syncExecMaps(objs, nil, rules); err != nil {
		objs.Close()
		return err
	}
	lk, err := link.AttachTracing(link.TracingOptions{Program: objs.TwExec})
	if err != nil {
		objs.Close()
		return fmt.Errorf("attaching sched_process_exec: %w", err)
	}
	rd, err := ringbuf.NewReader(objs.ExecEvents)
	if err != nil {
		lk.Close()
		objs.Close()
		return fmt.Errorf("opening exec ring buffer: %w", err)
	}
	w.log.Info("process watcher started", "mechanism", procMechEBPF,
		"names", execSortedKeys(rules.names), "inodes", len(rules.ids), "sizes", len(rules.sizes))

	var reported uint64
	runEBPF(ctx, rd,
		func() { w.readLoop(rd, sink) },
		func() { w.reportStats(objs.Stats, sink, &reported) },
		func() { w.refresh(objs) },
		func() { lk.Close() },
		func() { objs.Close() })
	return nil
}

// refresh resolves the rules again and, if the watched binaries changed,
// updates the kernel maps before the matcher, so nothing the new matcher
// expects is filtered out meanwhile.
func (w *execEBPF) refresh(objs *execObjects) {
	old := w.rules.Load()
	cur, err := compileExecRules(old.src)
	if err != nil || cur.sameFilter(old) {
		return
	}
	if err := syncExecMaps(objs, old, cur); err != nil {
		w.log.Warn("updating watched binaries", "error", err)
		return
	}
	w.rules.Store(cur)
	w.log.Info("watched binaries changed", "inodes", len(cur.ids), "sizes", len(cur.sizes))
}

// syncExecMaps makes the kernel-side filter maps hold exactly cur's sets;
// old (nil at start) is what they hold now.
func syncExecMaps(objs *execObjects, old, cur *execRules) error {
	if old == nil {
		old = &execRules{}
	}
	one := uint8(1)
	comm := func(n string) [16]byte {
		var key [16]byte
		copy(key[:], n)
		return key
	}
	inode := func(id execFileID) bpf.TripwireInodeKey {
		return bpf.TripwireInodeKey{Dev: kernelDev(id.Dev), Ino: id.Ino}
	}
	for n := range cur.names {
		if err := objs.ExecNames.Put(comm(n), one); err != nil {
			return fmt.Errorf("filling exec_names: %w", err)
		}
	}
	for id := range cur.ids {
		if err := objs.ExecInodes.Put(inode(id), one); err != nil {
			return fmt.Errorf("filling exec_inodes: %w", err)
		}
	}
	for size := range cur.sizes {
		if err := objs.ExecSizes.Put(uint64(size), one); err != nil {
			return fmt.Errorf("filling exec_sizes: %w", err)
		}
	}
	var errs []error
	for n := range old.names {
		if !cur.names[n] {
			errs = append(errs, objs.ExecNames.Delete(comm(n)))
		}
	}
	for id := range old.ids {
		if !cur.ids[id] {
			errs = append(errs, objs.ExecInodes.Delete(inode(id)))
		}
	}
	for size := range old.sizes {
		if !cur.sizes[size] {
			errs = append(errs, objs.ExecSizes.Delete(uint64(size)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pruning exec maps: %w", err)
	}
	return nil
}

// kernelDev converts a user-space st_dev to the kernel's dev_t encoding
// (major << 20 | minor), which is what inode->i_sb->s_dev holds.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// userDev is the inverse of kernelDev.
func userDev(kdev uint64) uint64 {
	return unix.Mkdev(uint32(kdev>>20), uint32(kdev&(1<<20-1)))
}

func (w *execEBPF) readLoop(rd *ringbuf.Reader, sink Sink) {
	readRingbuf(rd, w.log, "exec", &w.malformed, func(ev *bpf.TripwireExecEvent) {
		s, ok := execSightingOf(ev)
		if !ok {
			w.malformed.Add(1)
			return
		}
		for _, e := range w.enrich(&s, ev) {
			w.tripped.Add(1)
			sink.Trip(e)
		}
	})
}

// execSightingOf checks and converts a kernel record.
func execSightingOf(ev *bpf.TripwireExecEvent) (execSighting, bool) {
	if ev.ArgsLen > uint32(len(ev.Args)) || ev.ResolvedN > uint32(len(ev.Resolved)) || ev.Pid == 0 {
		return execSighting{}, false
	}
	s := execSighting{
		PID:           int(ev.Pid),
		PPID:          int(ev.Ppid),
		UID:           int(ev.Uid),
		Comm:          bpfCString(ev.Comm[:]),
		Filename:      bpfCString(ev.Filename[:]),
		ID:            execFileID{Dev: userDev(ev.Dev), Ino: ev.Ino},
		Size:          int64(ev.Size),
		Args:          bpfBytes(ev.Args[:ev.ArgsLen]),
		ArgsTruncated: ev.Flags&uint32(bpf.TripwireTwExecFlagTW_EXEC_ARGS_TRUNCATED) != 0,
		CgroupID:      ev.CgroupId,
		Time:          bootToWall(ev.BootNs),
	}
	const incomplete = uint32(bpf.TripwireTwExecFlagTW_EXEC_RESOLVED_PARTIAL | bpf.TripwireTwExecFlagTW_EXEC_RESOLVED_CUT)
	if ev.Flags&incomplete == 0 && ev.ResolvedN > 0 {
		parts := make([]string, 0, ev.ResolvedN)
		for i := int(ev.ResolvedN) - 1; i >= 0; i-- {
			if c := bpfCString(ev.Resolved[i][:]); c != "" {
				parts = append(parts, c)
			}
		}
		s.Resolved = "/" + strings.Join(parts, "/")
	}
	return s, true
}

// enrich completes what the kernel saw with what only /proc knows (the
// resolved executable path, the user name, the ancestry) and matches it.
func (w *execEBPF) enrich(s *execSighting, ev *bpf.TripwireExecEvent) []*event.Event {
	p := event.Process{
		PID:      int64(s.PID),
		PPID:     int64(s.PPID),
		UserID:   strconv.Itoa(s.UID),
		UserName: procfs.UserName(strconv.Itoa(s.UID)),
		CgroupID: int64(s.CgroupID),
	}
	var missing []string
	// The kernel's walk is the resolved path at exec time; else
	// /proc/PID/exe, trusted only if it still is the binary the kernel saw
	// (the PID may have exec'd again or been reused).
	s.Exe = s.Resolved
	if s.Exe == "" {
		exeLink := filepath.Join(w.procRoot, strconv.Itoa(s.PID), "exe")
		if exe, err := os.Readlink(exeLink); err == nil {
			if fi, err := os.Stat(exeLink); err == nil {
				if id, ok := execFileIDOf(fi); ok && id == s.ID {
					s.Exe = exe
				}
			}
		}
	}
	if s.Exe == "" {
		s.Exe = w.exeFallback(s)
	}
	p.ExecutablePath = procfs.Printable(s.Exe)
	if p.ExecutablePath == "" {
		missing = append(missing, procfs.KeyExecutable)
	}
	if ev.Flags&uint32(bpf.TripwireTwExecFlagTW_EXEC_ARGS_UNREAD) != 0 || len(s.Args) == 0 {
		if rp, err := procfs.Read(w.procRoot, s.PID); err == nil || rp.CommandLine != "" {
			p.CommandLine, p.ArgsTruncated = rp.CommandLine, rp.ArgsTruncated
		} else {
			missing = append(missing, procfs.KeyCommandLine)
		}
	} else {
		line, cut := procfs.CommandLine(s.Args)
		p.CommandLine, p.ArgsTruncated = line, cut || s.ArgsTruncated
	}
	if p.UserName == "" {
		missing = append(missing, procfs.KeyUserName)
	}
	p.Ancestry = execAncestry(w.procRoot, s.PID, s.PPID)
	return w.rules.Load().trips(s, p, procMechEBPF, missing, w.procRoot)
}

// exeFallback names the binary when /proc no longer can: the watched file
// with that inode, else the exec'd path made absolute.
func (w *execEBPF) exeFallback(s *execSighting) string {
	for _, t := range w.rules.Load().targets {
		if p, ok := t.ids[s.ID]; ok {
			return p
		}
		if p, ok := t.pathIDs[s.ID]; ok {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return real
			}
			return p
		}
	}
	if filepath.IsAbs(s.Filename) {
		if real, err := filepath.EvalSymlinks(s.Filename); err == nil {
			return real
		}
		return s.Filename
	}
	return ""
}

// reportStats sums the per-CPU counters and reports new ring-buffer losses.
func (w *execEBPF) reportStats(m *ebpf.Map, sink Sink, reported *uint64) {
	w.seen.Store(percpuSum(m, bpf.TripwireTwStatTW_STAT_EXEC_SEEN))
	w.sent.Store(percpuSum(m, bpf.TripwireTwStatTW_STAT_EXEC_SENT))
	lost := percpuSum(m, bpf.TripwireTwStatTW_STAT_EXEC_LOST)
	w.lost.Store(lost)
	reportRingbufLoss(sink, w.log, "exec ring buffer full: execs lost", lost, reported)
}

// bootToWall converts a CLOCK_BOOTTIME reading in ns to wall-clock time.
func bootToWall(bootNs uint64) time.Time {
	now := time.Now()
	nowBoot := procfs.BootTime()
	if nowBoot == 0 || bootNs == 0 {
		return now
	}
	return now.Add(time.Duration(bootNs) - nowBoot)
}

// bpfCString returns the bytes of b up to its first NUL.
func bpfCString(b []int8) string {
	raw := bpfBytes(b)
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	return string(raw)
}

func bpfBytes(b []int8) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = byte(c)
	}
	return out
}
