package tripwirereceiver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
)

// errShuttingDown answers a request that arrives after the receiver began
// to stop; the agent retries it (with another collector, or this one later).
var errShuttingDown = errors.New("receiver shutting down")

// maxGroupRecords caps the records of one group, and so of the exporter's
// transactions.
const maxGroupRecords = 5000

// maxGroupBytes caps a group's encoded size, so that a group of large
// records is not one write and one transaction the size of many requests.
const maxGroupBytes = 16 << 20

// minGroupInterval is the least time between the starts of two groups.
// Each group costs the exporter a transaction per lane, each with its
// statements and a commit that waits for the WAL's fsync; a group per
// request made hundreds of small groups a second under steady load, and
// those costs, not the records, set the pace. An idle receiver's request
// still goes at once.
const minGroupInterval = 10 * time.Millisecond

// maxPendingBytes bounds the encoded size of the requests waiting for a
// group: they wait only while the groups in flight are stored, so more
// than this means PostgreSQL is not keeping up.
const maxPendingBytes = 4 * maxGroupBytes

// errBusy refuses a request while too much waits already.
var errBusy = errors.New("receiver busy: too many records wait for the database")

// maxGroupsInFlight groups are consumed side by side: while one group's
// transactions wait on PostgreSQL's commit, the next one is decoded.
const maxGroupsInFlight = 2

// groupCommit hands the records of concurrent requests to the next consumer
// together. Behind the receiver the exporter stores each ConsumeLogs call in
// PostgreSQL before it returns, in transactions that each wait for a commit,
// so a fleet of agents each sending a few records at a time would be capped
// by per-call costs, not by the work; grouped, a group pays them once. At
// most maxGroupsInFlight groups are consumed at once; what arrives
// meanwhile waits and goes as the next group. A request that arrives when
// no group started in the last minGroupInterval goes at once; otherwise it
// waits, with the others arriving meanwhile, for the rest of the interval
// (less if they fill a group). A request is answered only after its group
// was consumed, with the group's result, so an acknowledgement means its
// records were stored.
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
// result. A request that the agent gives up on (ctx) before its group was
// taken leaves the line; once taken it waits for the group, which holds
// ld, whose memory belongs to the gRPC request until the handler returns.
// When more than maxPendingBytes wait already (the database slow or hung),
// a request is refused at once, and the agent keeps its events and retries.
func (g *groupCommit) consume(ctx context.Context, ld plog.Logs) error {
	req := &commitRequest{ld: ld, size: sizer.LogsSize(ld), done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errShuttingDown
	}
	if g.bytes > 0 && g.bytes+req.size > maxPendingBytes {
		g.mu.Unlock()
		return errBusy
	}
	g.pending = append(g.pending, req)
	g.records += ld.LogRecordCount()
	g.bytes += req.size
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if i := slices.Index(g.pending, req); i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
		g.records -= ld.LogRecordCount()
		g.bytes -= req.size
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
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
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	slots := make(chan struct{}, maxGroupsInFlight)
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
				inFlight.Wait()
				for g.commitNext() {
				}
				return
			}
			last = time.Now()
			slots <- struct{}{}
			group := g.take()
			inFlight.Go(func() {
				g.commit(group)
				<-slots
			})
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
	group := g.take()
	g.commit(group)
	return len(group) > 0
}

// take removes the next group from the pending requests, in arrival order.
func (g *groupCommit) take() []*commitRequest {
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
	return group
}

// commit consumes a group and answers its requests.
func (g *groupCommit) commit(group []*commitRequest) {
	if len(group) == 0 {
		return
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
		return
	}
	for _, r := range group {
		r.err = err
		close(r.done)
	}
}
