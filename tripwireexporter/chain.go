package tripwireexporter

import (
	"sort"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// chainHead is the verified end of a host's chain.
type chainHead struct {
	seq  int64
	hash string
}

// chainEntry is one audit entry: new from this batch (ev set) or already
// stored above the head, waiting for a gap before it (ev nil).
type chainEntry struct {
	seq        int64
	prev, hash string
	receivedAt time.Time
	loss       bool // a tripwire.agent.loss event of this batch (a stored entry has waited: its kind no longer matters)
	stored     bool
	ev         *event.Event // nil for a stored entry
	canon      []byte       // ev.Canonical()
	hashed     string       // ChainHash(prev, canon) if already computed
}

// seqRange is a shed range an agent reported: count events of [first,
// last] were shed (the spool keeps CRITICAL and loss events, so the range
// may hold more seqs than were shed).
type seqRange struct{ first, last, count int64 }

// forkTip is an entry of a reported fork; an entry continues the fork only
// if it is the next seq and links to the tip's hash.
type forkTip struct {
	seq  int64
	hash string
}

// lossRecord is a shed range to remember, with the loss event reporting it.
type lossRecord struct {
	seqRange
	entry *chainEntry
}

// chainBreak is one break found; alert says whether it raises a CRITICAL
// tripwire.audit.chain_break alert (every kind but accounted_gap).
type chainBreak struct {
	kind                  event.BreakKind // stored in chain_breaks.kind and the alert's tripwire.audit.break.kind; never BreakLink: a mislink is a fork here
	expectedSeq, gotSeq   int64
	expectedHash, gotHash string
	alert                 bool
}

// chainState is what the walk of one host's chain needs, loaded under the
// lock on the host's chain_heads row.
type chainState struct {
	head     chainHead
	anchor   chainHead // the last entry retention purged (seq 0: none)
	now      time.Time // database time of the transaction
	grace    time.Duration
	batch    []*chainEntry    // this batch's chained events
	parked   []*chainEntry    // stored entries above the head, by seq
	stored   map[int64]string // hash of stored entries at or below the head, for the batch's seqs
	losses   []seqRange       // shed ranges the agent reported
	forkTips map[forkTip]bool // entries of reported forks

	claim     *headClaim         // the head this batch's heartbeat announces
	claimed   headClaim          // the head announced before (seq 0: none)
	claimSeen map[int64]storedAt // stored entries at the claim's seq and the one after
}

// headClaim is a chain head an agent announced in a heartbeat.
type headClaim struct {
	seq    int64
	hash   string
	at     time.Time // the heartbeat's time (agent clock)
	broken bool      // a break was raised for this claim's episode
}

// storedAt is a stored audit entry's hash and arrival.
type storedAt struct {
	hash       string
	receivedAt time.Time
}

// chainOutcome is what the walk decided.
type chainOutcome struct {
	head    chainHead
	moved   bool
	breaks  []chainBreak
	entries []*chainEntry // new entries for audit_entries
	forks   []*chainEntry // new entries for chain_forks
	replays []*chainEntry // batch entries stored before
	losses  []lossRecord  // shed ranges of this batch's loss events, to remember
	claim   *headClaim    // the announced head to remember, if it changed
}

// walk checks a host's chain. The rules:
//
//   - Every new entry's hash is recomputed; a difference is a mismatch
//     break. The entry then counts with the hash it claims, so the entries
//     after it link on and one rewritten entry gives one alert.
//   - An entry at or below the head is a replay when the stored entry of
//     that seq has the same hash (nothing is stored or raised), a fork when
//     it differs. An entry linking to a reported fork's entry continues
//     that fork and raises nothing more. An entry below the head with no
//     stored entry (one inside a gap already passed) is stored quietly.
//   - An entry at or below the anchor (the last entry retention purged)
//     is a replay of a purged one, its alert purged too: nothing is stored;
//     at the anchor's own seq a hash other than the anchor's is a fork.
//   - Entries above the head are taken in seq order: seq head+1 linking to
//     the head's hash advances the head; linking elsewhere is a fork, after
//     which the head follows the new branch. A missing seq range before an
//     entry is an accounted_gap when the agent's loss reports (reason
//     spool_shed) cover all of it, whenever they arrived; otherwise the
//     entry waits (stored above the head) until the range is filled or
//     covered, or until the oldest waiting entry has waited chain_gap_grace,
//     and then the gap is raised. Either way the head resyncs to the entry
//     after the gap, so one break is one alert.
//   - A loss event is never the entry that declares a gap on arrival: the
//     agent sends loss events ahead of older spooled events, so the seqs
//     before it are usually still on their way.
//   - A shed range counts only if its loss event hashes right and is not a
//     fork, the range lies before the loss event's own seq (an agent cannot
//     have shed what it had not yet written) and its count fits the range;
//     a gap is accounted only if it is no larger than the counts of the
//     ranges it meets. A forged report then hides at most what a real shed
//     would, and only before itself.
func walk(s *chainState) chainOutcome {
	out := chainOutcome{head: s.head}
	if s.forkTips == nil {
		s.forkTips = map[forkTip]bool{}
	}
	raise := func(b chainBreak) {
		b.alert = b.kind.Tampering()
		out.breaks = append(out.breaks, b)
	}

	sort.SliceStable(s.batch, func(i, j int) bool { return s.batch[i].seq < s.batch[j].seq })
	above := make(map[int64]*chainEntry, len(s.parked))
	for _, p := range s.parked {
		above[p.seq] = p
	}
	seen := make(map[int64]string, len(s.batch))
	var ahead []*chainEntry
	for _, b := range s.batch {
		if b.seq < s.anchor.seq || b.seq == s.anchor.seq && b.hash == s.anchor.hash {
			out.replays = append(out.replays, b)
			continue
		}
		known, haveKnown := s.stored[b.seq]
		if b.seq == s.anchor.seq {
			known, haveKnown = s.anchor.hash, true
		}
		if p, parked := above[b.seq]; parked {
			known, haveKnown = p.hash, true
		}
		if haveKnown && known == b.hash {
			// Stored before: so is its alert row.
			out.replays = append(out.replays, b)
			continue
		}
		if h, dup := seen[b.seq]; dup {
			known, haveKnown = h, true
		}
		if haveKnown && known == b.hash {
			continue // twice in this batch: the first copy is stored
		}
		mismatched := false
		got := b.hashed
		if got == "" {
			got = event.ChainHash(b.prev, b.canon)
		}
		if got != b.hash {
			mismatched = true
			raise(chainBreak{kind: event.BreakMismatch, expectedSeq: b.seq, gotSeq: b.seq, expectedHash: got, gotHash: b.hash})
		}
		if r, ok := shedRange(b); ok && !mismatched && !haveKnown {
			s.losses = append(s.losses, r)
			out.losses = append(out.losses, lossRecord{r, b})
		}
		switch {
		case haveKnown:
			if !s.forkTips[forkTip{b.seq - 1, b.prev}] {
				raise(chainBreak{kind: event.BreakFork, expectedSeq: b.seq, gotSeq: b.seq, expectedHash: known, gotHash: b.hash})
			}
			s.forkTips[forkTip{b.seq, b.hash}] = true
			out.forks = append(out.forks, b)
		case b.seq <= s.head.seq:
			seen[b.seq] = b.hash
			out.entries = append(out.entries, b)
		default:
			seen[b.seq] = b.hash
			ahead = append(ahead, b)
		}
	}

	// Candidates above the head: waiting ones and new ones, by seq.
	cands := append(append([]*chainEntry(nil), s.parked...), ahead...)
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].seq < cands[j].seq })
	// overdue[i]: some candidate from i on has waited out the grace, so a
	// gap before candidate i has been open at least that long.
	overdue := make([]bool, len(cands)+1)
	for i := len(cands) - 1; i >= 0; i-- {
		c := cands[i]
		waited := s.now.Sub(c.receivedAt) >= s.grace && (c.stored || !c.loss)
		overdue[i] = overdue[i+1] || waited
	}
	i := 0
	for ; i < len(cands); i++ {
		c := cands[i]
		next := out.head.seq + 1
		switch {
		case c.seq < next:
			// A fork resync moved the head past a waiting entry.
			if !c.stored {
				out.entries = append(out.entries, c)
			}
			continue
		case c.seq == next && c.prev == out.head.hash:
		case c.seq == next:
			if !s.forkTips[forkTip{c.seq - 1, c.prev}] {
				raise(chainBreak{kind: event.BreakFork, expectedSeq: next, gotSeq: c.seq, expectedHash: out.head.hash, gotHash: c.prev})
			}
		case covered(s.losses, next, c.seq-1):
			raise(chainBreak{kind: event.BreakAccountedGap, expectedSeq: next, gotSeq: c.seq, expectedHash: out.head.hash, gotHash: c.prev})
		case overdue[i]:
			raise(chainBreak{kind: event.BreakGap, expectedSeq: next, gotSeq: c.seq, expectedHash: out.head.hash, gotHash: c.prev})
		default:
			goto wait
		}
		out.head = chainHead{seq: c.seq, hash: c.hash}
		out.moved = true
		if !c.stored {
			out.entries = append(out.entries, c)
		}
	}
