package tripwireexporter

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// hostChain is one host's chained events in a transaction.
type hostChain struct {
	id      pgtype.UUID
	name    string
	records []record
	claim   *headClaim // the head the host's heartbeat announces
}

// checkChains locks the chain heads of the hosts (in host_id order), loads
// what the walk needs in one round trip, walks each chain and queues the
// results into w.
func (e *tripwireExporter) checkChains(ctx context.Context, tx pgx.Tx, chains map[pgtype.UUID]*hostChain, w *writes) error {
	if len(chains) == 0 {
		return nil
	}
	ids := make([]pgtype.UUID, 0, len(chains))
	for id := range chains {
		ids = append(ids, id)
	}
	// PostgreSQL's uuid order.
	slices.SortFunc(ids, func(a, b pgtype.UUID) int { return bytes.Compare(a.Bytes[:], b.Bytes[:]) })
	var pairHost, claimHost []pgtype.UUID
	var pairSeq, claimSeq []int64
	var prevs []string
	for _, id := range ids {
		for _, r := range chains[id].records {
			pairHost, pairSeq = append(pairHost, id), append(pairSeq, int64(r.ev.Seq))
			prevs = append(prevs, r.ev.PrevHash)
		}
		if c := chains[id].claim; c != nil {
			claimHost, claimSeq = append(claimHost, id), append(claimSeq, c.seq)
		}
	}

	b := &pgx.Batch{}
	b.Queue(`INSERT INTO chain_heads (host_id, seq, hash) SELECT id, 0, $2 FROM unnest($1::uuid[]) AS id
		ON CONFLICT DO NOTHING`, ids, event.GenesisHash)
	heads := b.Queue(`SELECT c.host_id, c.seq, c.hash, now(), h.host_name,
		       coalesce(c.claimed_seq, 0), coalesce(c.claimed_hash, ''), coalesce(c.claimed_at, 'epoch'), c.claim_broken
		FROM chain_heads c
		JOIN hosts h USING (host_id) WHERE c.host_id = ANY($1::uuid[]) ORDER BY c.host_id FOR UPDATE OF c`, ids)
	// The stored entries at an announced head and right after it.
	claimed := b.Queue(`SELECT a.host_id, a.seq, a.hash, a.received_at
		FROM unnest($1::uuid[], $2::bigint[]) AS q(id, s)
		JOIN audit_entries a ON a.host_id = q.id AND a.seq IN (q.s, q.s + 1)`, claimHost, claimSeq)
	// Entries stored beyond the head, waiting for a gap to fill: a range
	// scan of audit_entries_pkey per host, which finds none in steady
	// state. Written as a join, the cached generic plan (planned while the
	// table was small) walked every stored entry of the hosts, and its
	// cost grew with the table: 65 ms a batch after a minute at 15,000
	// events/s, most of PostgreSQL's time. OFFSET 0 keeps the subquery
	// from being flattened into a join again.
	parked := b.Queue(`SELECT c.host_id, a.seq, a.prev_hash, a.hash, a.received_at
		FROM chain_heads c CROSS JOIN LATERAL (
		    SELECT a.seq, a.prev_hash, a.hash, a.received_at FROM audit_entries a
		    WHERE a.host_id = c.host_id AND a.seq > c.seq ORDER BY a.seq OFFSET 0) AS a
		WHERE c.host_id = ANY($1::uuid[]) ORDER BY c.host_id, a.seq`, ids)
	// Only seqs at or below the head can be replays or forks; in steady
	// state there are none and nothing is probed.
	stored := b.Queue(`SELECT a.host_id, a.seq, a.hash
		FROM unnest($1::uuid[], $2::bigint[]) AS q(id, s)
		JOIN chain_heads c ON c.host_id = q.id AND q.s <= c.seq
		JOIN audit_entries a ON a.host_id = q.id AND a.seq = q.s`, pairHost, pairSeq)
	// A range stored before its count was (migration 0004) counts as fully shed.
	losses := b.Queue(`SELECT l.host_id, l.first_seq, l.last_seq, coalesce(l.loss_count, l.last_seq - l.first_seq + 1)
		FROM chain_losses l
		JOIN chain_heads c ON c.host_id = l.host_id AND l.last_seq > c.seq
		WHERE c.host_id = ANY($1::uuid[])`, ids)
	anchors := b.Queue(`SELECT host_id, seq, hash FROM audit_anchors WHERE host_id = ANY($1::uuid[])`, ids)
	forks := b.Queue(`SELECT DISTINCT f.host_id, f.seq, f.hash
		FROM unnest($1::uuid[], $2::bigint[], $3::bpchar[]) AS q(id, s, p)
		JOIN chain_forks f ON f.host_id = q.id AND f.seq = q.s - 1 AND f.hash = q.p`, pairHost, pairSeq, prevs)
	// Under the FOR UPDATE above, the walk tells which events were stored
	// before (replays, whose alert rows exist); the rest go in with COPY.
	w.copy, w.known = true, map[alertKey]bool{}

	states := make(map[pgtype.UUID]*chainState, len(ids))
	state := func(id pgtype.UUID) *chainState {
		s := states[id]
		if s == nil {
			s = &chainState{grace: e.cfg.ChainGapGrace, stored: map[int64]string{}, forkTips: map[forkTip]bool{}}
			states[id] = s
		}
		return s
	}
	var (
		id               pgtype.UUID
		name, prev, hash string
		seq, first, last int64
		count            int64
		now, recv        time.Time
		claimHash        string
		claimAt          time.Time
		claimBroken      bool
	)
	heads.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &hash, &now, &name, &first, &claimHash, &claimAt, &claimBroken}, func() error {
			s := state(id)
			s.head, s.now = chainHead{seq: seq, hash: hash}, now
			s.claimed = headClaim{seq: first, hash: claimHash, at: claimAt, broken: claimBroken}
			s.claim = chains[id].claim
			chains[id].name = name
			return nil
		})
		return err
	})
	claimed.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &hash, &recv}, func() error {
			s := state(id)
			if s.claimSeen == nil {
				s.claimSeen = map[int64]storedAt{}
			}
			s.claimSeen[seq] = storedAt{hash: hash, receivedAt: recv}
			return nil
		})
		return err
	})
	parked.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &prev, &hash, &recv}, func() error {
			s := state(id)
			s.parked = append(s.parked, &chainEntry{seq: seq, prev: prev, hash: hash, receivedAt: recv, stored: true})
			return nil
		})
		return err
	})
	stored.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &hash}, func() error {
			state(id).stored[seq] = hash
			return nil
		})
		return err
	})
	losses.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &first, &last, &count}, func() error {
			s := state(id)
			s.losses = append(s.losses, seqRange{first, last, count})
			return nil
		})
		return err
	})
	anchors.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &hash}, func() error {
			state(id).anchor = chainHead{seq: seq, hash: hash}
			return nil
		})
		return err
	})
	forks.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &seq, &hash}, func() error {
			state(id).forkTips[forkTip{seq, hash}] = true
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("loading audit chains: %w", err)
	}

	for _, id := range ids {
		c, s := chains[id], state(id)
		if s.now.IsZero() {
			return fmt.Errorf("loading audit chains: no head for host %s", uuid.UUID(id.Bytes))
		}
		for _, r := range c.records {
			s.batch = append(s.batch, &chainEntry{
				seq: int64(r.ev.Seq), prev: r.ev.PrevHash, hash: r.ev.Hash, receivedAt: s.now,
				loss: r.ev.Name == event.AgentLoss, ev: r.ev, canon: r.canon, hashed: r.hashed,
			})
		}
		out := walk(s)
		e.queueOutcome(ctx, w, c, s, out)
	}
	return nil
}

