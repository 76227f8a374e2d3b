// Package pipeline carries trips from the watchers to the spool: it
// coalesces repeated trips, gives each event its alert_id and seq, appends
// it to the audit chain (one fsync for everything that arrived while the
// previous one ran) and hands the batch to the spool, which inserts it
// during that fsync and commits it after. Losses reported by watchers and
// spool sheds become tripwire.agent.loss events that take the same path.
//
// Start with [New], call [Pipeline.Reconcile] once at start-up, give each
// watcher [Pipeline.Sink], and [Pipeline.Close] to drain.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// Options configure a pipeline.
type Options struct {
	Chain     *auditchain.Writer
	ChainPath string // for Reconcile
	Spool     *spool.Spool
	// Window is how long repeats of a trip are counted before one summary
	// event is emitted; 0 means 1 s.
	Window time.Duration
	// Queue bounds each channel between stages; 0 means 8192.
	Queue int
	// TripTimeout is how long Trip blocks when the pipeline is full before it
	// counts the trip as lost; 0 means 250 ms.
	TripTimeout time.Duration
	// MaxBatch bounds one chain append; 0 means 1024.
	MaxBatch int
	// OnChained sees every batch after it is chained and queued for the
	// spool (metrics, last_alert_at). It must not keep the events.
	OnChained func([]*event.Event)
	// Trace, if set, sees events pass the stages of the commit path.
	Trace  *Trace
	Logger *slog.Logger
}

// Trace is told when events pass each stage of the commit path, so a
// benchmark can say where the time between a trip and its spool commit
// goes. Any func may be nil; none may block or keep the events.
type Trace struct {
	// Received: a watcher handed the trip to its sink.
	Received func(e *event.Event, at time.Time)
	// Batched: the sequencer took the events into a batch for the chain.
	Batched func(batch []*event.Event, at time.Time)
	// Chained: the audit log's sync returned; the batch is durable there.
	Chained func(batch []*event.Event, at time.Time)
	// Spooled: a spool transaction holding the events began (its inserts
	// overlap the chain's sync) and committed, after the sync (pass it to
	// spool.Options.OnCommit).
	Spooled func(batch []*event.Event, began, committed time.Time)
}

// Stats are the pipeline's counters.
type Stats struct {
	Trips     int64 // trips received from watchers
	Coalesced int64 // repeats absorbed into summaries
	Summaries int64 // summary events emitted
	Duplicate int64 // one trip reported by two watchers at once (reload overlap), kept once
	Chained   int64 // events appended to the chain
	Dropped   int64 // trips dropped because the pipeline was full (reported as loss)
	Invalid   int64 // events that failed validation (reported as loss)
	Queued    int   // events waiting between stages
}

// Pipeline is safe for concurrent use by any number of watchers.
type Pipeline struct {
	opts Options
	log  *slog.Logger

	intake  chan intake       // watchers → coalescer
	ordered chan *event.Event // coalescer and Emit → sequencer
	lossCh  chan struct{}     // a loss was recorded: wake the sequencer

	sendMu sync.RWMutex // held for reading while sending to intake; Close takes it to close intake
	closed bool

	lossMu sync.Mutex
	losses map[lossKey]int64
	shed   spool.Shed

	trips, coalesced, summaries, duplicates, chained, dropped, invalid atomic.Int64
	sinks                                                              atomic.Uint64

	nextSeq uint64
	err     chan error // fatal errors of the stages
	wg      sync.WaitGroup
	started bool
}

type lossKey struct{ reason, mechanism string }

