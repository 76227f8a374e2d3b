package tripwirereceiver

import (
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// A misconfigured agent is refused on every request, several a second; the
// refusals of one certificate for one reason are handed on at most once per
// refusalInterval, with their count, and at most maxRefusalKeys identities
// are tracked, so neither the pipeline nor the central table is flooded.
const (
	refusalInterval = time.Minute
	maxRefusalKeys  = 1024
)

type refusalKey struct{ certName, reason string }

type refusalState struct {
	last     event.Refusal // the latest refusal's details
	pending  int64         // refusals not yet handed on
	recorded time.Time     // when last handed on
}

// refusalLog collects the identities the receiver refused and hands them on
// to the pipeline from its own goroutine, so that neither a handshake nor a
// request waits for it.
type refusalLog struct {
	logger   *zap.Logger
	interval time.Duration
	consume  func(plog.Logs) error

	mu      sync.Mutex
	byKey   map[refusalKey]*refusalState
	dropped int64 // refusals of identities beyond maxRefusalKeys

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newRefusalLog(logger *zap.Logger, interval time.Duration, consume func(plog.Logs) error) *refusalLog {
	l := &refusalLog{logger: logger, interval: interval, consume: consume, byKey: map[refusalKey]*refusalState{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// note records one refusal; it never blocks on the pipeline.
func (l *refusalLog) note(r event.Refusal) {
	k := refusalKey{r.CertName, r.Reason}
	l.mu.Lock()
	st := l.byKey[k]
	if st == nil {
		if len(l.byKey) >= maxRefusalKeys {
			l.evictLocked(time.Now())
		}
		if len(l.byKey) >= maxRefusalKeys {
			l.dropped++
			l.mu.Unlock()
			return
		}
		st = &refusalState{}
		l.byKey[k] = st
	}
	st.last = r
	st.pending++
	due := time.Since(st.recorded) >= l.interval
	l.mu.Unlock()
	if due {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// evictLocked forgets identities with nothing pending that were handed on
// more than an interval ago: a later refusal is recorded at once again.
func (l *refusalLog) evictLocked(now time.Time) {
	for k, st := range l.byKey {
		if st.pending == 0 && now.Sub(st.recorded) >= l.interval {
			delete(l.byKey, k)
		}
	}
}

func (l *refusalLog) run() {
	defer close(l.done)
	tick := time.NewTicker(max(l.interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			l.flush(true)
			return
		case <-l.wake:
		case <-tick.C:
		}
		l.flush(false)
	}
}

// flush hands on every identity whose refusals are due (all pending ones
// when final), in one plog.Logs.
func (l *refusalLog) flush(final bool) {
	now := time.Now()
	ld := plog.NewLogs()
	var taken []*refusalState
	var counts []int64
	l.mu.Lock()
	for _, st := range l.byKey {
		if st.pending > 0 && (final || now.Sub(st.recorded) >= l.interval) {
			r := st.last
			r.Count = st.pending
			r.AppendTo(ld)
			taken, counts = append(taken, st), append(counts, st.pending)
			st.pending, st.recorded = 0, now
		}
	}
	l.evictLocked(now)
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		l.logger.Warn("refused identities not recorded centrally: too many distinct ones", zap.Int64("refusals", dropped))
	}
	if len(taken) == 0 {
		return
	}
	err := l.consume(ld)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.logger.Warn("handing refused identities on failed; retried later", zap.Error(err))
		for i, st := range taken {
			st.pending += counts[i]
		}
		return
	}
	// The interval runs from when the record was handed on: consume may
	// wait (the group commit stores it in PostgreSQL first), and the next
	// record of an identity must come an interval after this one, not an
	// interval after the decision to send it.
	done := time.Now()
	for _, st := range taken {
		st.recorded = done
	}
}

// close hands on what is pending and stops; safe to call once.
func (l *refusalLog) close() {
	close(l.stop)
	<-l.done
}
