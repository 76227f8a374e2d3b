package auditchain

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// BreakKind classifies the first break a verification finds.
type BreakKind string

const (
	Malformed BreakKind = "malformed" // a line that is not an entry
	Modified  BreakKind = "modified"  // an entry's content no longer matches its hash
	Rewritten BreakKind = "rewritten" // an entry was replaced with a rehashed one: the next entry no longer links to it
	Inserted  BreakKind = "inserted"  // an entry whose seq was already seen
	Deleted   BreakKind = "deleted"   // seqs missing between two entries
	Reordered BreakKind = "reordered" // entries out of order
	Truncated BreakKind = "truncated" // the log ends before the anchor's seq
	Forked    BreakKind = "forked"    // the entry at the anchor's seq has another hash: the tail was rewritten
)

// Break is the first place a log stops being intact.
type Break struct {
	Kind   BreakKind
	Seq    uint64 // the seq where the break is (for deletions: the first missing one)
	Line   int64  // 1-based line number; 0 when the break is about the log's end
	Detail string
}

func (b *Break) String() string {
	if b.Line > 0 {
		return fmt.Sprintf("%s at seq %d (line %d): %s", b.Kind, b.Seq, b.Line, b.Detail)
	}
	return fmt.Sprintf("%s at seq %d: %s", b.Kind, b.Seq, b.Detail)
}

// Anchor is a seq and hash known from elsewhere (the collector's stored chain
// head, an earlier verification): without one, a rewritten or truncated tail
// is indistinguishable from a shorter honest log.
type Anchor struct {
	Seq  uint64
	Hash string
}

// ParseAnchor parses "SEQ:HASH".
func ParseAnchor(s string) (*Anchor, error) {
	seqText, hash, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 || len(hash) != 64 || !isHex([]byte(hash)) {
		return nil, fmt.Errorf("anchor %q: want SEQ:HASH with a positive seq and 64 lowercase hex digits", s)
	}
	return &Anchor{Seq: seq, Hash: hash}, nil
}

// Report is the outcome of a verification. Break is nil for an intact log.
type Report struct {
	Entries  int64
	LastSeq  uint64
	LastHash string
	Break    *Break
}

// Verify streams a log and reports its first break. The error is for an
// unreadable log (I/O), not for tampering.
func Verify(r io.Reader, anchor *Anchor) (Report, error) {
	v := verifier{anchor: anchor}
	copy(v.prevHash[:], Genesis)
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte // a line longer than the buffer
	for v.brk == nil || v.pending != nil {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				// A last line without a newline: a torn write or an edit.
				v.line++
				v.fail(Malformed, v.prevSeq+1, "last line is incomplete (no newline)")
				break
			}
			v.entry(line[:len(line)-1])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v.report(), fmt.Errorf("reading audit log: %w", err)
		}
	}
	if v.brk == nil {
		v.end()
	}
	return v.report(), nil
}

// VerifyFile verifies the log at path.
func VerifyFile(path string, anchor *Anchor) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("opening audit log: %w", err)
	}
	defer f.Close()
	return Verify(f, anchor)
}

type verifier struct {
	anchor   *Anchor
	line     int64
	entries  int64
	prevSeq  uint64
	prevHash [64]byte
	anchored bool // the anchor's seq was seen with its hash
	pending  *rawEntry
	pendLine int64
	brk      *Break
	e        rawEntry
	h        hasher
	num      []byte
}

func (v *verifier) fail(kind BreakKind, seq uint64, format string, args ...any) {
	v.brk = &Break{Kind: kind, Seq: seq, Line: v.line, Detail: fmt.Sprintf(format, args...)}
}

func (v *verifier) entry(line []byte) {
	v.line++
	e := &v.e
	if v.pending != nil {
		// The entry after a jump in seq tells a deletion from a reordering.
		want := v.prevSeq + 1
		if parseLine(line, e) == nil && e.seq == want && bytes.Equal(e.prevHash, v.prevHash[:]) {
			v.brk = &Break{Kind: Reordered, Seq: want, Line: v.line,
				Detail: fmt.Sprintf("seq %d comes after seq %d (line %d)", want, v.pending.seq, v.pendLine)}
		}
		v.pending = nil
		return
	}
	if err := parseLine(line, e); err != nil {
		v.fail(Malformed, v.prevSeq+1, "line is not an audit entry")
		return
	}
	if !v.h.matches(e.prevHash, e.payload, e.hash) {
		v.fail(Modified, e.seq, "content does not match its hash")
		return
	}
	// The seq outside the payload must be the one inside it.
	v.num = append(strconv.AppendUint(append(v.num[:0], `"tripwire.seq":`...), e.seq, 10), ',')
	if !bytes.Contains(e.payload, v.num) && !bytes.HasSuffix(e.payload, append(v.num[:len(v.num)-1], '}')) {
		v.fail(Modified, e.seq, "entry seq differs from the payload's tripwire.seq")
		return
	}
	want := v.prevSeq + 1
	switch {
	case e.seq == want && bytes.Equal(e.prevHash, v.prevHash[:]):
		// intact link
	case e.seq == want && v.prevSeq == 0:
		v.fail(Modified, e.seq, "first entry does not link to the genesis hash")
		return
	case e.seq == want:
		v.fail(Rewritten, v.prevSeq, "replaced by a rehashed entry: seq %d links to %s, not %s", e.seq, short(string(e.prevHash)), short(string(v.prevHash[:])))
		v.brk.Line = v.line - 1
		return
	case e.seq < want:
		v.fail(Inserted, e.seq, "seq %d appears again after seq %d", e.seq, v.prevSeq)
		return
	default: // e.Seq > want: deleted, unless the missing entries follow (reordered)
		v.fail(Deleted, want, "seq %d follows seq %d: %d entries missing", e.seq, v.prevSeq, e.seq-want)
		v.pending = &rawEntry{seq: e.seq}
		v.pendLine = v.line
		return
	}
	v.entries++
	v.prevSeq = e.seq
	copy(v.prevHash[:], e.hash)
	if v.anchor != nil && e.seq == v.anchor.Seq {
		if string(e.hash) != v.anchor.Hash {
			v.fail(Forked, e.seq, "hash %s differs from the anchor's %s: the log was rewritten from here or earlier", short(string(e.hash)), short(v.anchor.Hash))
			return
		}
		v.anchored = true
	}
}

// end checks the anchor once the log is read.
func (v *verifier) end() {
	if v.anchor != nil && !v.anchored && v.prevSeq < v.anchor.Seq {
		v.brk = &Break{Kind: Truncated, Seq: v.prevSeq + 1,
			Detail: fmt.Sprintf("log ends at seq %d but the anchor says seq %d exists", v.prevSeq, v.anchor.Seq)}
	}
}

func (v *verifier) report() Report {
	return Report{Entries: v.entries, LastSeq: v.prevSeq, LastHash: string(v.prevHash[:]), Break: v.brk}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