// New builds a pipeline on an open chain and spool. The first seq is the one
// after the chain's head.
func New(opts Options) (*Pipeline, error) {
	if opts.Chain == nil || opts.Spool == nil {
		return nil, errors.New("pipeline needs a chain and a spool")
	}
	if opts.Window <= 0 {
		opts.Window = time.Second
	}
	if opts.Queue <= 0 {
		opts.Queue = 8192
	}
	if opts.TripTimeout <= 0 {
		opts.TripTimeout = 250 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	head, _ := opts.Chain.Head()
	if through := opts.Spool.SpooledThrough(); through > head {
		return nil, fmt.Errorf("the audit log %s ends at seq %d but the spool holds events through seq %d: "+
			"the audit log was truncated or replaced; keep it for investigation and move the spool aside to start a new chain",
			opts.ChainPath, head, through)
	}
	return &Pipeline{
		opts: opts, log: opts.Logger,
		intake:  make(chan intake, opts.Queue),
		ordered: make(chan *event.Event, opts.Queue),
		lossCh:  make(chan struct{}, 1),
		losses:  map[lossKey]int64{},
		nextSeq: head + 1,
		err:     make(chan error, 1),
	}, nil
}

// Reconcile puts back into the spool the chain entries a crash kept out of
// it: those above the highest seq the spool ever committed. The spool ignores
// a seq it already holds, so nothing is spooled twice. Call it before Start.
func (p *Pipeline) Reconcile(ctx context.Context) (int, error) {
	head, _ := p.opts.Chain.Head()
	from := p.opts.Spool.SpooledThrough() + 1
	if head < from {
		return 0, nil
	}
	n := 0
	batch := make([]*event.Event, 0, 1024)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := p.opts.Spool.Put(ctx, batch); err != nil {
			return err
		}
		n += len(batch)
		batch = make([]*event.Event, 0, 1024)
		return nil
	}
	err := auditchain.ReadEntriesSet(p.opts.ChainPath, from, func(en auditchain.Entry) error {
		e, err := event.ParseCanonical(en.Payload)
		if err != nil {
			return fmt.Errorf("audit entry seq %d: %w", en.Seq, err)
		}
		if e.Seq != en.Seq {
			return fmt.Errorf("audit entry seq %d carries an event with seq %d", en.Seq, e.Seq)
		}
		e.PrevHash, e.Hash = en.PrevHash, en.Hash
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = p.opts.Spool.Flush(ctx)
	}
	if err != nil {
		return n, fmt.Errorf("reconciling the spool with the audit chain: %w", err)
	}
	if n > 0 {
		p.log.Warn("reconciled the spool with the audit chain after an unclean stop",
			"tripwire.reconciled", n, "tripwire.seq.from", from, "tripwire.seq.to", head)
	}
	return n, nil
}

// Start launches the stages.
func (p *Pipeline) Start() {
	p.started = true
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.coalesce() }()
	go func() { defer p.wg.Done(); p.sequence() }()
}

// Err delivers a fatal error of a stage (the chain refused an append): the
// agent should stop, and restart reconciles.
func (p *Pipeline) Err() <-chan error { return p.err }

// Close stops taking trips, emits pending summaries, chains and spools
// everything queued, and waits for the spool to commit it. Stop the watchers
// first.
func (p *Pipeline) Close(ctx context.Context) error {
	p.sendMu.Lock()
	if !p.closed {
		p.closed = true
		close(p.intake)
	}
	p.sendMu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("draining the pipeline: %w", ctx.Err())
	}
	// The last commits may shed; chain those loss events too (they are never
	// shed themselves, so this ends).
	for {
		if err := p.opts.Spool.Flush(ctx); err != nil {
			return fmt.Errorf("draining the pipeline: %w", err)
		}
		losses := p.takeLosses(time.Now().UTC())
		if len(losses) == 0 {
			return nil
		}
		if err := p.commit(losses); err != nil {
			return fmt.Errorf("draining the pipeline: %w", err)
		}
	}
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Trips: p.trips.Load(), Coalesced: p.coalesced.Load(), Summaries: p.summaries.Load(),
		Duplicate: p.duplicates.Load(), Chained: p.chained.Load(), Dropped: p.dropped.Load(), Invalid: p.invalid.Load(),
		Queued: len(p.intake) + len(p.ordered),
	}
}

// Sink returns the watcher.Sink for one watcher, given its Mechanism and
// Missing: it fills them into each event that lacks them. (This package does
// not import agent/watcher, so it builds while watchers are being changed.)
func (p *Pipeline) Sink(mechanism string, missing []string) *Sink {
	missing = append([]string(nil), missing...)
	sort.Strings(missing)
	return &Sink{p: p, mechanism: mechanism, missing: missing, id: p.sinks.Add(1)}
}

// Sink is one watcher's entry into the pipeline; it implements watcher.Sink.
type Sink struct {
	p         *Pipeline
	mechanism string
	missing   []string
	id        uint64 // tells the coalescer which watcher reported a trip
}

