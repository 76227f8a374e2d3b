package watcher

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/tripwire-sec/tripwire/agent/procfs"
)

// procfsTable lists processes from /proc: the polling fallback on Linux when
// neither eBPF, fanotify nor the proc connector can start.
type procfsTable struct{ root string }

func newProcTable(opts Options) procTable { return procfsTable{root: execProcRoot(opts)} }

func (t procfsTable) list() ([]procEntry, error) {
	d, err := os.Open(t.root)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]procEntry, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := procfs.ReadStat(t.root, pid)
		if err != nil {
			continue // exited since the listing
		}
		out = append(out, procEntry{PID: pid, PPID: st.PPID, UID: -1, Start: st.StartTime, Comm: st.Comm})
	}
	return out, nil
}

func (t procfsTable) detail(p *procEntry) {
	a, err := procfs.ReadActorNoLookup(t.root, p.PID, 0)
	if a.ExecutablePath != "" {
		p.Exe = a.ExecutablePath
		p.Comm = commOf(a.ExecutablePath)
	}
	if raw, rerr := os.ReadFile(filepath.Join(t.root, strconv.Itoa(p.PID), "cmdline")); rerr == nil && len(raw) > 0 {
		p.Args = raw
	}
	if a.UserID != "" {
		if uid, err := strconv.Atoi(a.UserID); err == nil {
			p.UID = uid
		}
	}
	_ = err // what could not be read stays empty and is listed as missing
}

func (procfsTable) missing() []string { return nil }
