package watcher

import (
	"golang.org/x/sys/unix"
)

// kinfoTable lists processes with sysctl kern.proc.all and reads a new
// process's path and arguments from kern.procargs2: no entitlement needed,
// but the arguments of another user's process need root.
type kinfoTable struct{}

func newProcTable(Options) procTable { return kinfoTable{} }

func (kinfoTable) list() ([]procEntry, error) {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil, err
	}
	out := make([]procEntry, 0, len(procs))
	for i := range procs {
		p := &procs[i]
		st := p.Proc.P_starttime
		out = append(out, procEntry{
			PID: int(p.Proc.P_pid), PPID: int(p.Eproc.Ppid), UID: int(p.Eproc.Ucred.Uid),
			Start: uint64(st.Sec)*1_000_000 + uint64(st.Usec),
			Comm:  cString(p.Proc.P_comm[:]),
		})
	}
	return out, nil
}

func (kinfoTable) detail(p *procEntry) {
	b, err := unix.SysctlRaw("kern.procargs2", p.PID)
	if err != nil {
		return // exited, or another user's process without root
	}
	exe, args, err := parseProcArgs2(b)
	if exe != "" {
		p.Exe, p.Comm = exe, commOf(exe)
	}
	if err == nil {
		p.Args = args
	}
}

func (kinfoTable) missing() []string { return nil }
