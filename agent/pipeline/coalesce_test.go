package pipeline

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// weight is what one emitted event stands for: a first trip is one, a
// summary carries its count.
func weight(e *event.Event) int64 { return max(e.Count, 1) }

// TestCoalescerCountsEveryTrip drives the coalescer with random streams of
// trips over a simulated clock: windows from 1 ms to 5 s, rates from sparse
// to floods, several keys and watchers, and ticks that come late (a busy
// agent). Per key, the counts emitted plus the duplicates dropped must equal
// the trips fed in, always.
func TestCoalescerCountsEveryTrip(t *testing.T) {
	windows := []time.Duration{time.Millisecond, 10 * time.Millisecond, 250 * time.Millisecond, time.Second, 5 * time.Second}
	for seed := uint64(1); seed <= 400; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		window := windows[rng.IntN(len(windows))]
		// Mean gap between trips, relative to the window: floods to sparse.
		gap := time.Duration(float64(window) * []float64{0.0001, 0.01, 0.2, 1, 3}[rng.IntN(5)])
		keys, sinks := 1+rng.IntN(4), 1+rng.IntN(2)
		var coalesced, duplicates, summaries atomic.Int64
		emitted := map[string]int64{}
		c := &coalescer{window: window, bursts: map[string]*burst{},
			emit:      func(e *event.Event) { emitted[tripKey(e)] += weight(e) },
			coalesced: &coalesced, duplicates: &duplicates, summaries: &summaries}
		fed := map[string]int64{}
		now := time.Unix(1_800_000_000, 0)
		nextTick := now.Add(window / 4)
		n := 500 + rng.IntN(3000)
		for i := 0; i < n; i++ {
			now = now.Add(time.Duration(rng.ExpFloat64() * float64(gap)))
			for !nextTick.After(now) {
				c.flush(nextTick, false)
				// A tick is due every window/4 but may come up to two windows late.
				nextTick = nextTick.Add(window/4 + time.Duration(rng.Float64()*float64(2*window)))
			}
			e := trip(fmt.Sprintf("/srv/%d", rng.IntN(keys)), 7)
			fed[tripKey(e)]++
			c.add(e, 1+uint64(rng.IntN(sinks)), now)
		}
		c.flush(now, true)
		if len(c.bursts) != 0 {
			t.Fatalf("seed %d: %d bursts left open after the final flush", seed, len(c.bursts))
		}
		var total, fedTotal int64
		for k, want := range fed {
			fedTotal += want
			total += emitted[k]
			if sinks == 1 && emitted[k] != want {
				t.Fatalf("seed %d (window %s, mean gap %s): key %q fed %d trips, emitted counts sum to %d",
					seed, window, gap, k, want, emitted[k])
			}
		}
		if total+duplicates.Load() != fedTotal {
			t.Fatalf("seed %d (window %s, mean gap %s, %d watchers): fed %d trips, emitted %d + %d duplicates",
				seed, window, gap, sinks, fedTotal, total, duplicates.Load())
		}
		if coalesced.Load()+int64(len(emitted)) < summaries.Load() {
			t.Fatalf("seed %d: %d summaries for %d repeats", seed, summaries.Load(), coalesced.Load())
		}
	}
}

// TestPipelineChainsEveryTrip feeds random bursts through the real pipeline
// (real clock and timer, a window short enough that trips keep arriving
// between a window's end and the tick) and checks the chain: per key the sum
// of tripwire.count over chained events equals the trips fed in.
func TestPipelineChainsEveryTrip(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, spool.Options{}, 5*time.Millisecond)
	sink := r.p.Sink("fanotify", nil)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	fed := map[string]int64{}
	for burst := 0; burst < 60; burst++ {
		n := rng.IntN(400)
		pause := time.Duration(rng.IntN(3000)) * time.Microsecond
		for i := 0; i < n; i++ {
			e := trip(fmt.Sprintf("/srv/%d", rng.IntN(3)), 7)
			fed[e.File.Path]++
			sink.Trip(e)
			if i%50 == 0 {
				time.Sleep(pause)
			}
		}
	}
	r.close(t)
	got := map[string]int64{}
	err := auditchain.ReadEntries(filepath.Join(dir, "audit.log"), 1, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return err
		}
		if e.Name != event.FileAccess {
			return fmt.Errorf("unexpected event in the chain: %s", en.Payload)
		}
		got[e.File.Path] += weight(e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range fed {
		if got[path] != want {
			t.Errorf("%s: fed %d trips, chained counts sum to %d", path, want, got[path])
		}
	}
	st := r.p.Stats()
	t.Logf("fed %v; chained %d events (%d summaries), coalesced %d", fed, st.Chained, st.Summaries, st.Coalesced)
}
