package tripwireexporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// auditCutoff is the time before which audit entries expire: the start of
// the month of the oldest alert retention keeps, so an entry never goes
// before its alert (whose payload it may hold, migration 0018), whether
// that month is in daily partitions or, in a database from before
// partitions were daily, a monthly one. Entries of a month's dropped days
// stay until the month is past.
func auditCutoff(now time.Time, retention time.Duration) time.Time {
	c := now.Add(-retention).UTC()
	return time.Date(c.Year(), c.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// anchor is where a host's stored chain starts after a purge: the seq and
// hash of the last entry removed (seq 0 and the genesis hash when nothing
// was).
type anchor struct {
	seq  int64
	hash string
}

// purgeAudit removes, for each host, the audit entries older than cutoff
// that lie in the verified prefix of its chain, and records the last one
// removed as the host's anchor, from which every later verification starts.
// The prefix is verified again here, hash by hash and link by link from the
// previous anchor: an entry that does not verify (a mismatch, a fork, an
// unaccounted gap) and everything after it is kept as evidence, past
// retention. It returns how many entries it removed.
func (e *tripwireExporter) purgeAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	rows, err := e.pool.Query(ctx, `SELECT c.host_id, h.host_name, c.seq, coalesce(an.seq, 0), coalesce(an.hash, $2)
		FROM chain_heads c JOIN hosts h USING (host_id) LEFT JOIN audit_anchors an USING (host_id)
		WHERE EXISTS (SELECT 1 FROM audit_entries a WHERE a.host_id = c.host_id AND a.event_time < $1
		                AND a.seq > coalesce(an.seq, 0) AND a.seq <= c.seq)
		ORDER BY c.host_id`, cutoff, event.GenesisHash)
	if err != nil {
		return 0, fmt.Errorf("finding expired audit entries: %w", err)
	}
	type hostHead struct {
		id   pgtype.UUID
		name string
		head int64
		from anchor
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hostHead, error) {
		var h hostHead
		err := r.Scan(&h.id, &h.name, &h.head, &h.from.seq, &h.from.hash)
		return h, err
	})
	if err != nil {
		return 0, fmt.Errorf("finding expired audit entries: %w", err)
	}
	var purged int64
	for _, h := range hosts {
		n, err := e.purgeHostAudit(ctx, h.id, h.name, h.head, h.from, cutoff)
		purged += n
		if err != nil {
			return purged, err
		}
	}
	return purged, nil
}

func (e *tripwireExporter) purgeHostAudit(ctx context.Context, id pgtype.UUID, name string, head int64, from anchor, cutoff time.Time) (int64, error) {
	// The purge ends before the first entry retention keeps, and at the
	// head: entries above it wait for a gap and are not verified yet.
	var young pgtype.Int8
	if err := e.pool.QueryRow(ctx, `SELECT min(seq) FROM audit_entries WHERE host_id = $1 AND seq > $2 AND event_time >= $3`,
		id, from.seq, cutoff).Scan(&young); err != nil {
		return 0, fmt.Errorf("purging audit entries of %s: %w", name, err)
	}
	last := head
	if young.Valid && young.Int64-1 < last {
		last = young.Int64 - 1
	}
	if last <= from.seq {
		return 0, nil
	}
	// Gaps the collector accounted for (the agent reported the events shed)
	// are crossed; any other gap ends the verified prefix.
	rows, err := e.pool.Query(ctx, `SELECT expected_seq, got_seq FROM chain_breaks WHERE host_id = $1 AND kind = $2`,
		id, string(event.BreakAccountedGap))
	if err != nil {
		return 0, fmt.Errorf("purging audit entries of %s: %w", name, err)
	}
	accounted := map[[2]int64]bool{}
	var exp, got int64
	if _, err := pgx.ForEachRow(rows, []any{&exp, &got}, func() error {
		accounted[[2]int64{exp, got}] = true
		return nil
	}); err != nil {
		return 0, fmt.Errorf("purging audit entries of %s: %w", name, err)
	}

	to, at, why, err := e.verifyPrefix(ctx, id, from, last, accounted)
	if err != nil {
		return 0, fmt.Errorf("purging audit entries of %s: %w", name, err)
	}
	if why != "" {
		e.logger.Warn("audit entries kept past retention: the stored chain does not verify",
			zap.String(event.ResourceHostName, name), zap.String("why", why))
	}
	if to.seq <= from.seq {
		return 0, nil
	}
	var n int64
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		// The chain check of this host waits; an anchor moved meanwhile (a
		// purge by another collector replica) leaves this one undone.
		var cur anchor
		err := tx.QueryRow(ctx, `SELECT coalesce(an.seq, 0) FROM chain_heads c LEFT JOIN audit_anchors an USING (host_id)
			WHERE c.host_id = $1 FOR UPDATE OF c`, id).Scan(&cur.seq)
		if err != nil {
			return err
		}
		if cur.seq != from.seq {
			return nil
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_entries WHERE host_id = $1 AND seq <= $2`, id, to.seq)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `INSERT INTO audit_anchors (host_id, seq, hash, event_time) VALUES ($1, $2, $3, $4)
			ON CONFLICT (host_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash,
			    event_time = EXCLUDED.event_time, anchored_at = now()`, id, to.seq, to.hash, at)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purging audit entries of %s: %w", name, err)
	}
	return n, nil
}

// errChainEnds ends the walk of a prefix at its first entry that fails.
var errChainEnds = errors.New("chain does not verify")

// verifyPrefix walks the stored entries (from.seq, last] from the anchor
// and returns the last one that verifies, with its event time, and why the
// next one does not ("" when all did).
func (e *tripwireExporter) verifyPrefix(ctx context.Context, id pgtype.UUID, from anchor, last int64, accounted map[[2]int64]bool) (anchor, time.Time, string, error) {
	rows, err := e.pool.Query(ctx, `SELECT seq, prev_hash, hash, payload, event_time FROM audit_entries
		WHERE host_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`, id, from.seq, last)
	if err != nil {
		return from, time.Time{}, "", err
	}
	var (
		h          contract.ChainHasher
		ok         = from
		okAt       time.Time
		why        string
		seq        int64
		prev, hash []byte
		payload    []byte
		at         time.Time
		first      = true
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &prev, &hash, &payload, &at}, func() error {
		switch {
		case first && from.seq == 0 && seq > 1:
			// Stored from mid-chain (the collector joined late): anchored
			// on its first entry's prev_hash, as the plugin's verify is.
		case seq != ok.seq+1 && !accounted[[2]int64{ok.seq + 1, seq}]:
			why = fmt.Sprintf("seq %d follows %d", seq, ok.seq)
		case seq == ok.seq+1 && string(prev) != ok.hash:
			why = fmt.Sprintf("seq %d: prev_hash is not the hash before it", seq)
		}
		if why == "" && !bytes.Equal(h.Hex(prev, payload), hash) {
			why = fmt.Sprintf("seq %d: hash does not match the recomputed hash", seq)
		}
		if why != "" {
			return errChainEnds
		}
		first = false
		ok, okAt = anchor{seq: seq, hash: string(hash)}, at
		return nil
	})
	if err != nil && !errors.Is(err, errChainEnds) {
		return from, time.Time{}, "", err
	}
	return ok, okAt, why, nil
}
