package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tripwire-sec/tripwire/contract"
)

// AuditEntry is one received link of a host's audit chain.
type AuditEntry struct {
	Seq        int64           `json:"seq"`
	AlertID    string          `json:"alert_id"`
	EventTime  time.Time       `json:"event_time"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
	Payload    json.RawMessage `json:"payload"`
	ReceivedAt time.Time       `json:"received_at"`
}

// AuditPage is a page of a host's audit entries, highest seq first.
type AuditPage struct {
	Host    string       `json:"host"`
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next_cursor,omitempty"`
}

func (s *Store) hostID(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", badRequest("host: required")
	}
	if err := checkText("host", name, maxFilterLen); err != nil {
		return "", err
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT host_id::text FROM hosts WHERE host_name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolving host: %w", err)
	}
	return id, nil
}

// AuditEntries lists a host's chain entries in [from, to), highest seq first,
// before the seq in cursor (0 = from the top).
func (s *Store) AuditEntries(ctx context.Context, host string, from, to time.Time, limit int, beforeSeq int64) (*AuditPage, error) {
	if limit < 1 || limit > MaxLimit {
		return nil, badRequest("limit: must be 1..%d", MaxLimit)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, badRequest("from must be before to")
	}
	id, err := s.hostID(ctx, host)
	if err != nil {
		return nil, err
	}
	w := &where{}
	w.add("host_id = ?::uuid", id)
	if !from.IsZero() {
		w.add("event_time >= ?", from)
	}
	if !to.IsZero() {
		w.add("event_time < ?", to)
	}
	if beforeSeq > 0 {
		w.add("seq < ?", beforeSeq)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, alert_id::text, event_time, prev_hash, hash, payload, received_at
FROM audit_entries`+w.sql()+` ORDER BY seq DESC LIMIT `+w.param(limit+1), w.args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.Seq, &e.AlertID, &e.EventTime, &e.PrevHash, &e.Hash, &e.Payload, &e.ReceivedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	page := &AuditPage{Host: host, Entries: entries}
	if page.Entries == nil {
		page.Entries = []AuditEntry{}
	}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = strconv.FormatInt(page.Entries[limit-1].Seq, 10)
	}
	return page, nil
}

// ChainBreak is a break, either found now by recomputation or recorded by
// the collector in chain_breaks.
type ChainBreak struct {
	Kind         contract.BreakKind `json:"kind"`
	Seq          int64              `json:"seq,omitempty"`
	ExpectedSeq  *int64             `json:"expected_seq,omitempty"`
	GotSeq       *int64             `json:"got_seq,omitempty"`
	ExpectedHash *string            `json:"expected_hash,omitempty"`
	GotHash      *string            `json:"got_hash,omitempty"`
	Detail       string             `json:"detail,omitempty"`
	DetectedAt   *time.Time         `json:"detected_at,omitempty"`
	AlertID      *string            `json:"alert_id,omitempty"`
}

// ChainStatus is the result of re-verifying a host's chain from audit_entries.
type ChainStatus struct {
	Host string `json:"host"`
	// Intact is true when recomputation found no break and the collector
	// recorded none.
	Intact  bool  `json:"intact"`
	Entries int64 `json:"entries"`
	// FirstSeq is the lowest stored seq; VerifiedUpTo the highest seq up to
	// which every link from FirstSeq recomputes (0 when even the first fails).
	FirstSeq     int64        `json:"first_seq"`
	VerifiedUpTo int64        `json:"verified_up_to_seq"`
	HeadSeq      *int64       `json:"head_seq,omitempty"`
	HeadHash     *string      `json:"head_hash,omitempty"`
	Breaks       []ChainBreak `json:"breaks"`
	Truncated    bool         `json:"breaks_truncated,omitempty"`
	Recorded     []ChainBreak `json:"recorded_breaks"`
	// Rehashed is how many entries this call hashed: those after the
	// prefix an earlier call verified.
	Rehashed int64 `json:"rehashed"`
	// Anchor is where the stored chain starts once retention purged its
	// oldest entries: the last purged entry's seq and hash, which the
	// first stored entry must follow and link to.
	Anchor *ChainAnchor `json:"anchor,omitempty"`
}

// ChainAnchor is the last audit entry retention purged from a host's chain.
type ChainAnchor struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	EventTime time.Time `json:"event_time"`
}

// verifiedPrefix is the start of a host's chain a verification found
// intact: entries firstSeq..seq, ending in hash.
type verifiedPrefix struct {
	firstSeq, seq int64
	hash          string
	entries       int64
	at            time.Time
}

// defaultVerifyMaxAge bounds how long a verified prefix is trusted without
// re-hashing: within it, a rewrite of an entry before the prefix's last one
// that keeps the seqs and that last hash is not seen.
const defaultVerifyMaxAge = 10 * time.Minute

// prefixFor returns the verified prefix of host id still worth starting
// from: young enough, and its last entry and entry count unchanged.
func (s *Store) prefixFor(ctx context.Context, id string) (verifiedPrefix, error) {
	s.verifyMu.Lock()
	p, ok := s.verified[id]
	s.verifyMu.Unlock()
	if !ok || time.Since(p.at) >= s.verifyMaxAge {
		return verifiedPrefix{}, nil
	}
	// The last entry is hashed again, the others only counted.
	var prev, hash string
	var payload []byte
	var entries int64
	err := s.pool.QueryRow(ctx, `SELECT l.prev_hash, l.hash, l.payload,
       (SELECT count(*) FROM audit_entries WHERE host_id = $1::uuid AND seq <= $2)
FROM audit_entries l WHERE l.host_id = $1::uuid AND l.seq = $2`, id, p.seq).Scan(&prev, &hash, &payload, &entries)
	if errors.Is(err, pgx.ErrNoRows) {
		return verifiedPrefix{}, nil
	}
	if err != nil {
		return verifiedPrefix{}, fmt.Errorf("checking verified prefix: %w", err)
	}
	if hash != p.hash || entries != p.entries || contract.ChainHash(prev, payload) != hash {
		return verifiedPrefix{}, nil
	}
	return p, nil
}

// hostLock serialises verifications of one host, so that Viewers asking at
// once share one pass over the chain instead of one each.
func (s *Store) hostLock(id string) *sync.Mutex {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	m := s.verifying[id]
	if m == nil {
		m = &sync.Mutex{}
		s.verifying[id] = m
	}
	return m
}

const maxReportedBreaks = 100

// VerifyChain recomputes every hash of a host's stored chain: hash =
// contract.ChainHash(prev_hash, payload) over the stored canonical bytes, each prev_hash equal to the hash
// before it, seqs without gaps, genesis at seq 1 (or, once retention purged
// the oldest entries, the first one following the anchor and linking to its
// hash), and the last entry equal to the collector's chain head. Rows are streamed, so memory does not grow with
// the chain. The intact prefix found is remembered (defaultVerifyMaxAge), and
// the next call hashes only the entries after it.
func (s *Store) VerifyChain(ctx context.Context, host string) (*ChainStatus, error) {
	id, err := s.hostID(ctx, host)
	if err != nil {
		return nil, err
	}
	lock := s.hostLock(id)
	lock.Lock()
	defer lock.Unlock()
	start, err := s.prefixFor(ctx, id)
	if err != nil {
		return nil, err
	}
	var anchor *ChainAnchor
	var a ChainAnchor
	err = s.pool.QueryRow(ctx, `SELECT seq, hash, event_time FROM audit_anchors WHERE host_id = $1::uuid`, id).Scan(&a.Seq, &a.Hash, &a.EventTime)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("reading audit anchor: %w", err)
	default:
		anchor = &a
	}
	// Retention purged the chain up to the anchor: verification starts
	// there, and the first stored entry must follow it.
	anchored := anchor != nil && start.seq < anchor.Seq
	if anchored {
		start = verifiedPrefix{seq: anchor.Seq, hash: anchor.Hash}
	}
	st := &ChainStatus{Host: host, Breaks: []ChainBreak{}, Recorded: []ChainBreak{},
		Entries: start.entries, FirstSeq: start.firstSeq, VerifiedUpTo: start.seq, Anchor: anchor}
	addBreak := func(b ChainBreak) {
		if len(st.Breaks) < maxReportedBreaks {
			st.Breaks = append(st.Breaks, b)
		} else {
			st.Truncated = true
		}
	}
	rows, err := s.pool.Query(ctx,
		`SELECT seq, prev_hash, hash, payload FROM audit_entries WHERE host_id = $1::uuid AND seq > $2 ORDER BY seq`, id, start.seq)
	if err != nil {
		return nil, fmt.Errorf("reading audit entries: %w", err)
	}
	// Rows are hashed on every core (contract.CheckChain, the same check as
	// the agent's own verifier) while this goroutine follows the links.
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches, readErr := readAuditBatches(vctx, rows)
	var (
		lastSeq  = start.seq
		lastHash = []byte(start.hash)
		broken   bool
		intact   = start
	)
	for b := range contract.CheckChain(vctx, batches, 0) {
		for i := range b.Entries {
			e := &b.Entries[i]
			seq := int64(e.Seq)
			st.Entries++
			st.Rehashed++
			ok := true
			if st.Entries == 1 {
				st.FirstSeq = seq
			}
			switch {
			case st.Entries == 1 && !anchored:
				// A chain stored from seq 1 must start at genesis; one stored
				// from later (the collector joined mid-chain) is anchored on
				// its first prev_hash.
				if seq == 1 && string(e.PrevHash) != contract.GenesisHash {
					ok = false
					addBreak(ChainBreak{Kind: contract.BreakLink, Seq: seq, ExpectedHash: ptr(contract.GenesisHash), GotHash: ptr(string(e.PrevHash)),
						Detail: "first entry does not start at genesis"})
				}
			case seq != lastSeq+1:
				ok = false
				addBreak(ChainBreak{Kind: contract.BreakGap, Seq: seq, ExpectedSeq: ptr(lastSeq + 1), GotSeq: ptr(seq),
					Detail: fmt.Sprintf("%d entries missing", seq-lastSeq-1)})
			case !bytes.Equal(e.PrevHash, lastHash):
				ok = false
				addBreak(ChainBreak{Kind: contract.BreakLink, Seq: seq, ExpectedHash: ptr(string(lastHash)), GotHash: ptr(string(e.PrevHash)),
					Detail: "prev_hash does not match the previous entry's hash"})
			}
			// payload holds the exact canonical bytes the agent hashed.
			if !e.HashOK {
				ok = false
				addBreak(ChainBreak{Kind: contract.BreakMismatch, Seq: seq,
					ExpectedHash: ptr(contract.ChainHash(string(e.PrevHash), e.Payload)), GotHash: ptr(string(e.Hash)),
					Detail: "stored hash does not match the recomputed hash"})
			}
			if !ok {
				broken = true
			}
			if !broken {
				st.VerifiedUpTo = seq
				intact = verifiedPrefix{firstSeq: st.FirstSeq, seq: seq, hash: string(e.Hash), entries: st.Entries}
			}
			lastSeq, lastHash = seq, append(lastHash[:0], e.Hash...)
		}
	}
	if err := <-readErr; err != nil {
		return nil, fmt.Errorf("verifying chain: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verifying chain: %w", err)
	}
	lastHashText := string(lastHash)
	if intact.seq > 0 {
		// The prefix's age is that of the pass that hashed from the start,
		// so everything is hashed again at least every verifyMaxAge.
		intact.at = start.at
		if intact.at.IsZero() {
			intact.at = time.Now()
		}
		s.verifyMu.Lock()
		s.verified[id] = intact
		s.verifyMu.Unlock()
	}

	var headSeq int64
	var headHash string
	err = s.pool.QueryRow(ctx, `SELECT seq, hash FROM chain_heads WHERE host_id = $1::uuid`, id).Scan(&headSeq, &headHash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("reading chain head: %w", err)
	default:
		st.HeadSeq, st.HeadHash = &headSeq, &headHash
		if (st.Entries > 0 || anchored) && (headSeq != lastSeq || headHash != lastHashText) {
			broken = true
			addBreak(ChainBreak{Kind: contract.BreakHead, Seq: headSeq, ExpectedSeq: ptr(headSeq), GotSeq: ptr(lastSeq),
				ExpectedHash: ptr(headHash), GotHash: ptr(lastHashText),
				Detail: "the stored entries do not end at the collector's chain head"})
		}
	}

	rows, err = s.pool.Query(ctx, `SELECT kind, expected_seq, got_seq, expected_hash, got_hash, detected_at, alert_id::text
FROM chain_breaks WHERE host_id = $1::uuid ORDER BY detected_at DESC, break_id DESC LIMIT 100`, id)
	if err != nil {
		return nil, fmt.Errorf("reading chain breaks: %w", err)
	}
	st.Recorded, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainBreak, error) {
		var b ChainBreak
		err := r.Scan(&b.Kind, &b.ExpectedSeq, &b.GotSeq, &b.ExpectedHash, &b.GotHash, &b.DetectedAt, &b.AlertID)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading chain breaks: %w", err)
	}
	if st.Recorded == nil {
		st.Recorded = []ChainBreak{}
	}
	recordedTampering := false
	for _, b := range st.Recorded {
		if b.Kind.Tampering() {
			recordedTampering = true
		}
	}
	st.Intact = !broken && !recordedTampering
	return st, nil
}

func ptr[T any](v T) *T { return &v }

// auditBatch is a run of stored entries whose bytes live in one arena.
type auditBatch struct {
	contract.ChainBatch
	arena []byte
}

// Batches of about this many bytes: large enough that handing one to a
// worker costs little, small enough to stay in the CPU's cache.
const auditBatchBytes = 128 << 10

// readAuditBatches streams rows of (seq, prev_hash, hash, payload) into
// batches, copying each row's raw bytes once (pgx reuses its buffer). The
// error channel yields one value, nil or the read error, after batches
// closes.
func readAuditBatches(ctx context.Context, rows pgx.Rows) (<-chan *auditBatch, <-chan error) {
	batches := make(chan *auditBatch, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		defer rows.Close()
		b := &auditBatch{arena: make([]byte, 0, auditBatchBytes)}
		send := func() bool {
			select {
			case batches <- b:
				b = &auditBatch{arena: make([]byte, 0, auditBatchBytes)}
				return true
			case <-ctx.Done():
				return false
			}
		}
		binarySeq := len(rows.FieldDescriptions()) > 0 && rows.FieldDescriptions()[0].Format == pgx.BinaryFormatCode
		for rows.Next() {
			v := rows.RawValues()
			if len(v) != 4 {
				readErr <- fmt.Errorf("audit entry has %d columns, want 4", len(v))
				return
			}
			seq, err := rawSeq(v[0], binarySeq)
			if err != nil {
				readErr <- err
				return
			}
			size := len(v[1]) + len(v[2]) + len(v[3])
			if len(b.arena)+size > cap(b.arena) && len(b.Entries) > 0 {
				if !send() {
					readErr <- ctx.Err()
					return
				}
			}
			if size > cap(b.arena) {
				b.arena = make([]byte, 0, size)
			}
			// The arena never grows past its capacity, so earlier entries'
			// slices stay valid.
			at := len(b.arena)
			b.arena = append(append(append(b.arena, v[1]...), v[2]...), v[3]...)
			p, h := at+len(v[1]), at+len(v[1])+len(v[2])
			b.Entries = append(b.Entries, contract.ChainEntry{Seq: uint64(seq),
				PrevHash: b.arena[at:p:p], Hash: b.arena[p:h:h], Payload: b.arena[h:len(b.arena):len(b.arena)]})
		}
		if err := rows.Err(); err != nil {
			readErr <- err
			return
		}
		if len(b.Entries) > 0 && !send() {
			readErr <- ctx.Err()
			return
		}
		readErr <- nil
	}()
	return batches, readErr
}

// rawSeq decodes a bigint column from its wire bytes.
func rawSeq(v []byte, binaryFormat bool) (int64, error) {
	if binaryFormat {
		if len(v) != 8 {
			return 0, fmt.Errorf("audit entry seq: %d bytes, want 8", len(v))
		}
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	seq, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("audit entry seq: %w", err)
	}
	return seq, nil
}
