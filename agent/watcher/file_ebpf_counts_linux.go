package watcher

import (
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent/procfs"
	"github.com/tripwire-sec/tripwire/bpf"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// summarise reports every counter's growth since it was last reported. With
// reap, counters of processes that have exited are read a last time and
// removed; at shutdown (final) everything is reported.
func (w *fileEBPF) summarise(m *ebpf.Map, sink Sink, reap, final bool) {
	w.inodes = nil
	all := w.readTrips(m)
	// One /proc read per process, however many files it opened: a reap
	// over thousands of counters must not keep the ring buffer waiting.
	exited := map[[2]uint64]bool{}
	for _, e := range all {
		st := w.trips[e.k]
		if st == nil {
			switch {
			case bpf.FileTwRecordState(e.v.Record) == bpf.FileTwRecordStateTW_RECORD_LOST:
				w.undetailed.Add(1)
				st = &fileTripState{}
				w.trips[e.k] = st
			case final:
				st = &fileTripState{}
				w.trips[e.k] = st
			case bpf.FileTwRecordState(e.v.Record) == bpf.FileTwRecordStateTW_RECORD_SENT && reap:
				// The record is marked sent just before it is submitted, and
				// a loaded reader lags: wait for it a few reaps. Counting
				// without it and then reaping would make its late arrival a
				// second trip. Past that, it was malformed: count without it.
				if w.awaiting[e.k]++; w.awaiting[e.k] < fileRecordPatience {
					continue
				}
				delete(w.awaiting, e.k)
				st = &fileTripState{}
				w.trips[e.k] = st
			default:
				continue // its record is still on the ring buffer
			}
		}
		gone := false
		if reap && !final {
			var known bool
			id := [2]uint64{uint64(e.k.Tgid), e.k.StartNs}
			gone, known = exited[id]
			if !known {
				gone = w.exited(e.k)
				exited[id] = gone
			}
			if gone {
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

// tripEntry is one kernel counter as read by summarise.
type tripEntry struct {
	k bpf.FileFileTripKey
	v bpf.FileFileTripCount
}

// fileTripBatch is how many counters one batch lookup reads.
const fileTripBatch = 1024

// readTrips reads every counter: in batches where the kernel can (5.6+),
// one system call per fileTripBatch counters instead of two per counter, so
// a summary over thousands of them (one per file a process opened) holds up
// the records waiting on the ring buffer for a millisecond, not tens.
func (w *fileEBPF) readTrips(m *ebpf.Map) []tripEntry {
	var all []tripEntry
	if !w.noBatch {
		keys := make([]bpf.FileFileTripKey, fileTripBatch)
		vals := make([]bpf.FileFileTripCount, fileTripBatch)
		var cursor ebpf.MapBatchCursor
		for {
			n, err := m.BatchLookup(&cursor, keys, vals, nil)
			for i := range n {
				all = append(all, tripEntry{keys[i], vals[i]})
			}
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return all
			}
			if err != nil {
				w.log.Debug("batch lookup of file trip counters refused; iterating instead", "error", err.Error())
				w.noBatch = true
				all = all[:0]
				break
			}
		}
	}
	var k bpf.FileFileTripKey
	var v bpf.FileFileTripCount
	it := m.Iterate()
	for it.Next(&k, &v) {
		all = append(all, tripEntry{k, v})
	}
	if err := it.Err(); err != nil {
		w.log.Warn("reading file trip counters", "error", err.Error())
	}
	return all
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
