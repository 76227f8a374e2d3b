// Package auditchain is TripWire's tamper-evident local log: an append-only
// file of JSON lines where each entry's hash covers the previous entry's hash
// and the event's canonical bytes,
//
//	hash = hex(SHA-256(prev_hash ‖ event.Canonical()))
//
// with prev_hash as 64 lowercase hex digits and a genesis prev_hash of 64
// zeros (contract.ChainHash and contract.GenesisHash). Start with [Open] to
// append and [Verify] to check a log.
package auditchain

import (
	"bytes"

	"errors"

	"strconv"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// Entry is one line of the log. Payload is the event's canonical JSON, stored
// verbatim so the verifier hashes the bytes without re-encoding them.
type Entry struct {
	Seq      uint64
	Time     time.Time // the event's time, repeated from the payload for readers
	PrevHash string
	Hash     string
	Payload  []byte
}

// hasher checks entries' hashes without allocating.
type hasher struct{ contract.ChainHasher }

// matches reports whether hash is contract.ChainHash(prevHash, payload).
func (h *hasher) matches(prevHash, payload, hash []byte) bool {
	return bytes.Equal(h.Hex(prevHash, payload), hash)
}

// The fixed line layout. The writer emits exactly this; the parser accepts
// exactly this, so any edit that changes the shape is reported as malformed.
var (
	prefixSeq      = []byte(`{"seq":`)
	prefixTime     = []byte(`,"time":"`)
	prefixPrevHash = []byte(`","prev_hash":"`)
	prefixHash     = []byte(`","hash":"`)
	prefixPayload  = []byte(`","payload":`)
)

// appendLine appends the entry's line, newline included.
func appendLine(dst []byte, e *Entry) []byte {
	dst = append(dst, prefixSeq...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, prefixTime...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, prefixPrevHash...)
	dst = append(dst, e.PrevHash...)
	dst = append(dst, prefixHash...)
	dst = append(dst, e.Hash...)
	dst = append(dst, prefixPayload...)
	dst = append(dst, e.Payload...)
	return append(dst, '}', '\n')
}

var errMalformed = errors.New("malformed entry")

// rawEntry is a parsed line whose fields alias the line: verification needs
// no copies and no time parsing.
type rawEntry struct {
	seq      uint64
	time     []byte
	prevHash []byte
	hash     []byte
	payload  []byte
}

// entry converts to an Entry; Payload still aliases the line.
func (r *rawEntry) entry() (Entry, error) {
	t, err := time.Parse(time.RFC3339Nano, string(r.time))
	if err != nil {
		return Entry{}, errMalformed
	}
	return Entry{Seq: r.seq, Time: t, PrevHash: string(r.prevHash), Hash: string(r.hash), Payload: r.payload}, nil
}

// parseLine parses one line without its newline.
func parseLine(line []byte, e *rawEntry) error {
	if err := parseShape(line, e); err != nil {
		return err
	}
	if !isHex(e.prevHash) || !isHex(e.hash) {
		return errMalformed
	}
	return nil
}

// parseShape is parseLine without the check that the hashes are lowercase
// hex: the verifier makes that check only for an entry that fails its hash
// or link (a matching hash and an intact link are hex already), to tell a
// malformed line from a mismatch.
func parseShape(line []byte, e *rawEntry) error {
	rest, ok := bytes.CutPrefix(line, prefixSeq)
	if !ok {
		return errMalformed
	}
	i := bytes.IndexByte(rest, ',')
	if i <= 0 || i > 20 {
		return errMalformed
	}
	var seq uint64
	for _, c := range rest[:i] {
		if c < '0' || c > '9' || seq > (1<<64-1-9)/10 {
			return errMalformed
		}
		seq = seq*10 + uint64(c-'0')
	}
	if rest[0] == '0' {
		return errMalformed
	}
	e.seq = seq
	if rest, ok = bytes.CutPrefix(rest[i:], prefixTime); !ok {
		return errMalformed
	}
	i = bytes.IndexByte(rest, '"')
	if i <= 0 {
		return errMalformed
	}
	e.time = rest[:i]
	if rest, ok = bytes.CutPrefix(rest[i:], prefixPrevHash); !ok || len(rest) < 64 {
		return errMalformed
	}
	e.prevHash = rest[:64]
	if rest, ok = bytes.CutPrefix(rest[64:], prefixHash); !ok || len(rest) < 64 {
		return errMalformed
	}
	e.hash = rest[:64]
	if rest, ok = bytes.CutPrefix(rest[64:], prefixPayload); !ok || len(rest) < 3 {
		return errMalformed
	}
	// The payload is the rest minus the entry's closing brace.
	if rest[0] != '{' || rest[len(rest)-1] != '}' || rest[len(rest)-2] != '}' {
		return errMalformed
	}
	e.payload = rest[:len(rest)-1]
	return nil
}

var hexTable = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdef") {
		t[c] = true
	}
	return t
}()

func isHex(b []byte) bool {
	ok := true
	for _, c := range b {
		ok = ok && hexTable[c]
	}
	return ok
}
