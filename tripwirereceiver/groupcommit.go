package tripwirereceiver

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
)

// errShuttingDown answers a request that arrives after the receiver began
// to stop; the agent retries it (with another collector, or this one later).
var errShuttingDown = errors.New("receiver shutting down")

// maxGroupRecords caps the records of one group: the exporter's queue splits
// batches above 5,000 records again.
const maxGroupRecords = 5000

// maxGroupBytes caps a group's encoded size, so that a group of large
// records is not one write and one transaction the size of many requests.
const maxGroupBytes = 16 << 20

// minGroupInterval is the least time between the starts of two groups.
// Each group costs the persistent queue behind the receiver three fsync'd
// writes, one after another under one lock (stored, taken by the exporter,
// deleted once stored): a group per request that arrived during the last
// write made hundreds of groups a second of a few records each under steady
// load, and the queue's writes, not the work, set the pace. An idle
// receiver's request still goes at once.
const minGroupInterval = 10 * time.Millisecond

// groupCommit hands the records of concurrent requests to the next consumer
// together. Behind the receiver sits a persistent queue that pays fsync'd
// writes per ConsumeLogs call, so a fleet of agents each sending a few
// records at a time would be capped by the disk's fsync rate, not by the
// work; grouped, it costs one write per group. A request that arrives when
// no group started in the last minGroupInterval goes at once; otherwise it
// waits, with the others arriving meanwhile, for the rest of the interval
// (less if they fill a group). A request is answered only after its group
// was consumed, with the group's result, so an acknowledgement still means
// its records were taken.
type groupCommit struct {
	next     consumer.Logs
	interval time.Duration // minGroupInterval; tests set another

	mu      sync.Mutex
	closed  bool
	pending []*commitRequest
	records int           // in pending
	bytes   int           // in pending
	wake    chan struct{} // buffered: requests are pending
	stop    chan struct{}
	done    chan struct{}
}

type commitRequest struct {
	ld    plog.Logs
	size  int // encoded size of ld
	first int // index of its first resource in the group's plog.Logs
	count int // its resources
	err   error
	done  chan struct{}
}

var sizer plog.ProtoMarshaler

func newGroupCommit(next consumer.Logs) *groupCommit {
	g := &groupCommit{next: next, interval: minGroupInterval, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// consume hands ld on with the group it joins and returns the group's
// result. It waits even if the agent gave up on the request: the group may
// hold ld, whose memory belongs to the gRPC request until the handler
// returns.
func (g *groupCommit) consume(ld plog.Logs) error {
	req := &commitRequest{ld: ld, size: sizer.LogsSize(ld), done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errShuttingDown
	}
	g.pending = append(g.pending, req)
	g.records += ld.LogRecordCount()
	g.bytes += req.size
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	<-req.done
	return req.err
}

// close consumes what is pending and stops; requests arriving later are
// refused with errShuttingDown. It may be called more than once.
func (g *groupCommit) close() {
	g.mu.Lock()
	already := g.closed
	g.closed = true
	g.mu.Unlock()
	if !already {
		close(g.stop)
	}
	<-g.done
}

func (g *groupCommit) run() {
	defer close(g.done)
	var last time.Time // when the last group started
	for {
		select {
		case <-g.wake:
		case <-g.stop:
			for g.commitNext() {
			}
			return
		}
		for g.hasPending() {
			if !g.paced(last) {
				for g.commitNext() {
				}
				return
			}
			last = time.Now()
			g.commitNext()
		}
	}
}

func (g *groupCommit) hasPending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending) > 0
}

// paced waits until the interval has passed since last or a full group
// is pending; it reports false when the receiver is stopping.
func (g *groupCommit) paced(last time.Time) bool {
	for {
		wait := time.Until(last.Add(g.interval))
		g.mu.Lock()
		full := g.records >= maxGroupRecords || g.bytes >= maxGroupBytes
		g.mu.Unlock()
		if wait <= 0 || full {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-g.wake: // more arrived: full yet?
		case <-g.stop:
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// commitNext consumes the next group of pending requests, in arrival order,
// and reports whether there was one.
func (g *groupCommit) commitNext() bool {
	g.mu.Lock()
	n, records, size := 0, 0, 0
	for n < len(g.pending) {
		r, b := g.pending[n].ld.LogRecordCount(), g.pending[n].size
		if n > 0 && (records+r > maxGroupRecords || size+b > maxGroupBytes) {
			break
		}
		n, records, size = n+1, records+r, size+b
	}
	group := g.pending[:n]
	g.pending = append([]*commitRequest(nil), g.pending[n:]...)
	g.records -= records
	g.bytes -= size
	g.mu.Unlock()
	if len(group) == 0 {
		return false
	}
	ld := group[0].ld
	if len(group) > 1 {
		ld = plog.NewLogs()
		for _, r := range group {
			r.first, r.count = ld.ResourceLogs().Len(), r.ld.ResourceLogs().Len()
			r.ld.ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
		}
	}
	err := g.next.ConsumeLogs(context.Background(), ld)
	if len(group) > 1 && consumererror.IsPermanent(err) {
		// Retrying cannot help the request whose records were refused, and
		// its agent will split its batch to find them; the others must not
		// be refused with it. Each request goes again alone, as a copy
		// (the pipeline may have made the group read-only).
		for _, r := range group {
			one := plog.NewLogs()
			for i := r.first; i < r.first+r.count; i++ {
				ld.ResourceLogs().At(i).CopyTo(one.ResourceLogs().AppendEmpty())
			}
			r.err = g.next.ConsumeLogs(context.Background(), one)
			close(r.done)
		}
		return true
	}
	for _, r := range group {
		r.err = err
		close(r.done)
	}
	return true
}
