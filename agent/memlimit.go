package agent

import (
	"runtime/debug"
	"runtime/metrics"
)

// IdleMemoryLimit is the soft Go memory limit of an idle agent: it holds a
// few MB of live heap, and without a limit the runtime keeps twice that
// plus what start-up used.
const IdleMemoryLimit = 16 << 20

// memoryLimit keeps the soft Go memory limit at IdleMemoryLimit while the
// live heap is small and raises it with the heap: a limit near the live
// heap makes the runtime collect back to back. Measured with 10,000 watched
// files read at 1,000/s (the rules are ~7 MB of live heap, and the watcher
// keeps each (process, file) pair's template until the process exits, so
// the heap grows to ~15 MB in 10 s), a fixed 16 MiB limit ran ~800
// collections in the 10 s instead of ~22, and read(2) → spool commit went
// from p50 ~2 ms to p50 23-29 ms, p99 1.1-1.2 s (the starved ring-buffer
// reader overflowed). Once the heap shrinks the limit comes back down and
// the runtime returns the memory.
type memoryLimit struct {
	floor  int64
	sample []metrics.Sample
	set    int64
}

func newMemoryLimit(floor int64) *memoryLimit {
	if floor <= 0 {
		return nil
	}
	debug.SetMemoryLimit(floor)
	return &memoryLimit{floor: floor, set: floor,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
}

// adjust sets the limit for the live heap now: twice the heap (the
// runtime's own goal at GOGC=100) plus half the floor for its stacks,
// metadata and free pages, never below the floor, so an idle agent's few MB
// keep the floor.
func (m *memoryLimit) adjust() {
	if m == nil {
		return
	}
	metrics.Read(m.sample)
	if m.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := max(m.floor, 2*int64(m.sample[0].Value.Uint64())+m.floor/2)
	// Small moves are not worth a call: the runtime recomputes its pacing.
	if d := want - m.set; d > 1<<20 || d < -(1<<20) {
		debug.SetMemoryLimit(want)
		m.set = want
	}
}