wait:
	for ; i < len(cands); i++ {
		if !cands[i].stored {
			out.entries = append(out.entries, cands[i])
		}
	}
	judgeClaim(s, &out, raise)
	return out
}

// judgeClaim checks the head a heartbeat announces against what the
// collector knows, after the batch's entries were walked. The agent's head
// is the end of its local log, shipped or not, so it is never behind what
// it announced before, and never behind what the collector stored except
// for a heartbeat built before the last entries were stored (hence the
// grace). A claim behind either is a truncated chain; a claim whose hash is
// not the stored entry's (or the previous claim's, at the same seq) is a
// fork. One episode gives one alert: the claim is remembered as broken
// until a claim is consistent again.
func judgeClaim(s *chainState, out *chainOutcome, raise func(chainBreak)) {
	c := s.claim
	if c == nil || c.seq <= 0 || c.hash == "" {
		return
	}
	prev := s.claimed
	if prev.seq > 0 && !c.at.After(prev.at) {
		return // an older heartbeat, delivered late
	}
	known, haveKnown := "", false
	for _, en := range out.entries {
		if en.seq == c.seq {
			known, haveKnown = en.hash, true
		}
	}
	if st, ok := s.claimSeen[c.seq]; ok && !haveKnown {
		known, haveKnown = st.hash, true
	}
	var b *chainBreak
	switch {
	case prev.seq > 0 && c.seq < prev.seq:
		b = &chainBreak{kind: event.BreakTruncated, expectedSeq: prev.seq, gotSeq: c.seq, expectedHash: prev.hash, gotHash: c.hash}
	case prev.seq > 0 && c.seq == prev.seq && c.hash != prev.hash:
		b = &chainBreak{kind: event.BreakFork, expectedSeq: c.seq, gotSeq: c.seq, expectedHash: prev.hash, gotHash: c.hash}
	case haveKnown && known != c.hash:
		b = &chainBreak{kind: event.BreakFork, expectedSeq: c.seq, gotSeq: c.seq, expectedHash: known, gotHash: c.hash}
	case c.seq < out.head.seq:
		// The entry after the claim was stored longer ago than a heartbeat
		// can take to arrive: the agent no longer has it.
		if next, ok := s.claimSeen[c.seq+1]; ok && s.now.Sub(next.receivedAt) > s.grace {
			b = &chainBreak{kind: event.BreakTruncated, expectedSeq: out.head.seq, gotSeq: c.seq, expectedHash: out.head.hash, gotHash: c.hash}
		}
	}
	next := *c
	switch {
	case b != nil && !prev.broken:
		raise(*b)
		next.broken = true
	case b != nil:
		next.broken = true // the same episode: raised already
	}
	out.claim = &next
}

