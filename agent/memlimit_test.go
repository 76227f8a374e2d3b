package agent

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// The limit follows a live heap that grows past the floor, so the runtime
// does not collect back to back, and comes back down when it shrinks.
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	const floor = 16 << 20
	m := newMemoryLimit(floor)
	runtime.GC()
	m.adjust()
	if got := debug.SetMemoryLimit(-1); got != floor {
		t.Fatalf("limit with a small heap: %d, want the floor %d", got, floor)
	}
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	runtime.GC() // the live heap is now over 64 MB
	m.adjust()
	if got := debug.SetMemoryLimit(-1); got < 2*64<<20 {
		t.Errorf("limit with 64 MB live: %d MB, want at least twice the heap", got>>20)
	}
	runtime.KeepAlive(live)
	live = nil
	runtime.GC()
	m.adjust()
	if got := debug.SetMemoryLimit(-1); got >= 64<<20 {
		t.Errorf("limit once the heap shrank: %d MB, want it back down", got>>20)
	}
}
