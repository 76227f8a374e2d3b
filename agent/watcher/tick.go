package watcher

import "time"

// AlignedTimer fires at whole multiples of its period on the wall clock, so
// that the agent's periodic work (counter summaries, kernel drop counters,
// status checks) wakes the process once per period instead of once per
// ticker: each wake of an otherwise idle Go process also costs the runtime's
// monitor thread a burst of short sleeps, which made up half of an idle
// agent's CPU time. After each tick, call Again.
type AlignedTimer struct {
	*time.Timer
	period time.Duration
}

// NewAlignedTimer returns a timer that fires at the next multiple of period.
func NewAlignedTimer(period time.Duration) AlignedTimer {
	return AlignedTimer{time.NewTimer(untilAligned(period)), period}
}

// Again sets the timer to the next multiple of its period.
func (t AlignedTimer) Again() { t.Reset(untilAligned(t.period)) }

// untilAligned is the time left until the next whole multiple of period
// (at least a millisecond, so a tick just at the boundary does not repeat).
func untilAligned(period time.Duration) time.Duration {
	now := time.Now()
	return max(now.Truncate(period).Add(period).Sub(now), time.Millisecond)
}
