package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// burst is a trip seen within the window: the first was emitted at once,
// repeats are counted and summarised when the window ends.
type burst struct {
	start   time.Time
	sink    uint64 // the watcher that reported the first trip
	repeats int64
	last    *event.Event
}

// tripKey identifies identical trips: same name, rule, target and actor.
func tripKey(e *event.Event) string {
	var b strings.Builder
	b.WriteString(string(e.Name))
	b.WriteByte(0)
	b.WriteString(e.Rule)
	b.WriteByte(0)
	if e.File != nil {
		b.WriteString(e.File.Path)
		b.WriteByte(0)
		b.WriteString(e.File.RenameTo)
	}
	b.WriteByte(0)
	if e.Network != nil {
		b.WriteString(strconv.FormatInt(e.Network.DestinationPort, 10))
		b.WriteByte(0)
		b.WriteString(e.Network.SourceAddress)
	}
	b.WriteByte(0)
	if e.Process != nil {
		// The PID is the actor; the executable only when there is no PID.
		// Two watchers overlapping during a reload see one short-lived
		// reader, and the later one may find /proc/PID/exe gone: keyed on
		// the executable too, its copy of the trip was chained twice.
		if e.Process.PID == 0 {
			b.WriteString(e.Process.ExecutablePath)
		}
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(e.Process.PID, 10))
	}
	return b.String()
}

func coalescible(e *event.Event) bool {
	switch e.Type() {
	case event.TypeFile, event.TypeProcess, event.TypeNetwork:
		return e.Count <= 1
	}
	return false
}

// coalescer counts repeats of a trip within the window. It is driven by the
// coalesce stage with the clock, so tests can drive it with any clock.
type coalescer struct {
	window time.Duration
	bursts map[string]*burst
	emit   func(*event.Event)
	// The pipeline's counters.
	coalesced, duplicates, summaries *atomic.Int64
}

// add takes one trip seen at now. The first trip of a burst is emitted at
// once; repeats within the window are counted.
func (c *coalescer) add(e *event.Event, sink uint64, now time.Time) {
	if !coalescible(e) {
		c.emit(e)
		return
	}
	k := tripKey(e)
	if b := c.bursts[k]; b != nil {
		if now.Sub(b.start) < c.window {
			if sink != 0 && b.sink != 0 && sink != b.sink {
				// Another watcher with the same rule: during a reload the
				// old and new watchers overlap and both see one trip.
				c.duplicates.Add(1)
				return
			}
			b.repeats++
			b.last = e
			c.coalesced.Add(1)
			return
		}
		// The window ended and the tick has not come yet: summarise the old
		// burst before this trip opens a new one, or its repeats are lost.
		delete(c.bursts, k)
		c.summarise(b)
	}
	c.bursts[k] = &burst{start: now, sink: sink}
	c.emit(e)
}

// flush summarises the bursts whose window has ended by now, or all of them.
func (c *coalescer) flush(now time.Time, all bool) {
	for k, b := range c.bursts {
		if !all && now.Sub(b.start) < c.window {
			continue
		}
		delete(c.bursts, k)
		c.summarise(b)
	}
}

func (c *coalescer) summarise(b *burst) {
	if b.repeats == 0 {
		return
	}
	sum := *b.last
	sum.Count = b.repeats
	sum.AlertID, sum.Seq, sum.ObservedTime = [16]byte{}, 0, time.Time{}
	c.summaries.Add(1)
	c.emit(&sum)
}

// coalesce passes the first trip of a burst on at once and counts repeats
// within the window; at the window's end one summary carries the count.
func (p *Pipeline) coalesce() {
	defer close(p.ordered)
	c := &coalescer{
		window: p.opts.Window, bursts: map[string]*burst{},
		emit:      func(e *event.Event) { p.ordered <- e },
		coalesced: &p.coalesced, duplicates: &p.duplicates, summaries: &p.summaries,
	}
	// The timer runs only while a burst is open, so an idle agent sleeps.
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	armed := false
	arm := func() {
		if !armed && len(c.bursts) > 0 {
			tick.Reset(max(p.opts.Window/4, 10*time.Millisecond))
			armed = true
		}
	}
	for {
		select {
		case in, ok := <-p.intake:
			if !ok {
				c.flush(time.Now(), true)
				return
			}
			c.add(in.e, in.sink, time.Now())
			arm()
		case now := <-tick.C:
			armed = false
			c.flush(now, false)
			arm()
		}
	}
}