func (e *tripwireExporter) queueOutcome(ctx context.Context, w *writes, c *hostChain, s *chainState, out chainOutcome) {
	for _, en := range out.entries {
		w.audit.add(c.id, en)
	}
	for _, en := range out.replays {
		w.known[alertKey{en.ev.AlertID, c.id.Bytes, en.ev.Time.Truncate(time.Microsecond).UnixMicro()}] = true
	}
	for _, en := range out.forks {
		w.forks.add(c.id, en)
	}
	for _, l := range out.losses {
		lw := &w.losses
		lw.hosts, lw.alertIDs = append(lw.hosts, c.id), append(lw.alertIDs, dbUUID(l.entry.ev.AlertID))
		lw.firsts, lw.lasts, lw.counts = append(lw.firsts, l.first), append(lw.lasts, l.last), append(lw.counts, l.count)
	}
	for _, br := range out.breaks {
		var alertID pgtype.UUID
		if br.alert {
			ev := &event.Event{
				Name: event.AuditChainBreak, AlertID: event.NewAlertID(), Severity: event.SeverityCritical,
				Time: s.now, ObservedTime: s.now,
				Audit: &event.AuditBreak{Kind: br.kind, ExpectedSeq: br.expectedSeq, GotSeq: br.gotSeq,
					ExpectedHash: br.expectedHash, GotHash: br.gotHash},
			}
			alertID = dbUUID(ev.AlertID)
			w.alerts.add(c.id, c.name, ev, breakSummary(c.name, br), ev.Canonical())
		}
		bw := &w.breaks
		bw.hosts, bw.kinds, bw.alertIDs = append(bw.hosts, c.id), append(bw.kinds, string(br.kind)), append(bw.alertIDs, alertID)
		bw.expSeqs, bw.gotSeqs = append(bw.expSeqs, br.expectedSeq), append(bw.gotSeqs, br.gotSeq)
		bw.expHashes, bw.gotHashes = append(bw.expHashes, br.expectedHash), append(bw.gotHashes, br.gotHash)
		e.telemetry.ExporterTripwireChainBreaks.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", string(br.kind))))
		log := e.logger.Error
		if !br.alert {
			log = e.logger.Info
		}
		log("audit chain break", zap.String(event.ResourceHostName, c.name), zap.String("kind", string(br.kind)),
			zap.Int64("expected_seq", br.expectedSeq), zap.Int64("got_seq", br.gotSeq))
	}
	if cl := out.claim; cl != nil {
		w.claims.ids = append(w.claims.ids, c.id)
		w.claims.seqs, w.claims.hashes = append(w.claims.seqs, cl.seq), append(w.claims.hashes, cl.hash)
		w.claims.ats, w.claims.broken = append(w.claims.ats, cl.at), append(w.claims.broken, cl.broken)
	}
	if out.moved {
		w.heads.ids = append(w.heads.ids, c.id)
		w.heads.seqs = append(w.heads.seqs, out.head.seq)
		w.heads.hashes = append(w.heads.hashes, out.head.hash)
	}
}

func breakSummary(host string, br chainBreak) string {
	switch br.kind {
	case event.BreakGap:
		return fmt.Sprintf("audit chain gap on %s: seq %d..%d missing", host, br.expectedSeq, br.gotSeq-1)
	case event.BreakMismatch:
		return fmt.Sprintf("audit chain mismatch on %s: entry %d does not hash to its claimed hash", host, br.gotSeq)
	case event.BreakFork:
		return fmt.Sprintf("audit chain fork on %s at seq %d", host, br.gotSeq)
	}
	return fmt.Sprintf("audit chain %s on %s at seq %d", br.kind, host, br.gotSeq)
}