// intake is a trip on its way to the coalescer, with the sink it came from.
type intake struct {
	e    *event.Event
	sink uint64 // 0: not from a watcher's sink
}

// Trip implements watcher.Sink.
func (s *Sink) Trip(e *event.Event) {
	if e.Mechanism == "" {
		e.Mechanism = s.mechanism
	}
	if e.Missing == nil && len(s.missing) > 0 {
		e.Missing = s.missing
	}
	s.p.trip(e, s.id)
}

// Lost implements watcher.Sink.
func (s *Sink) Lost(reason string, n int64) { s.p.lost(reason, s.mechanism, n) }

// Trip takes one trip for coalescing. It blocks up to TripTimeout when the
// pipeline is full, then counts the trip as lost.
func (p *Pipeline) Trip(e *event.Event) { p.trip(e, 0) }

func (p *Pipeline) trip(e *event.Event, sink uint64) {
	p.trips.Add(1)
	if t := p.opts.Trace; t != nil && t.Received != nil {
		t.Received(e, time.Now())
	}
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.closed {
		p.lost(event.LossPipelineFull, e.Mechanism, 1)
		p.dropped.Add(1)
		return
	}
	in := intake{e: e, sink: sink}
	select {
	case p.intake <- in:
		return
	default:
	}
	t := time.NewTimer(p.opts.TripTimeout)
	defer t.Stop()
	select {
	case p.intake <- in:
	case <-t.C:
		p.dropped.Add(1)
		p.lost(event.LossPipelineFull, e.Mechanism, 1)
	}
}

// Emit chains an agent event (start, certificate expiry) without coalescing.
// It blocks while the pipeline is full.
func (p *Pipeline) Emit(e *event.Event) {
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.closed {
		p.log.Warn("event emitted after the pipeline closed; dropped", "event.name", string(e.Name))
		return
	}
	// Through intake, so it is ordered after trips already queued.
	p.intake <- intake{e: e}
}

// Lost records n events lost outside the pipeline (used by the agent for
// mechanisms without a sink).
func (p *Pipeline) Lost(reason, mechanism string, n int64) { p.lost(reason, mechanism, n) }

func (p *Pipeline) lost(reason, mechanism string, n int64) {
	if n <= 0 {
		return
	}
	p.lossMu.Lock()
	p.losses[lossKey{reason, mechanism}] += n
	p.lossMu.Unlock()
	p.wakeSequencer()
}

// Shed records events the spool shed; pass it as spool.Options.OnShed.
func (p *Pipeline) Shed(sh spool.Shed) {
	p.lossMu.Lock()
	if p.shed.Count == 0 || sh.FirstSeq < p.shed.FirstSeq {
		p.shed.FirstSeq = sh.FirstSeq
	}
	p.shed.LastSeq = max(p.shed.LastSeq, sh.LastSeq)
	p.shed.Count += sh.Count
	p.lossMu.Unlock()
	p.wakeSequencer()
}

func (p *Pipeline) wakeSequencer() {
	select {
	case p.lossCh <- struct{}{}:
	default:
	}
}

// takeLosses turns the recorded losses into loss events.
func (p *Pipeline) takeLosses(now time.Time) []*event.Event {
	p.lossMu.Lock()
	defer p.lossMu.Unlock()
	var out []*event.Event
	keys := make([]lossKey, 0, len(p.losses))
	for k := range p.losses {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].reason < keys[j].reason || keys[i].reason == keys[j].reason && keys[i].mechanism < keys[j].mechanism
	})
	for _, k := range keys {
		out = append(out, &event.Event{
			Name: event.AgentLoss, Severity: event.SeverityWarn, Time: now, Mechanism: k.mechanism,
			Agent: &event.Agent{LossCount: p.losses[k], LossReason: k.reason},
		})
		delete(p.losses, k)
	}
	if p.shed.Count > 0 {
		out = append(out, &event.Event{
			Name: event.AgentLoss, Severity: event.SeverityWarn, Time: now,
			Agent: &event.Agent{LossCount: p.shed.Count, LossReason: event.LossSpoolShed,
				LossFirstSeq: int64(p.shed.FirstSeq), LossLastSeq: int64(p.shed.LastSeq)},
		})
		p.shed = spool.Shed{}
	}
	return out
}