// shedRange is the shed range a spool_shed loss entry reports, if it is one
// the agent could have shed before writing the entry.
func shedRange(en *chainEntry) (seqRange, bool) {
	if en.ev == nil || en.ev.Name != event.AgentLoss || en.ev.Agent == nil {
		return seqRange{}, false
	}
	a := en.ev.Agent
	r := seqRange{a.LossFirstSeq, a.LossLastSeq, a.LossCount}
	ok := a.LossReason == event.LossSpoolShed && r.first > 0 && r.first <= r.last && r.last < en.seq &&
		r.count > 0 && r.count <= r.last-r.first+1
	return r, ok
}

// covered reports whether the shed ranges cover every seq of [first, last]
// and together say at least that many events were shed.
func covered(ranges []seqRange, first, last int64) bool {
	if first > last {
		return true
	}
	shed := int64(0)
	for _, r := range ranges {
		if r.first <= last && r.last >= first {
			shed += r.count
		}
	}
	if shed < last-first+1 {
		return false
	}
	sorted := append([]seqRange(nil), ranges...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].first < sorted[j].first })
	next := first
	for _, r := range sorted {
		if r.first > next {
			break
		}
		if r.last >= next {
			next = r.last + 1
		}
		if next > last {
			return true
		}
	}
	return false
}
