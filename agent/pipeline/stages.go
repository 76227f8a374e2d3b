package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
		b.WriteString(e.Process.ExecutablePath)
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

// coalesce passes the first trip of a burst on at once and counts repeats
// within the window; at the window's end one summary carries the count.
func (p *Pipeline) coalesce() {
	defer close(p.ordered)
	bursts := map[string]*burst{}
	// The timer runs only while a burst is open, so an idle agent sleeps.
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	armed := false
	arm := func() {
		if !armed && len(bursts) > 0 {
			tick.Reset(max(p.opts.Window/4, 10*time.Millisecond))
			armed = true
		}
	}
	flush := func(now time.Time, all bool) {
		for k, b := range bursts {
			if !all && now.Sub(b.start) < p.opts.Window {
				continue
			}
			delete(bursts, k)
			if b.repeats == 0 {
				continue
			}
			sum := *b.last
			sum.Count = b.repeats
			sum.AlertID, sum.Seq, sum.ObservedTime = [16]byte{}, 0, time.Time{}
			p.summaries.Add(1)
			p.ordered <- &sum
		}
	}
	for {
		select {
		case in, ok := <-p.intake:
			if !ok {
				flush(time.Now(), true)
				return
			}
			e := in.e
			if !coalescible(e) {
				p.ordered <- e
				continue
			}
			k := tripKey(e)
			now := time.Now()
			if b := bursts[k]; b != nil && now.Sub(b.start) < p.opts.Window {
				if in.sink != 0 && b.sink != 0 && in.sink != b.sink {
					// Another watcher with the same rule: during a reload the
					// old and new watchers overlap and both see one trip.
					p.duplicates.Add(1)
					continue
				}
				b.repeats++
				b.last = e
				p.coalesced.Add(1)
				continue
			}
			bursts[k] = &burst{start: now, sink: in.sink}
			arm()
			p.ordered <- e
		case now := <-tick.C:
			armed = false
			flush(now, false)
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
		if err := e.Validate(); err != nil {
			p.invalid.Add(1)
			p.log.Error("watcher produced an invalid event; counted as loss", "error", err,
				"event.name", string(e.Name), "tripwire.rule.name", e.Rule, "tripwire.watcher.mechanism", e.Mechanism)
			p.lossMu.Lock()
			p.losses[lossKey{ReasonInvalidEvent, e.Mechanism}]++
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
	if err := p.opts.Chain.Append(valid); err != nil {
		return fmt.Errorf("appending to the audit chain: %w", err)
	}
	p.chained.Add(int64(len(valid)))
	// The spool keeps the events; give it its own slice, batch is reused.
	out := make([]*event.Event, len(valid))
	copy(out, valid)
	if err := p.opts.Spool.Put(context.Background(), out); err != nil {
		// Only after Close; the chain has them and start-up reconciles.
		p.log.Error("queueing for the spool", "error", err, "tripwire.seq", out[0].Seq)
	}
	if p.opts.OnChained != nil {
		p.opts.OnChained(out)
	}
	return nil
}