// sequence takes everything queued (up to MaxBatch), plus any recorded
// losses, gives each event its identity, appends the batch to the chain with
// one fsync and queues it for the spool.
func (p *Pipeline) sequence() {
	batch := make([]*event.Event, 0, p.opts.MaxBatch)
	open := true
	for open {
		batch = batch[:0]
		select {
		case e, ok := <-p.ordered:
			if !ok {
				open = false
				break
			}
			batch = append(batch, e)
		drain:
			for len(batch) < p.opts.MaxBatch {
				select {
				case e, ok := <-p.ordered:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, e)
				default:
					break drain
				}
			}
		case <-p.lossCh:
		}
		batch = append(batch, p.takeLosses(time.Now().UTC())...)
		if len(batch) == 0 {
			continue
		}
		if t := p.opts.Trace; t != nil && t.Batched != nil {
			t.Batched(batch, time.Now())
		}
		if err := p.commit(batch); err != nil {
			p.log.Error("audit chain refused an append; stopping the pipeline", "error", err)
			select {
			case p.err <- err:
			default:
			}
			// Keep draining so watchers are not blocked, counting what is lost;
			// the chain is the record, and restart reconciles.
			for e := range p.ordered {
				p.lost("chain_failed", e.Mechanism, 1)
			}
			return
		}
	}
	// Losses recorded while draining.
	if last := p.takeLosses(time.Now().UTC()); len(last) > 0 {
		if err := p.commit(last); err != nil {
			p.log.Error("chaining final loss events", "error", err)
		}
	}
}

func (p *Pipeline) commit(batch []*event.Event) error {
	now := time.Now().UTC()
	valid := batch[:0]
	for _, e := range batch {
		if e.AlertID == [16]byte{} {
			e.AlertID = event.NewAlertID()
		}
		if e.ObservedTime.IsZero() {
			e.ObservedTime = now
		}
		if e.Time.IsZero() {
			e.Time = e.ObservedTime
		}
		e.Seq = p.nextSeq
		// Strings are bounded here, the one place every event passes, so
		// no trip is dropped for what an attacker put in a path or argv.
		e.Bound()
		if err := e.Validate(); err != nil {
			p.invalid.Add(1)
			p.log.Error("watcher produced an invalid event; counted as loss", "error", err,
				"event.name", string(e.Name), event.KeyRule, e.Rule, event.KeyMechanism, e.Mechanism)
			p.lossMu.Lock()
			p.losses[lossKey{event.LossInvalidEvent, e.Mechanism}]++
			p.lossMu.Unlock()
			p.wakeSequencer()
			continue
		}
		p.nextSeq++
		valid = append(valid, e)
	}
	if len(valid) == 0 {
		return nil
	}
	if err := p.opts.Chain.Write(valid); err != nil {
		return fmt.Errorf("appending to the audit chain: %w", err)
	}
	// The spool keeps the events; give it its own slice, batch is reused.
	out := make([]*event.Event, len(valid))
	copy(out, valid)
	// The spool inserts the batch while the chain syncs it and commits it
	// once the sync returned: a trip waits for the slower of the two, not
	// for both in turn, and no reader sees an entry before it is durable.
	durable := make(chan error, 1)
	if err := p.opts.Spool.PutDurable(context.Background(), out, durable); err != nil {
		// Only after Close; the chain has them and start-up reconciles.
		p.log.Error("queueing for the spool", "error", err, "tripwire.seq", out[0].Seq)
	}
	err := p.opts.Chain.Sync()
	if err == nil {
		p.chained.Add(int64(len(out)))
		if t := p.opts.Trace; t != nil && t.Chained != nil {
			t.Chained(out, time.Now())
		}
	}
	durable <- err
	if err != nil {
		return fmt.Errorf("syncing the audit chain: %w", err)
	}
	if p.opts.OnChained != nil {
		p.opts.OnChained(out)
	}
	return nil
}
