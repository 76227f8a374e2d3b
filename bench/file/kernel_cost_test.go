//go:build linux

package file

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// attachEmptyOpenExits attaches a program that does nothing to the
// tracepoints ebpf_syscall uses (fileSyscallExits in agent/watcher): what
// that mode costs before its own instructions. Once one is attached every
// task takes the kernel's system-call tracing path on every system call,
// and each open runs the perf dispatch around the program. The returned
// function detaches it.
func attachEmptyOpenExits(b *testing.B) func() {
	b.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.TracePoint,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		b.Fatalf("loading an empty tracepoint program: %v", err)
	}
	var links []link.Link
	detach := func() {
		for _, l := range links {
			l.Close()
		}
		prog.Close()
	}
	for _, name := range []string{"sys_exit_open", "sys_exit_openat", "sys_exit_openat2", "sys_exit_creat"} {
		l, err := link.Tracepoint("syscalls", name, prog, nil)
		if errors.Is(err, os.ErrNotExist) && name != "sys_exit_openat" {
			continue
		}
		if err != nil {
			detach()
			b.Fatalf("attaching an empty program to syscalls/%s: %v", name, err)
		}
		links = append(links, l)
	}
	return detach
}

// agentPrograms opens the eBPF programs the process pid holds, found through
// its descriptors (/proc/PID/fdinfo lists prog_id), so other agents running
// on the machine are not counted.
func agentPrograms(b *testing.B, pid int) []*ebpf.Program {
	b.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	seen := map[uint64]bool{}
	var out []*ebpf.Program
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			v, ok := strings.CutPrefix(line, "prog_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || seen[id] {
				continue
			}
			seen[id] = true
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err != nil {
				b.Fatalf("opening program %d of the agent: %v", id, err)
			}
			out = append(out, p)
		}
	}
	return out
}

// progRun is the run time and run count of a set of programs.
type progRun struct {
	ns, runs float64
}

func readRuns(b *testing.B, progs []*ebpf.Program) progRun {
	b.Helper()
	var r progRun
	for _, p := range progs {
		st, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		r.ns += float64(st.Runtime.Nanoseconds())
		r.runs += float64(st.RunCount)
	}
	return r
}

// syscallLoop runs n iterations of one kind of system call work in python3,
// the language of the getpwnam loop, so the interpreter's own system calls
// are the same.
func syscallLoop(b *testing.B, kind, path string, n int) {
	b.Helper()
	prog := `import os, pwd, sys
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "getppid":
    for _ in range(n): os.getppid()
elif kind == "open":
    for _ in range(n): os.close(os.open(path, os.O_RDONLY))
else:
    for _ in range(n): pwd.getpwnam("root")`
	if out, err := exec.Command("python3", "-c", prog, kind, path, strconv.Itoa(n)).CombinedOutput(); err != nil {
		b.Fatalf("%s loop: %v %s", kind, err, out)
	}
}

// programCost measures, with the kernel's BPF run-time statistics on, what
// the agent's own eBPF programs cost: per system call that is not an open
// (the runs it causes, if any: the filter every system call on the host
// would pay), per open of the watched file and of an unwatched file on the
// same filesystem, and per getpwnam call. The statistics add their own clock
// reads to every run, so these are upper bounds; the kernel's tracepoint
// path around the program is not in them (attachEmptyOpenExits measures
// that).
func programCost(b *testing.B, pid int, watched, unwatched string) string {
	b.Helper()
	progs := agentPrograms(b, pid)
	if len(progs) == 0 {
		return "the agent holds no eBPF program"
	}
	defer func() {
		for _, p := range progs {
			p.Close()
		}
	}()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return fmt.Sprintf("BPF run-time statistics unavailable: %v", err)
	}
	defer stats.Close()
	const calls, opens = 1000000, 200000
	phase := func(kind, path string, n int) progRun {
		before := readRuns(b, progs)
		syscallLoop(b, kind, path, n)
		after := readRuns(b, progs)
		return progRun{after.ns - before.ns, after.runs - before.runs}
	}
	other := phase("getppid", "", calls)
	perOther := other.ns / calls
	// An open loop also closes: those are charged at the rate of a system
	// call that is not an open.
	perOpen := func(r progRun) float64 { return (r.ns - opens*perOther) / opens }
	w := perOpen(phase("open", watched, opens))
	u := perOpen(phase("open", unwatched, opens))
	g := phase("getpwnam", "", opens)
	return fmt.Sprintf("%d program(s): %.2f runs and %.0f ns per system call that is not an open; %.0f ns per open of %s (watched), %.0f ns per open of %s (unwatched); %.0f ns per getpwnam call (%.1f runs per call)",
		len(progs), other.runs/calls, perOther, w, watched, u, unwatched, g.ns/opens, g.runs/opens)
}
