//go:build linux

// Package file benchmarks the file tripwire as a host sees it: the real agent
// binary on the default mechanism, against the same work with no agent and
// with auditd, in the same run. Each benchmark prints its figures; none
// asserts a timing. Run with `make bench` (section file) or bench/file/run.sh.
package file

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func needRoot(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the agent's file watcher needs root")
	}
}

// buildAgent builds the release binary once per benchmark, or returns
// $TRIPWIRE_BENCH_AGENT (another build, to compare two in the same
// conditions).
func buildAgent(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("TRIPWIRE_BENCH_AGENT"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "tripwire")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/tripwire-sec/tripwire/agent/cmd/tripwire")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return bin
}

// agentProc is the real agent running as its own process.
type agentProc struct {
	cmd   *exec.Cmd
	dir   string
	sock  string
	log   string
	mech  string
	audit string
}

// startAgent writes a config with rules (YAML list items) and starts the
// agent, waiting for /healthz.
func startAgent(b *testing.B, bin, rules string) *agentProc {
	b.Helper()
	dir := b.TempDir()
	a := &agentProc{dir: dir, sock: filepath.Join(dir, "health.sock"), log: filepath.Join(dir, "agent.log"),
		audit: filepath.Join(dir, "state", "audit.log")}
	conf := filepath.Join(dir, "agent.yaml")
	body := "rules:\n" + rules + fmt.Sprintf("spool: {path: %s/state/spool.db}\naudit: {path: %s}\nhealth: {socket: %s}\n", dir, a.audit, a.sock)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(a.log)
	if err != nil {
		b.Fatal(err)
	}
	a.cmd = exec.Command(bin, "start", "--config", conf)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := health.Fetch(b.Context(), a.sock)
		if err == nil {
			for _, w := range rep.Watchers {
				if w.Kind == "file" {
					a.mech = w.Mechanism
				}
			}
			return a
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(a.log)
			b.Fatalf("agent did not start: %v\n%s", err, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the agent with SIGTERM, which drains the pipeline into the chain.
func (a *agentProc) stop(b *testing.B) {
	b.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		raw, _ := os.ReadFile(a.log)
		b.Fatalf("agent: %v\n%s", err, raw)
	}
}

// events reads the agent's audit chain.
func (a *agentProc) events(b *testing.B) []*event.Event {
	b.Helper()
	var out []*event.Event
	err := auditchain.ReadEntries(a.audit, 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// getpwnamRate runs a python3 getpwnam("root") loop for secs seconds and
// returns calls per second of wall time and per second of the loop's own
// CPU time. The second is what the watch costs the caller (the eBPF program
// and audit's record run in its system calls) and does not move with the
// load other processes put on the machine; the first includes waiting.
func getpwnamRate(b *testing.B, secs float64) (wall, cpu float64) {
	b.Helper()
	prog := `import pwd, time, sys
d = float(sys.argv[1]); n = 0; end = time.monotonic() + d; start = time.monotonic(); c0 = time.process_time()
while time.monotonic() < end:
    for _ in range(200):
        pwd.getpwnam("root")
    n += 200
print(n / (time.monotonic() - start), n / (time.process_time() - c0))`
	out, err := exec.Command("python3", "-c", prog, strconv.FormatFloat(secs, 'f', 1, 64)).Output()
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		b.Fatalf("getpwnam loop printed %q", out)
	}
	wall, err1 := strconv.ParseFloat(f[0], 64)
	cpu, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("getpwnam loop printed %q", out)
	}
	return wall, cpu
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// auditd starts auditd with a read watch on path; the returned function
// removes the rule, disables auditing and stops auditd.
func auditd(b *testing.B, path string) func() {
	b.Helper()
	if out, err := exec.Command("service", "auditd", "start").CombinedOutput(); err != nil {
		b.Skipf("auditd: %v %s", err, out)
	}
	for _, args := range [][]string{{"-D"}, {"-e", "1"}, {"-w", path, "-p", "r", "-k", "tripwire_bench"}} {
		if out, err := exec.Command("auditctl", args...).CombinedOutput(); err != nil {
			b.Fatalf("auditctl %v: %v %s", args, err, out)
		}
	}
	return func() {
		exec.Command("auditctl", "-D").Run()
		exec.Command("auditctl", "-e", "0").Run()
		exec.Command("service", "auditd", "stop").Run()
	}
}

// BenchmarkGetpwnam: a getpwnam("root") loop (it opens and reads
// /etc/passwd on every call) with nothing watching, with an empty program
// on the open system calls' exit tracepoints (the kernel's part of
// ebpf_syscall: what no program can make cheaper), with the agent watching /etc/passwd on its
// default mechanism, and with auditd's `-w /etc/passwd -p r`, in alternating
// rounds of the same run; medians, per second of wall time and per second of
// the loop's CPU time. Then, with the kernel's BPF statistics on, what the
// agent's own programs cost per system call, per open and per call.
func BenchmarkGetpwnam(b *testing.B) {
	needRoot(b)
	const secs, rounds = 3.0, 7
	const rule = "  - {name: passwd, type: file, severity: WARN, paths: [/etc/passwd]}\n"
	bin := buildAgent(b)
	var none, empty, agent, audit, noneCPU, emptyCPU, agentCPU, auditCPU []float64
	mech := ""
	for range rounds {
		w, c := getpwnamRate(b, secs)
		none, noneCPU = append(none, w), append(noneCPU, c)
		detach := attachEmptyOpenExits(b)
		w, c = getpwnamRate(b, secs)
		empty, emptyCPU = append(empty, w), append(emptyCPU, c)
		detach()
		a := startAgent(b, bin, rule)
		mech = a.mech
		w, c = getpwnamRate(b, secs)
		agent, agentCPU = append(agent, w), append(agentCPU, c)
		a.stop(b)
		stop := auditd(b, "/etc/passwd")
		w, c = getpwnamRate(b, secs)
		audit, auditCPU = append(audit, w), append(auditCPU, c)
		stop()
	}
	line := func(what string, n, em, ag, au float64) {
		ns := func(r float64) float64 { return 1e9/r - 1e9/n }
		fmt.Printf("getpwnam(\"root\") loop, %s, median of %d × %.0f s: no agent %.0f/s; agent (%s) %.0f/s = %.1f %% (+%.0f ns per call); auditd -w /etc/passwd -p r %.0f/s = %.1f %% (+%.0f ns per call); empty program on the open exits %.0f/s = %.1f %% (+%.0f ns per call)\n",
			what, rounds, secs, n, mech, ag, ag/n*100, ns(ag), au, au/n*100, ns(au), em, em/n*100, ns(em))
	}
	line("per second of the loop's CPU time", median(noneCPU), median(emptyCPU), median(agentCPU), median(auditCPU))
	line("per second of wall time", median(none), median(empty), median(agent), median(audit))
	fmt.Printf("  rounds (wall): none %v | empty %v | agent %v | auditd %v\n", rounds3(none), rounds3(empty), rounds3(agent), rounds3(audit))
	fmt.Printf("  rounds (cpu):  none %v | empty %v | agent %v | auditd %v\n", rounds3(noneCPU), rounds3(emptyCPU), rounds3(agentCPU), rounds3(auditCPU))
	fmt.Printf("  agent/none per round (cpu): %v\n", ratios(agentCPU, noneCPU))

	a := startAgent(b, bin, rule)
	fmt.Printf("  agent's eBPF programs (%s), with BPF run-time statistics on (their clock reads included): %s\n",
		a.mech, programCost(b, a.cmd.Process.Pid, "/etc/passwd", "/etc/group"))
	a.stop(b)
	b.ReportMetric(median(agentCPU)/median(noneCPU)*100, "agent_cpu_%")
	b.ReportMetric(median(auditCPU)/median(noneCPU)*100, "auditd_cpu_%")
	b.ReportMetric(median(emptyCPU)/median(noneCPU)*100, "empty_open_exits_cpu_%")
}

// ratios lists xs[i]/ys[i] in per cent, one decimal.
func ratios(xs, ys []float64) string {
	var s []string
	for i := range xs {
		s = append(s, strconv.FormatFloat(xs[i]/ys[i]*100, 'f', 1, 64))
	}
	return strings.Join(s, " ")
}

func rounds3(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.FormatFloat(math.Round(x), 'f', 0, 64))
	}
	return strings.Join(s, " ")
}

// opener is the child process that opens and reads a file in a loop: n
// times, or for d if n is 0; it prints the slowest open+read+close in ns and
// the count.
const opener = `import os, sys, time
path, n, d = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
worst = 0; i = 0; end = time.monotonic() + d
while (n and i < n) or (not n and time.monotonic() < end):
    t = time.monotonic_ns()
    fd = os.open(path, os.O_RDONLY); os.read(fd, 4096); os.close(fd)
    worst = max(worst, time.monotonic_ns() - t); i += 1
print(worst, i, os.getpid())`

func runOpener(b *testing.B, path string, n int, d time.Duration) (worst time.Duration, count, pid int) {
	b.Helper()
	out, err := exec.Command("python3", "-c", opener, path, strconv.Itoa(n), strconv.FormatFloat(d.Seconds(), 'f', 1, 64)).Output()
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(out))
	w, _ := strconv.ParseInt(f[0], 10, 64)
	count, _ = strconv.Atoi(f[1])
	pid, _ = strconv.Atoi(f[2])
	return time.Duration(w), count, pid
}

