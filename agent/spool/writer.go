package spool

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// maxTxEvents bounds one transaction, so a backlog is written in pieces that
// keep Delete and Oldest waiting only briefly.
const maxTxEvents = 4096

// writer is the only goroutine that inserts: it takes everything queued, up
// to maxTxEvents, and commits it in one transaction.
func (s *Spool) writer() {
	defer close(s.done)
	var reqs []request
	for {
		reqs = reqs[:0]
		closing := false
		n := 0
		select {
		case r := <-s.queue:
			reqs, n = append(reqs, r), len(r.events)
		case <-s.closed:
			closing = true
		}
	drain:
		for n < maxTxEvents {
			select {
			case r := <-s.queue:
				reqs, n = append(reqs, r), n+len(r.events)
			default:
				break drain
			}
		}
		err := s.commitWithRetry(&pending{reqs: reqs}, closing)
		for _, r := range reqs {
			if r.ack != nil {
				r.ack <- err
			}
		}
		if closing && len(s.queue) == 0 {
			return
		}
	}
}

// pending is what one transaction commits: the events of its requests, the
// part of them the audit chain made durable once waited for.
type pending struct {
	reqs   []request
	events []*event.Event
	waited bool
	ok     int // how many of events, from the first, are durable
}

func (p *pending) batch() []*event.Event {
	if p.events == nil {
		for _, r := range p.reqs {
			p.events = append(p.events, r.events...)
		}
	}
	return p.events
}

// durable waits for the audit chain to sync each request's events (called
// after they are inserted, so the inserts overlap the sync) and returns how
// many of the batch may be committed: all, or those before the first request
// whose sync failed. It waits once; a retried transaction reuses the answer.
func (p *pending) durable() int {
	if !p.waited {
		p.waited = true
		p.ok = 0
		for _, r := range p.reqs {
			if r.durable != nil {
				if err := <-r.durable; err != nil {
					break
				}
			}
			p.ok += len(r.events)
		}
	}
	return p.ok
}

// commitWithRetry retries a failed transaction (a full disk, a locked file)
// with backoff: the events are in the audit chain already, so holding them
// and pushing back on the pipeline is better than dropping them. When closing
// it gives up after a few tries; start-up reconciliation restores them from
// the chain.
func (s *Spool) commitWithRetry(p *pending, closing bool) error {
	batch := p.batch()
	if len(batch) == 0 {
		return nil
	}
	bo := &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.2,
		Multiplier: 2, MaxInterval: 5 * time.Second}
	bo.Reset()
	for attempt := 1; ; attempt++ {
		err := s.commitBatch(batch, p.durable)
		if err == nil {
			if p.ok < len(batch) {
				err = fmt.Errorf("%d events from seq %d not spooled: the audit chain did not sync them (start-up reconciles the spool from what it kept)",
					len(batch)-p.ok, batch[p.ok].Seq)
				s.log.Error("writing spool", "error", err)
			}
			return err
		}
		s.log.Error("writing spool; retrying", "error", err, "attempt", attempt,
			"tripwire.seq", batch[0].Seq)
		if closing && attempt >= 3 {
			return err
		}
		select {
		case <-time.After(bo.NextBackOff()):
		case <-s.closed:
			if attempt >= 3 {
				return err
			}
		}
	}
}

