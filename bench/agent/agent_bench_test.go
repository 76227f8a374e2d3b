// Package agentbench measures the agent on the real kernel (fanotify, as
// root): idle cost, trip-to-spool latency and a burst. Each benchmark runs
// one fixed scenario whatever b.N is and prints its figures; run with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/agent/
package agentbench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/agent"
	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/pipeline"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestMain lets this binary double as the reader process: the agent never
// reports its own accesses, so trips must come from another PID.
func TestMain(m *testing.M) {
	if os.Getenv("TRIPWIRE_BENCH_READER") == "1" {
		os.Exit(reader(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// reader RATE SECONDS LIST reads the files named in LIST (one a line)
// round-robin at RATE reads/s for SECONDS and prints "index unix_nanos" per
// read, the time taken just before read(2). (The list is a file, not
// arguments: the command line is in every event, and a 1 MB one would make
// the benchmark measure its own arguments.)
func reader(args []string) int {
	rate, _ := strconv.Atoi(args[0])
	secs, _ := strconv.Atoi(args[1])
	list, err := os.ReadFile(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	files := strings.Fields(string(list))
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer out.Flush()
	buf := make([]byte, 64)
	start := time.Now()
	total := rate * secs
	for i := 0; i < total; {
		due := int(time.Since(start).Seconds() * float64(rate))
		if i >= due {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		for ; i < due && i < total; i++ {
			f, err := os.Open(files[i%len(files)])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			t := time.Now().UnixNano()
			_, _ = f.Read(buf)
			f.Close()
			fmt.Fprintf(out, "%d %d\n", i, t)
		}
	}
	return 0
}

func runReader(b *testing.B, rate, secs int, files []string) []int64 {
	b.Helper()
	list := filepath.Join(b.TempDir(), "files")
	if err := os.WriteFile(list, []byte(strings.Join(files, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], strconv.Itoa(rate), strconv.Itoa(secs), list)
	cmd.Env = append(os.Environ(), "TRIPWIRE_BENCH_READER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("reader: %v", err)
	}
	var times []int64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var i int
		var t int64
		if _, err := fmt.Sscanf(line, "%d %d", &i, &t); err == nil {
			times = append(times, t)
		}
	}
	return times
}

// setup makes n files split over three file rules and a config for them.
func setup(b *testing.B, n int, extra string) (string, []string) {
	b.Helper()
	dir := b.TempDir()
	var files []string
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for r := 0; r < 3; r++ {
		var paths []string
		for i := r; i < n; i += 3 {
			p := filepath.Join(dir, "watched", fmt.Sprintf("r%d", r), fmt.Sprintf("f%05d", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			paths = append(paths, p)
			files = append(files, p)
		}
		fmt.Fprintf(&rules, "  - name: rule%d\n    type: file\n    severity: CRITICAL\n    paths: [%s]\n", r, strings.Join(paths, ", "))
	}
	conf := filepath.Join(dir, "agent.yaml")
	body := rules.String() + fmt.Sprintf("spool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\nhealth: {socket: %s/health.sock}\n%s", dir, dir, dir, extra)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	sort.Strings(files)
	return conf, files
}

// startAgent runs the agent in this process (the reader is another one).
func startAgent(b *testing.B, conf string, opts agent.Options) (*agent.Agent, func()) {
	b.Helper()
	cfg, err := config.Load(conf)
	if err != nil {
		b.Fatal(err)
	}
	a, err := agent.New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := health.Fetch(context.Background(), a.HealthAddress()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// BenchmarkIdle: the real binary with 3 file rules on 50 paths, idle for
// 60 s: RSS and CPU.
func BenchmarkIdle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	bin := filepath.Join(b.TempDir(), "tripwire")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/tripwire-sec/tripwire/agent/cmd/tripwire")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatal(err)
	}
	conf, _ := setup(b, 50, "")
	cmd := exec.Command(bin, "start", "--config", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(5 * time.Second) // past start-up
	pid := cmd.Process.Pid
	cpu0, t0 := cpuTicks(b, pid), time.Now()
	time.Sleep(60 * time.Second)
	cpu1, t1 := cpuTicks(b, pid), time.Now()
	rss, hwm := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:")
	const hz = 100 // USER_HZ
	cpuPct := float64(cpu1-cpu0) / hz / t1.Sub(t0).Seconds() * 100
	fmt.Printf("idle 60 s, 3 file rules on 50 paths: RSS %.1f MB (peak %.1f MB), CPU %.3f %% of one core\n",
		float64(rss)/1024, float64(hwm)/1024, cpuPct)
	b.ReportMetric(float64(rss)/1024, "RSS_MB")
	b.ReportMetric(cpuPct, "cpu_%")
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
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkLatency: reads of distinct watched files at 1,000/s for 10 s;
// latency from just before read(2) to the spool commit that holds the
// event, split into the stages of the commit path (pipeline.Trace), beside
// the disk's own write+fdatasync latency at the same rate, measured just
// before and just after the agent runs (the baseline).
func BenchmarkLatency(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	const rate, secs = 1000, 10
	conf, files := setup(b, rate*secs, "")
	state := filepath.Join(filepath.Dir(conf), "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		b.Fatal(err)
	}
	before := probeDisk(b, state, rate, secs/2)

	// Each read is of its own file: the path names the trip at every stage.
	type stamps struct{ received, batched, chained, spoolBegan, committed, seen int64 }
	var mu sync.Mutex
	trips := map[string]*stamps{}
	// Trips whose ring-buffer record was lost arrive with the next summary
	// of the kernel's counters, as a count.
	var viaSummary atomic.Int64
	stamp := func(e *event.Event, set func(*stamps)) {
		if e.File == nil {
			return
		}
		st := trips[e.File.Path]
		if st == nil {
			st = &stamps{}
			trips[e.File.Path] = st
		}
		set(st)
	}
	each := func(batch []*event.Event, set func(*stamps)) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range batch {
			stamp(e, set)
		}
	}
	first := func(p *int64, at time.Time) {
		if *p == 0 {
			*p = at.UnixNano()
		}
	}
	trace := &pipeline.Trace{
		Received: func(e *event.Event, at time.Time) {
			if e.Count > 0 {
				viaSummary.Add(1)
			}
			each([]*event.Event{e}, func(st *stamps) { first(&st.received, at) })
		},
		Batched: func(batch []*event.Event, at time.Time) {
			each(batch, func(st *stamps) { first(&st.batched, at) })
		},
		Chained: func(batch []*event.Event, at time.Time) {
			each(batch, func(st *stamps) { first(&st.chained, at) })
		},
		Spooled: func(batch []*event.Event, began, committed time.Time) {
			each(batch, func(st *stamps) { first(&st.spoolBegan, began); first(&st.committed, committed) })
		},
	}
	// The memory limit the binary runs with (this process also holds the
	// benchmark's own ~3 MB: the file list and the stamps).
	a, stop := startAgent(b, conf, agent.Options{Version: "bench", Trace: trace, MemoryLimit: agent.IdleMemoryLimit})
	defer debug.SetMemoryLimit(math.MaxInt64)
	gcs := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	gc0 := gcs()
	sp := a.Spool()
	// A shipper's view: woken by Committed, it reads and deletes.
	shipDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(shipDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sp.Committed():
			}
			for {
				items, err := sp.Oldest(ctx, 1000)
				if err != nil || len(items) == 0 {
					break
				}
				now := time.Now()
				var ids []int64
				for _, it := range items {
					each([]*event.Event{it.Event}, func(st *stamps) { first(&st.seen, now) })
					ids = append(ids, it.ID)
				}
				if err := sp.Delete(ctx, ids); err != nil {
					break
				}
			}
		}
	}()
	reads := runReader(b, rate, secs, files)
	gcRun := gcs() - gc0
	time.Sleep(2 * time.Second)
	cancel()
	<-shipDone
	st := a.PipelineStats()
	stop()
	after := probeDisk(b, state, rate, secs/2)

	var total, watcherPart, queuePart, chainPart, afterChainPart, spoolTxPart, seenPart []time.Duration
	missing := 0
	mu.Lock()
	for i, t := range reads {
		s := trips[files[i%len(files)]]
		if s == nil || s.committed == 0 || s.received == 0 || s.batched == 0 || s.chained == 0 {
			missing++
			continue
		}
		total = append(total, time.Duration(s.committed-t))
		watcherPart = append(watcherPart, time.Duration(s.received-t))
		queuePart = append(queuePart, time.Duration(s.batched-s.received))
		chainPart = append(chainPart, time.Duration(s.chained-s.batched))
		afterChainPart = append(afterChainPart, time.Duration(s.committed-s.chained))
		spoolTxPart = append(spoolTxPart, time.Duration(s.committed-s.spoolBegan))
		if s.seen != 0 {
			seenPart = append(seenPart, time.Duration(s.seen-s.committed))
		}
	}
	mu.Unlock()
	if len(total) == 0 {
		b.Fatal("no trip reached the spool")
	}
	sortDurations(total)
	fmt.Printf("latency read(2) → spool commit at %d reads/s for %d s: p50 %v, p99 %v, max %v (%d reads, %d not committed, %d trips, %d coalesced, %d dropped, %d GC cycles while reading)\n",
		rate, secs, pct(total, 0.50), pct(total, 0.99), pct(total, 1), len(reads), missing, st.Trips, st.Coalesced, st.Dropped, gcRun)
	for _, part := range []struct {
		name string
		d    []time.Duration
	}{
		{fmt.Sprintf("read(2) → pipeline (kernel, ring buffer, watcher; %d via a summary)", viaSummary.Load()), watcherPart},
		{"pipeline → batched (coalescer, queue, wait for the previous chain sync)", queuePart},
		{"batched → chained (audit log write + sync)", chainPart},
		{"chained → spool commit (what the spool adds after the sync)", afterChainPart},
		{"spool transaction, begin → commit (its inserts overlap the sync)", spoolTxPart},
		{"spool commit → a shipper reads it (not in the total)", seenPart},
	} {
		if len(part.d) > 0 {
			sortDurations(part.d)
			fmt.Printf("  %-75s p50 %8v  p99 %8v  max %8v\n", part.name, pct(part.d, 0.50), pct(part.d, 0.99), pct(part.d, 1))
		}
	}
	syncs := slices.Concat(before.sync, after.sync)
	floor := slices.Concat(before.due, after.due)
	for _, d := range [][]time.Duration{syncs, floor, before.due, after.due} {
		sortDurations(d)
	}
	fmt.Printf("  baseline, this disk, %d s before and %d s after: 300-byte records due at %d/s, group-committed with write + fdatasync:\n", secs/2, secs/2, rate)
	fmt.Printf("  %-75s p50 %8v  p99 %8v  max %8v\n", "  each fdatasync", pct(syncs, 0.50), pct(syncs, 0.99), pct(syncs, 1))
	fmt.Printf("  %-75s p50 %8v  p99 %8v  max %8v  (p99 before %v, after %v)\n", "  record due → durable (the floor of read(2) → commit)",
		pct(floor, 0.50), pct(floor, 0.99), pct(floor, 1), pct(before.due, 0.99), pct(after.due, 0.99))
	b.ReportMetric(float64(pct(total, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(pct(total, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(pct(syncs, 0.99).Microseconds())/1000, "fdatasync_p99_ms")
	b.ReportMetric(float64(pct(floor, 0.99).Microseconds())/1000, "disk_floor_p99_ms")
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// pct is the q-quantile of sorted durations, rounded for printing.
func pct(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))].Round(10 * time.Microsecond)
}

// diskFloor is what the disk alone gives at the benchmark's rate: records
// of 300 bytes due rate times a second are group-committed as the pipeline
// does (everything due is written at once, then one fdatasync). sync is
// how long each fdatasync took; due is each record's latency from when it
// was due to when its fdatasync returned, the floor of read(2) → commit. A
// record that came due while the probe slept counts from when it woke: on
// a loaded machine a sleep overshoots by milliseconds, which is the
// scheduler, not the disk.
type diskFloor struct{ sync, due []time.Duration }

func probeDisk(b *testing.B, dir string, rate, secs int) diskFloor {
	f, err := os.OpenFile(filepath.Join(dir, "fdatasync-probe"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 300
	var buf []byte
	var out diskFloor
	start := time.Now()
	dueAt := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second / time.Duration(rate)) }
	lastDone := start
	for next, total := 0, rate*secs; next < total; {
		woke := lastDone
		if w := time.Until(dueAt(next)); w > 0 {
			time.Sleep(w)
			woke = time.Now()
		}
		n := 0
		for now := time.Now(); next+n < total && !dueAt(next+n).After(now); n++ {
		}
		buf = slices.Grow(buf[:0], n*size)[:n*size]
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		out.sync = append(out.sync, done.Sub(t))
		for i := next; i < next+n; i++ {
			from := dueAt(i)
			if from.After(lastDone) && woke.After(from) {
				from = woke // due while the probe slept
			}
			out.due = append(out.due, done.Sub(from))
		}
		next += n
		lastDone = done
	}
	return out
}

// BenchmarkBurst: one process reads the 50 watched files round-robin at
// 20,000 reads/s for 10 s, at the default spool limits: how many trips were
// spooled, coalesced, dropped and shed.
func BenchmarkBurst(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	const rate, secs = 20000, 10
	conf, files := setup(b, 50, "")
	a, stop := startAgent(b, conf, agent.Options{Version: "bench"})
	reads := runReader(b, rate, secs, files)
	time.Sleep(2 * time.Second) // the last windows close
	st := a.PipelineStats()
	stop()
	ss := a.Spool().Stats()
	fmt.Printf("burst %d reads/s for %d s on 50 files: %d reads, %d trips, %d coalesced into %d summaries, %d events spooled, %d dropped, %d shed (INFO %d, WARN %d), losses reported %v\n",
		rate, secs, len(reads), st.Trips, st.Coalesced, st.Summaries, ss.Depth, st.Dropped, ss.ShedInfo+ss.ShedWarn, ss.ShedInfo, ss.ShedWarn, losses(b, filepath.Join(filepath.Dir(conf), "state", "audit.log")))
	b.ReportMetric(float64(ss.ShedInfo+ss.ShedWarn), "shed")
	b.ReportMetric(float64(st.Dropped), "dropped")
}

// BenchmarkBurstDistinct: like BenchmarkBurst, but over 60,000 files under
// three recursive directory rules, so a file is read again only every 3 s
// and nothing coalesces: every read is its own event. This is the agent's
// throughput limit, not a realistic attack.
func BenchmarkBurstDistinct(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	const rate, secs, n = 20000, 10, 60000
	dir := b.TempDir()
	var files []string
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for r := 0; r < 3; r++ {
		d := filepath.Join(dir, "watched", fmt.Sprintf("r%d", r))
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&rules, "  - {name: rule%d, type: file, severity: CRITICAL, recursive: true, paths: [%s]}\n", r, d)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "watched", fmt.Sprintf("r%d", i%3), fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		files = append(files, p)
	}
	conf := filepath.Join(dir, "agent.yaml")
	body := rules.String() + fmt.Sprintf("spool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\nhealth: {socket: %s/health.sock}\n", dir, dir, dir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	a, stop := startAgent(b, conf, agent.Options{Version: "bench"})
	start := time.Now()
	reads := runReader(b, rate, secs, files)
	readTime := time.Since(start)
	st := a.PipelineStats()
	for st.Queued > 0 && time.Since(start) < 5*time.Minute {
		time.Sleep(100 * time.Millisecond)
		st = a.PipelineStats()
	}
	drained := time.Since(start)
	stop()
	ss := a.Spool().Stats()
	fmt.Printf("distinct burst %d reads/s for %d s over %d files: %d reads in %v, %d trips, %d coalesced, %d events spooled (queue drained after %v), %d dropped, %d shed, losses reported %v\n",
		rate, secs, n, len(reads), readTime.Round(time.Millisecond), st.Trips, st.Coalesced, ss.Depth, drained.Round(time.Millisecond), st.Dropped, ss.ShedInfo+ss.ShedWarn, losses(b, filepath.Join(dir, "state", "audit.log")))
	b.ReportMetric(float64(st.Dropped), "dropped")
}

// losses sums the loss events in an audit log by reason.
func losses(b *testing.B, path string) map[string]int64 {
	out := map[string]int64{}
	err := auditchain.ReadEntries(path, 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Name == event.AgentLoss && e.Agent != nil {
			out[e.Agent.LossReason] += e.Agent.LossCount
		}
		return nil
	})
	if err != nil {
		b.Error(err)
	}
	return out
}

// BenchmarkHoneyport: a load generator opens 500 TCP connections/s for 10 s
// to a honeyport of the real agent (in this process) and closes each at
// once. Then it compares the connections made with the chain: the sum of
// tripwire.count over the rule's chained events, plus the loss the agent
// reported (a listen-queue overflow), must account for every one.
func BenchmarkHoneyport(b *testing.B) {
	const rate, secs = 500, 10
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := b.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	body := fmt.Sprintf("rules:\n  - {name: decoy, type: network, severity: CRITICAL, mode: honeyport, address: 127.0.0.1, ports: [%d]}\n"+
		"spool: {path: %s/state/spool.db}\naudit: {path: %s/state/audit.log}\nhealth: {socket: %s/health.sock}\n", port, dir, dir, dir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	a, stop := startAgent(b, conf, agent.Options{Version: "bench"})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var made, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < rate*secs; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			made.Add(1)
			c.Close()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(2 * time.Second) // the honeyport's reads (500 ms) and the last window end
	st := a.PipelineStats()
	stop()
	var counted, events int64
	err = auditchain.ReadEntries(filepath.Join(dir, "state", "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Name == event.NetworkConnection && e.Rule == "decoy" {
			events++
			counted += max(e.Count, 1)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	lost := losses(b, filepath.Join(dir, "state", "audit.log"))
	verdict := "exact"
	if counted != made.Load() {
		verdict = fmt.Sprintf("differ by %d", made.Load()-counted)
	}
	fmt.Printf("honeyport %d connections/s for %d s (%v): %d connections made, %d failed; chained counts sum to %d in %d events (%s); losses reported %v; pipeline: %d trips, %d coalesced, %d dropped\n",
		rate, secs, took.Round(time.Millisecond), made.Load(), failed.Load(), counted, events, verdict, lost, st.Trips, st.Coalesced, st.Dropped)
	b.ReportMetric(float64(made.Load()-counted), "uncounted")
}