// BenchmarkStoppedAgent: the agent is SIGSTOPped for 10 s while another
// process opens and reads a watched file in a loop: the slowest open, beside
// the slowest of the same loop with no agent (the machine's own scheduling
// delays, in the same run).
func BenchmarkStoppedAgent(b *testing.B) {
	needRoot(b)
	bin := buildAgent(b)
	f := filepath.Join(b.TempDir(), "watched")
	if err := os.WriteFile(f, []byte("secret\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	base, bn, _ := runOpener(b, f, 0, 10*time.Second)
	a := startAgent(b, bin, fmt.Sprintf("  - {name: w, type: file, severity: WARN, paths: [%s]}\n", f))
	a.cmd.Process.Signal(syscall.SIGSTOP)
	worst, n, _ := runOpener(b, f, 0, 10*time.Second)
	a.cmd.Process.Signal(syscall.SIGCONT)
	a.stop(b)
	fmt.Printf("agent (%s) SIGSTOPped for 10 s: %d opens of the watched file, slowest %v; no agent: %d opens, slowest %v\n",
		a.mech, n, worst.Round(time.Microsecond), bn, base.Round(time.Microsecond))
	b.ReportMetric(float64(worst.Microseconds()), "worst_open_us")
}

// BenchmarkShortLivedCat: `cat` of a watched file, 2,500 times, each gone
// before the agent could read /proc: how many trips in the chain name the
// actor in full (PID, parent, user, executable, command line).
func BenchmarkShortLivedCat(b *testing.B) {
	needRoot(b)
	const n = 2500
	bin := buildAgent(b)
	f := filepath.Join(b.TempDir(), "watched")
	if err := os.WriteFile(f, []byte("secret\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	a := startAgent(b, bin, fmt.Sprintf("  - {name: w, type: file, severity: WARN, paths: [%s]}\n", f))
	catExe, _ := filepath.EvalSymlinks("/bin/cat")
	pids := map[int64]bool{}
	for range n {
		cmd := exec.Command("/bin/cat", f)
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		pids[int64(cmd.Process.Pid)] = true
	}
	time.Sleep(2 * time.Second)
	a.stop(b)
	full, seen := 0, 0
	for _, e := range a.events(b) {
		if e.Name != event.FileAccess || e.Process == nil || !pids[e.Process.PID] {
			continue
		}
		seen++
		p := e.Process
		if p.PPID == int64(os.Getpid()) && p.UserID == "0" && p.UserName == "root" && p.ExecutablePath == catExe &&
			p.CommandLine == "/bin/cat "+f && len(e.Missing) == 0 {
			full++
		}
		delete(pids, e.Process.PID)
	}
	fmt.Printf("short-lived cat × %d on %s: %d/%d trips attributed in full (pid, ppid, user, exe, command line), %d with fields missing, %d cats without a trip\n",
		n, a.mech, full, n, seen-full, len(pids))
	b.ReportMetric(float64(full), "full")
}

// BenchmarkReadCount: 100,000 open+read+close of a watched file by one
// process; the sum of tripwire.count over its chained events, plus any loss
// the agent reported, against 100,000.
func BenchmarkReadCount(b *testing.B) {
	needRoot(b)
	const n = 100000
	bin := buildAgent(b)
	f := filepath.Join(b.TempDir(), "watched")
	if err := os.WriteFile(f, []byte("secret\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	a := startAgent(b, bin, fmt.Sprintf("  - {name: w, type: file, severity: WARN, paths: [%s]}\n", f))
	start := time.Now()
	_, done, pid := runOpener(b, f, n, 0)
	took := time.Since(start)
	time.Sleep(3 * time.Second) // the last summaries
	a.stop(b)
	var sum, events int64
	lost := map[string]int64{}
	for _, e := range a.events(b) {
		if e.Name == event.AgentLoss && e.Agent != nil {
			lost[e.Agent.LossReason] += e.Agent.LossCount
		}
		if e.Name == event.FileAccess && e.Process != nil && e.Process.PID == int64(pid) {
			sum += max(e.Count, 1)
			events++
		}
	}
	fmt.Printf("%d reads of a watched file in %v (%s): chained tripwire.count sum %d in %d events, losses reported %v\n",
		done, took.Round(time.Millisecond), a.mech, sum, events, lost)
	b.ReportMetric(float64(sum), "counted")
}

// BenchmarkIdleRealistic: the agent with a recursive /etc rule and one rule
// of each other kind for 60 s: RSS and CPU. Every process that starts reads
// /etc (ld.so.cache, nsswitch.conf), so on a busy machine that rule trips all
// the time and the agent is not idle: the events it chained meanwhile are
// printed beside the figures, and the same config without the /etc rule is
// measured after it (the agent's own idle cost).
func BenchmarkIdleRealistic(b *testing.B) {
	needRoot(b)
	bin := buildAgent(b)
	decoy := filepath.Join(b.TempDir(), "decoy")
	others := fmt.Sprintf(`  - {name: decoy, type: file, severity: CRITICAL, paths: [%s], plant: {content: "x"}}
  - {name: tools, type: process, severity: WARN, names: [nc, ncat, socat]}
  - {name: ssh-observe, type: network, severity: INFO, mode: observe, ports: [22]}
  - {name: honey, type: network, severity: CRITICAL, mode: honeyport, ports: [2323]}
`, decoy)
	for _, c := range []struct{ what, rules string }{
		{"recursive /etc + planted decoy + process + observed port + honeyport", "  - {name: etc, type: file, severity: WARN, paths: [/etc], recursive: true}\n" + others},
		{"planted decoy + process + observed port + honeyport", others},
	} {
		a := startAgent(b, bin, c.rules)
		time.Sleep(5 * time.Second)
		pid := a.cmd.Process.Pid
		before := lines(a.audit)
		cpu0, t0 := cpuTicks(b, pid), time.Now()
		time.Sleep(60 * time.Second)
		cpu1, t1 := cpuTicks(b, pid), time.Now()
		rss, hwm, anon := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:"), memKB(b, pid, "RssAnon:")
		trips := lines(a.audit) - before
		a.stop(b)
		const hz = 100
		cpuPct := float64(cpu1-cpu0) / hz / t1.Sub(t0).Seconds() * 100
		fmt.Printf("60 s, %s (file: %s): RSS %.1f MB (anonymous %.1f MB, peak %.1f MB), CPU %.3f %% of one core, %d events chained meanwhile\n",
			c.what, a.mech, float64(rss)/1024, float64(anon)/1024, float64(hwm)/1024, cpuPct, trips)
	}
}

// lines counts the lines of a file (the audit chain: one entry per line).
func lines(path string) int {
	raw, _ := os.ReadFile(path)
	return strings.Count(string(raw), "\n")
}

func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

func memKB(b *testing.B, pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