// commitBatch inserts batch in one transaction, sheds what the limits
// require and, just before committing, calls durable (if not nil): only the
// first durable() events are committed.
func (s *Spool) commitBatch(batch []*event.Event, durable func() int) error {
	ctx := context.Background()
	began := time.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning spool transaction: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO events
		(seq, alert_id, severity, name, observed, prev_hash, hash, size, canonical)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("preparing spool insert: %w", err)
	}
	defer ins.Close()
	var added, bytes int64
	var top uint64
	buf := make([]byte, 0, 1024)
	for _, e := range batch {
		buf = e.AppendCanonical(buf[:0])
		size := int64(len(buf) + len(e.PrevHash) + len(e.Hash) + 36)
		res, err := ins.ExecContext(ctx, int64(e.Seq), e.AlertID.String(), int64(e.Severity), string(e.Name),
			e.ObservedTime.UnixNano(), e.PrevHash, e.Hash, size, buf)
		if err != nil {
			return fmt.Errorf("inserting seq %d: %w", e.Seq, err)
		}
		// A seq already present (replayed after a crash) is ignored: each
		// chain entry is spooled once.
		if n, _ := res.RowsAffected(); n == 1 {
			added++
			bytes += size
		}
		top = max(top, e.Seq)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = max(value, ?) WHERE key = 'spooled_through'`, int64(top)); err != nil {
		return fmt.Errorf("advancing spooled_through: %w", err)
	}
	s.mu.Lock()
	depth, total := s.stats.Depth+added, s.stats.Bytes+bytes
	s.mu.Unlock()
	shed, depth, total, over, err := s.shed(ctx, tx, depth, total)
	if err != nil {
		return err
	}
	// Everything but the commit is done: what is left once the chain's
	// sync returns is the commit alone.
	if durable != nil {
		if n := durable(); n < len(batch) {
			// The chain failed part-way: commit only what it made durable.
			if err := tx.Rollback(); err != nil {
				return fmt.Errorf("rolling back spool transaction: %w", err)
			}
			if n == 0 {
				return nil
			}
			return s.commitBatch(batch[:n], nil)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing spool: %w", err)
	}

	s.mu.Lock()
	s.stats.Depth, s.stats.Bytes = depth, total
	s.stats.Commits++
	s.stats.SpooledThrough = max(s.stats.SpooledThrough, top)
	s.stats.ShedInfo += shed.Info
	s.stats.ShedWarn += shed.Warn
	wasOver := s.stats.OverLimit
	s.stats.OverLimit = over
	s.mu.Unlock()
	if over && !wasOver {
		// Growing is the lesser harm: CRITICAL events are never shed.
		s.log.Warn("spool over its limits with only CRITICAL and loss events left; growing instead of shedding",
			"tripwire.spool.depth", depth, "tripwire.spool.bytes", total,
			"tripwire.spool.max_events", s.opts.MaxEvents, "tripwire.spool.max_bytes", s.opts.MaxBytes)
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(batch, began, time.Now())
	}
	select {
	case s.commit <- struct{}{}:
	default:
	}
	s.wrote()
	if shed.Count > 0 {
		s.log.Warn("spool full: shed events", "tripwire.loss.count", shed.Count,
			"tripwire.loss.first_seq", shed.FirstSeq, "tripwire.loss.last_seq", shed.LastSeq)
		if s.opts.OnShed != nil {
			s.opts.OnShed(shed)
		}
	}
	return nil
}

// shed deletes the oldest INFO, then the oldest WARN events until the spool is
// back under 95% of each limit (the slack keeps one shed from being followed
// by another on every commit). Loss events and CRITICAL events are kept.
func (s *Spool) shed(ctx context.Context, tx *sql.Tx, depth, total int64) (Shed, int64, int64, bool, error) {
	var shed Shed
	over := func(frac float64) bool {
		return (s.opts.MaxEvents > 0 && float64(depth) > frac*float64(s.opts.MaxEvents)) ||
			(s.opts.MaxBytes > 0 && float64(total) > frac*float64(s.opts.MaxBytes))
	}
	if !over(1) {
		return shed, depth, total, false, nil
	}
	for _, sev := range []event.Severity{event.SeverityInfo, event.SeverityWarn} {
		for over(0.95) {
			rows, err := tx.QueryContext(ctx, `DELETE FROM events WHERE seq IN (
				SELECT seq FROM events WHERE severity = ? AND name <> 'tripwire.agent.loss' ORDER BY seq LIMIT ?)
				RETURNING seq, size`, int64(sev), s.toShed(depth, total))
			if err != nil {
				return shed, 0, 0, false, fmt.Errorf("shedding: %w", err)
			}
			n := 0
			for rows.Next() {
				var seq, size int64
				if err := rows.Scan(&seq, &size); err != nil {
					rows.Close()
					return shed, 0, 0, false, fmt.Errorf("shedding: %w", err)
				}
				n++
				depth--
				total -= size
				shed.Count++
				if sev == event.SeverityInfo {
					shed.Info++
				} else {
					shed.Warn++
				}
				if shed.FirstSeq == 0 || uint64(seq) < shed.FirstSeq {
					shed.FirstSeq = uint64(seq)
				}
				shed.LastSeq = max(shed.LastSeq, uint64(seq))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return shed, 0, 0, false, fmt.Errorf("shedding: %w", err)
			}
			if n == 0 {
				break
			}
		}
	}
	return shed, depth, total, over(1), nil
}

// toShed estimates how many more events must go to get under 95% of the
// limits, at most 256 per statement.
func (s *Spool) toShed(depth, total int64) int64 {
	need := int64(1)
	if s.opts.MaxEvents > 0 {
		need = max(need, depth-int64(0.95*float64(s.opts.MaxEvents)))
	}
	if s.opts.MaxBytes > 0 && depth > 0 {
		excess := total - int64(0.95*float64(s.opts.MaxBytes))
		need = max(need, excess/(total/depth+1)+1)
	}
	return min(need, 256)
}
