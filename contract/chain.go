package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// GenesisHash is the prev_hash of the first entry of every audit chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ChainHash is the audit chain's link: hex(SHA-256(prevHash ‖ canonical)),
// where canonical is the event's canonical bytes (internal/event.Canonical,
// stored verbatim in audit_entries.payload).
func ChainHash(prevHash string, canonical []byte) string {
	var h ChainHasher
	return string(h.Hex([]byte(prevHash), canonical))
}

// ChainHasher computes ChainHash without allocating, for verifiers that
// walk long chains. The zero value is ready to use; it is not safe for
// concurrent use.
type ChainHasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

// Hex returns ChainHash(prevHash, canonical) as hex digits in a buffer that
// the next call overwrites.
func (c *ChainHasher) Hex(prevHash, canonical []byte) []byte {
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.h.Write(prevHash)
	c.h.Write(canonical)
	c.h.Sum(c.sum[:0])
	hex.Encode(c.hex[:], c.sum[:])
	return c.hex[:]
}

// BreakKind names a break in an audit chain, wherever it is found: by the
// agent's local verifier (internal/auditchain), by the exporter's chain
// check (chain_breaks.kind, tripwire.audit.break.kind) or by the plugin's
// re-verification.
type BreakKind string

const (
	// BreakMismatch: an entry's hash is not ChainHash(prev_hash, payload).
	BreakMismatch BreakKind = "mismatch"
	// BreakLink: an entry's prev_hash is not the hash of the entry before it
	// (or not GenesisHash at seq 1): the entry before was replaced.
	BreakLink BreakKind = "link"
	// BreakGap: seqs are missing before an entry.
	BreakGap BreakKind = "gap"
	// BreakAccountedGap: seqs are missing, all reported shed by the agent
	// (reason LossSpoolShed). Not tampering: no alert.
	BreakAccountedGap BreakKind = "accounted_gap"
	// BreakFork: a second, different entry for a seq already seen, or one
	// linking to a hash that is not the head.
	BreakFork BreakKind = "fork"
	// BreakReordered: entries out of seq order.
	BreakReordered BreakKind = "reordered"
	// BreakTruncated: the chain ends before a seq known to exist.
	BreakTruncated BreakKind = "truncated"
	// BreakMalformed: a stored entry that cannot be read as one.
	BreakMalformed BreakKind = "malformed"
	// BreakHead: the stored entries do not end at the collector's chain head.
	BreakHead BreakKind = "head"
)

// BreakKinds lists every break kind.
func BreakKinds() []BreakKind {
	return []BreakKind{BreakMismatch, BreakLink, BreakGap, BreakAccountedGap, BreakFork,
		BreakReordered, BreakTruncated, BreakMalformed, BreakHead}
}

// Tampering reports whether a break of this kind is evidence of tampering
// (every kind but BreakAccountedGap).
func (k BreakKind) Tampering() bool { return k != BreakAccountedGap }
