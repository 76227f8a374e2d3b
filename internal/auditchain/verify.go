package auditchain

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/tripwire-sec/tripwire/contract"
)

// The kinds of break a verification reports are contract.BreakKind values:
// malformed (a line that is not an entry), mismatch (content no longer
// matches its hash), link (an entry replaced with a rehashed one, so the
// next no longer links to it, or a first entry not linking to genesis), fork
// (a seq seen twice, or the anchor's seq with another hash: the tail was
// rewritten), gap (seqs missing), reordered, truncated (the log ends before
// the anchor's seq).

// Break is the first place a log stops being intact.
type Break struct {
	Kind   contract.BreakKind
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
//
// Blocks of lines are parsed and hashed on every core (contract.CheckChain)
// while this goroutine follows the links in order.
func Verify(r io.Reader, anchor *Anchor) (Report, error) {
	return VerifyFrom(r, nil, anchor)
}

// VerifyFrom is Verify of a log whose first entry follows start (the last
// entry of the rotated file before it); nil means the genesis.
func VerifyFrom(r io.Reader, start, anchor *Anchor) (Report, error) {
	v := verifier{anchor: anchor}
	copy(v.prevHash[:], contract.GenesisHash)
	if start != nil {
		v.prevSeq = start.Seq
		copy(v.prevHash[:], start.Hash)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	blocks, readErr := readBlocks(ctx, r)
	for blk := range contract.CheckChain(ctx, blocks, 0) {
		for i := range blk.Entries {
			if v.brk != nil && v.pending == nil {
				break
			}
			v.link(&blk.Entries[i], blk.seqBad[i])
		}
		if v.brk == nil && blk.torn {
			v.line++
			v.fail(contract.BreakMalformed, v.prevSeq+1, "last line is incomplete (no newline)")
		}
		if v.brk != nil && v.pending == nil {
			return v.report(), nil
		}
		blk.recycle()
	}
	if err := <-readErr; err != nil {
		return v.report(), fmt.Errorf("reading audit log: %w", err)
	}
	v.pending = nil
	if v.brk == nil {
		v.end()
	}
	return v.report(), nil
}

// block is a run of whole lines, parsed and hashed by a CheckChain worker.
type block struct {
	contract.ChainBatch
	buf    []byte // what was read; data is its whole lines
	data   []byte
	torn   bool   // data ends with a line that has no newline (the log's end)
	seqBad []bool // the entry's seq differs from its payload's tripwire.seq
}

const blockSize = 1 << 17

// blocks are recycled: a verification allocates a few, not one per MiB, and
// the collector then rarely interrupts the workers' hashing.
var blockPool = sync.Pool{New: func() any {
	b := &block{buf: make([]byte, blockSize)}
	b.Parse = b.parse
	return b
}}

// recycle returns a block once nothing refers to its lines any more.
func (b *block) recycle() {
	if cap(b.buf) == blockSize {
		b.data, b.torn = nil, false
		blockPool.Put(b)
	}
}

// readBlocks reads r into blocks of whole lines. The error channel yields
// the read error, if any, once blocks is closed.
func readBlocks(ctx context.Context, r io.Reader) (<-chan *block, <-chan error) {
	blocks := make(chan *block, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		defer close(blocks)
		var carry []byte
		for {
			blk := blockPool.Get().(*block)
			if len(carry) > blockSize/2 { // a line longer than the block: grow it
				blk = &block{buf: make([]byte, 2*len(carry))}
				blk.Parse = blk.parse
			}
			// carry may lie in this very buffer (recycled meanwhile): copy
			// moves overlapping bytes correctly.
			buf := blk.buf[:copy(blk.buf[:cap(blk.buf)], carry)]
			n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			if err != nil && !eof {
				readErr <- err
				return
			}
			end := bytes.LastIndexByte(buf, '\n') + 1
			blk.data = buf[:end]
			carry = buf[end:]
			if eof && len(carry) > 0 {
				blk.torn = true
			}
			if end > 0 || blk.torn {
				select {
				case blocks <- blk:
				case <-ctx.Done():
					return
				}
			}
			if eof {
				return
			}
		}
	}()
	return blocks, readErr
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
}

func (v *verifier) fail(kind contract.BreakKind, seq uint64, format string, args ...any) {
	v.brk = &Break{Kind: kind, Seq: seq, Line: v.line, Detail: fmt.Sprintf(format, args...)}
}

// parse splits the block into entries that alias its lines. The torn last
// line, if any, is left for Verify to report.
func (b *block) parse() {
	b.Entries, b.seqBad = b.Entries[:0], b.seqBad[:0]
	for data := b.data; len(data) > 0; {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			break // the torn last line: reported by Verify
		}
		line := data[:j]
		data = data[j+1:]
		var raw rawEntry
		if parseShape(line, &raw) != nil {
			b.Entries = append(b.Entries, contract.ChainEntry{Malformed: true})
			b.seqBad = append(b.seqBad, false)
			continue
		}
		b.Entries = append(b.Entries, contract.ChainEntry{Seq: raw.seq, PrevHash: raw.prevHash, Hash: raw.hash, Payload: raw.payload})
		b.seqBad = append(b.seqBad, payloadSeq(raw.payload) != raw.seq)
	}
}

var seqKey = []byte(`"tripwire.seq":`)

// payloadSeq is the payload's tripwire.seq, 0 when it has none. Attributes
// are in key order, so the key is near the end: it is found from the end, by
// its colon (a key cannot occur inside a JSON string, whose quotes are
// escaped).
func payloadSeq(payload []byte) uint64 {
	i := len(payload)
	for {
		i = lastColon(payload[:i])
		if i < 0 {
			return 0
		}
		if i+1 >= len(seqKey) && bytes.Equal(payload[i+1-len(seqKey):i+1], seqKey) {
			break
		}
	}
	i -= len(seqKey) - 1
	var seq uint64
	digits := 0
	for _, c := range payload[i+len(seqKey):] {
		if c < '0' || c > '9' {
			if c != ',' && c != '}' {
				return 0
			}
			break
		}
		if digits++; seq > (1<<64-1-9)/10 || (digits == 2 && seq == 0) {
			return 0 // overflow, or a leading zero: not how the agent wrote it
		}
		seq = seq*10 + uint64(c-'0')
	}
	return seq
}

// link follows the chain from the previous entry to this one.
func (v *verifier) link(e *contract.ChainEntry, seqBad bool) {
	v.line++
	if v.pending != nil {
		// The entry after a jump in seq tells a deletion from a reordering.
		want := v.prevSeq + 1
		if !e.Malformed && e.Seq == want && bytes.Equal(e.PrevHash, v.prevHash[:]) {
			v.brk = &Break{Kind: contract.BreakReordered, Seq: want, Line: v.line,
				Detail: fmt.Sprintf("seq %d comes after seq %d (line %d)", want, v.pending.seq, v.pendLine)}
		}
		v.pending = nil
		return
	}
	intact := e.HashOK && e.Seq == v.prevSeq+1 && bytes.Equal(e.PrevHash, v.prevHash[:])
	switch {
	case e.Malformed || (!intact && (!isHex(e.PrevHash) || !isHex(e.Hash))):
		v.fail(contract.BreakMalformed, v.prevSeq+1, "line is not an audit entry")
		return
	case !e.HashOK:
		v.fail(contract.BreakMismatch, e.Seq, "content does not match its hash")
		return
	case seqBad:
		v.fail(contract.BreakMismatch, e.Seq, "entry seq differs from the payload's tripwire.seq")
		return
	}
	want := v.prevSeq + 1
	switch {
	case e.Seq == want && bytes.Equal(e.PrevHash, v.prevHash[:]):
		// intact link
	case e.Seq == want && v.prevSeq == 0:
		v.fail(contract.BreakLink, e.Seq, "first entry does not link to the genesis hash")
		return
	case e.Seq == want:
		v.fail(contract.BreakLink, v.prevSeq, "replaced by a rehashed entry: seq %d links to %s, not %s", e.Seq, short(string(e.PrevHash)), short(string(v.prevHash[:])))
		v.brk.Line = v.line - 1
		return
	case e.Seq < want:
		v.fail(contract.BreakFork, e.Seq, "seq %d appears again after seq %d", e.Seq, v.prevSeq)
		return
	default: // e.Seq > want: deleted, unless the missing entries follow (reordered)
		v.fail(contract.BreakGap, want, "seq %d follows seq %d: %d entries missing", e.Seq, v.prevSeq, e.Seq-want)
		v.pending = &rawEntry{seq: e.Seq}
		v.pendLine = v.line
		return
	}
	v.entries++
	v.prevSeq = e.Seq
	copy(v.prevHash[:], e.Hash)
	if v.anchor != nil && e.Seq == v.anchor.Seq {
		if string(e.Hash) != v.anchor.Hash {
			v.fail(contract.BreakFork, e.Seq, "hash %s differs from the anchor's %s: the log was rewritten from here or earlier", short(string(e.Hash)), short(v.anchor.Hash))
			return
		}
		v.anchored = true
	}
}

// end checks the anchor once the log is read.
func (v *verifier) end() {
	if v.anchor != nil && !v.anchored && v.prevSeq < v.anchor.Seq {
		v.brk = &Break{Kind: contract.BreakTruncated, Seq: v.prevSeq + 1,
			Detail: fmt.Sprintf("log ends at seq %d but the anchor says seq %d exists", v.prevSeq, v.anchor.Seq)}
	}
}

// lastColon is bytes.LastIndexByte(b, ':'), eight bytes a step: most of the
// bytes between a payload's end and its seq have no colon.
func lastColon(b []byte) int {
	const ones, highs, colons = 0x0101010101010101, 0x8080808080808080, ':' * 0x0101010101010101
	i := len(b)
	for ; i >= 8; i -= 8 {
		x := binary.LittleEndian.Uint64(b[i-8:i]) ^ colons
		// Non-zero when some byte of x is zero (some byte was a colon);
		// bytes above a zero byte may show up too, so look byte by byte.
		if (x-ones)&^x&highs != 0 {
			for j := i - 1; j >= i-8; j-- {
				if b[j] == ':' {
					return j
				}
			}
		}
	}
	return bytes.LastIndexByte(b[:i], ':')
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
