//go:build unix

package auditchain

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// BenchmarkVerify reports verification throughput next to its ceiling,
// bare SHA-256 of the same lines on every core, measured in alternating
// rounds of one run. Two figures each: wall-clock entries/s (the best round,
// since other load only ever slows a round down) and the process's CPU time
// per entry, from which cores ÷ CPU per entry is the throughput on idle
// cores. On a shared machine the CPU-time ratio is the figure to compare.
func BenchmarkVerify(b *testing.B) {
	const n, rounds = 200_000, 5
	data, err := os.ReadFile(writeLog(b, n))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte{'\n'})
	lines = lines[:len(lines)-1] // the empty tail after the last newline
	var sha, verify timings
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range rounds {
			sha.measure(func() { hashLines(lines) })
			verify.measure(func() {
				rep, err := Verify(bytes.NewReader(data), nil)
				if err != nil || rep.Break != nil || rep.Entries != n {
					b.Fatal(rep.Break, err)
				}
			})
		}
	}
	cores := float64(runtime.GOMAXPROCS(0))
	b.ReportMetric(n/verify.bestWall.Seconds(), "entries/s")
	b.ReportMetric(n/sha.bestWall.Seconds(), "sha256-entries/s")
	b.ReportMetric(cores*n/verify.bestCPU.Seconds(), "idle-cores-entries/s")
	b.ReportMetric(cores*n/sha.bestCPU.Seconds(), "idle-cores-sha256-entries/s")
	b.Logf("%d-byte entries, %.0f cores. Wall clock: verify %.2f M entries/s, bare SHA-256 of the same lines %.2f M entries/s (%.0f %%). "+
		"CPU time per entry: verify %.0f ns, SHA-256 %.0f ns (%.0f %%); on idle cores: verify %.2f M entries/s, SHA-256 %.2f M entries/s",
		len(data)/n, cores, n/verify.bestWall.Seconds()/1e6, n/sha.bestWall.Seconds()/1e6, 100*sha.bestWall.Seconds()/verify.bestWall.Seconds(),
		float64(verify.bestCPU.Nanoseconds())/n, float64(sha.bestCPU.Nanoseconds())/n, 100*sha.bestCPU.Seconds()/verify.bestCPU.Seconds(),
		cores*n/verify.bestCPU.Seconds()/1e6, cores*n/sha.bestCPU.Seconds()/1e6)
}

// timings keeps the best wall-clock and CPU time of repeated runs.
type timings struct{ bestWall, bestCPU time.Duration }

func (r *timings) measure(f func()) {
	start, cpu := time.Now(), processCPU()
	f()
	wall, used := time.Since(start), processCPU()-cpu
	if r.bestWall == 0 || wall < r.bestWall {
		r.bestWall = wall
	}
	if r.bestCPU == 0 || used < r.bestCPU {
		r.bestCPU = used
	}
}

// processCPU is the CPU time (user + system) of every thread of the process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hashLines is the ceiling for Verify: SHA-256 of every line, split evenly
// over every core, with no parsing and no ordering.
func hashLines(lines [][]byte) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		part := lines[w*len(lines)/workers : (w+1)*len(lines)/workers]
		wg.Go(func() {
			for _, l := range part {
				sha256.Sum256(l)
			}
		})
	}
	wg.Wait()
}

// BenchmarkAppend reports append throughput with the default policy (one fsync
// per Append) for batch sizes the pipeline sees.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64, 512} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			w, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{Sync: SyncBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			events := make([]*event.Event, batch)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range events {
					events[j] = trip(i*batch + j)
				}
				b.StartTimer()
				if err := w.Append(events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
