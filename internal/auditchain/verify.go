package auditchain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

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
// Hashing dominates, and each entry's hash can be checked on its own, so
// blocks of lines are checked on every core while one goroutine follows the
// links in order.
func Verify(r io.Reader, anchor *Anchor) (Report, error) {
	v := verifier{anchor: anchor}
	copy(v.prevHash[:], contract.GenesisHash)
	stop := make(chan struct{})
	defer close(stop)
	blocks, readErr := checkBlocks(r, stop)
	for blk := range blocks {
		<-blk.done
		for i := range blk.results {
			if v.brk != nil && v.pending == nil {
				break
			}
			v.link(&blk.results[i])
		}
		if v.brk == nil && blk.torn {
			v.line++
			v.fail(contract.BreakMalformed, v.prevSeq+1, "last line is incomplete (no newline)")
		}
		if v.brk != nil && v.pending == nil {
			return v.report(), nil
		}
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

// block is a run of whole lines, checked by a worker.
type block struct {
	data    []byte
	torn    bool // data ends with a line that has no newline (the log's end)
	results []checked
	done    chan struct{}
}

const blockSize = 1 << 20

// checkBlocks reads r into blocks of whole lines, hands them to one checking
// goroutine per CPU and returns them in order. The error channel yields the
// read error, if any, once blocks is closed.
func checkBlocks(r io.Reader, stop <-chan struct{}) (<-chan *block, <-chan error) {
	workers := runtime.GOMAXPROCS(0)
	ordered := make(chan *block, 2*workers)
	jobs := make(chan *block, 2*workers)
	readErr := make(chan error, 1)
	for i := 0; i < workers; i++ {
		go func() {
			var c checker
			for blk := range jobs {
				c.block(blk)
				close(blk.done)
			}
		}()
	}
	go func() {
		defer close(readErr)
		defer close(ordered)
		defer close(jobs)
		var carry []byte
		for {
			buf := make([]byte, len(carry), max(blockSize, 2*len(carry)))
			copy(buf, carry)
			n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			if err != nil && !eof {
				readErr <- err
				return
			}
			end := bytes.LastIndexByte(buf, '\n') + 1
			blk := &block{data: buf[:end], done: make(chan struct{})}
			carry = buf[end:]
			if eof && len(carry) > 0 {
				blk.torn = true
			}
			if end > 0 || blk.torn {
				select {
				case jobs <- blk:
				case <-stop:
					return
				}
				select {
				case ordered <- blk:
				case <-stop:
					return
				}
			}
			if eof {
				return
			}
		}
	}()
	return ordered, readErr
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

// checked is one line after the checks that need no other line.
type checked struct {
	raw    rawEntry
	status checkStatus
}

type checkStatus uint8

const (
	checkedOK checkStatus = iota
	checkedMalformed
	checkedHashMismatch
	checkedSeqMismatch
)

// checker checks lines; one per worker.
type checker struct {
	h   hasher
	num []byte
}

func (c *checker) block(blk *block) {
	data := blk.data
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil // the torn last line: reported by Verify
			continue
		}
		blk.results = append(blk.results, c.check(line))
	}
}

func (c *checker) check(line []byte) checked {
	var r checked
	e := &r.raw
	if parseLine(line, e) != nil {
		r.status = checkedMalformed
		return r
	}
	if !c.h.matches(e.prevHash, e.payload, e.hash) {
		r.status = checkedHashMismatch
		return r
	}
	// The seq outside the payload must be the one inside it.
	c.num = append(strconv.AppendUint(append(c.num[:0], `"tripwire.seq":`...), e.seq, 10), ',')
	if !bytes.Contains(e.payload, c.num) && !bytes.HasSuffix(e.payload, append(c.num[:len(c.num)-1], '}')) {
		r.status = checkedSeqMismatch
	}
	return r
}

// link follows the chain from the previous entry to this one.
func (v *verifier) link(c *checked) {
	v.line++
	e := &c.raw
	if v.pending != nil {
		// The entry after a jump in seq tells a deletion from a reordering.
		want := v.prevSeq + 1
		if c.status != checkedMalformed && e.seq == want && bytes.Equal(e.prevHash, v.prevHash[:]) {
			v.brk = &Break{Kind: contract.BreakReordered, Seq: want, Line: v.line,
				Detail: fmt.Sprintf("seq %d comes after seq %d (line %d)", want, v.pending.seq, v.pendLine)}
		}
		v.pending = nil
		return
	}
	switch c.status {
	case checkedMalformed:
		v.fail(contract.BreakMalformed, v.prevSeq+1, "line is not an audit entry")
		return
	case checkedHashMismatch:
		v.fail(contract.BreakMismatch, e.seq, "content does not match its hash")
		return
	case checkedSeqMismatch:
		v.fail(contract.BreakMismatch, e.seq, "entry seq differs from the payload's tripwire.seq")
		return
	}
	want := v.prevSeq + 1
	switch {
	case e.seq == want && bytes.Equal(e.prevHash, v.prevHash[:]):
		// intact link
	case e.seq == want && v.prevSeq == 0:
		v.fail(contract.BreakLink, e.seq, "first entry does not link to the genesis hash")
		return
	case e.seq == want:
		v.fail(contract.BreakLink, v.prevSeq, "replaced by a rehashed entry: seq %d links to %s, not %s", e.seq, short(string(e.prevHash)), short(string(v.prevHash[:])))
		v.brk.Line = v.line - 1
		return
	case e.seq < want:
		v.fail(contract.BreakFork, e.seq, "seq %d appears again after seq %d", e.seq, v.prevSeq)
		return
	default: // e.seq > want: deleted, unless the missing entries follow (reordered)
		v.fail(contract.BreakGap, want, "seq %d follows seq %d: %d entries missing", e.seq, v.prevSeq, e.seq-want)
		v.pending = &rawEntry{seq: e.seq}
		v.pendLine = v.line
		return
	}
	v.entries++
	v.prevSeq = e.seq
	copy(v.prevHash[:], e.hash)
	if v.anchor != nil && e.seq == v.anchor.Seq {
		if string(e.hash) != v.anchor.Hash {
			v.fail(contract.BreakFork, e.seq, "hash %s differs from the anchor's %s: the log was rewritten from here or earlier", short(string(e.hash)), short(v.anchor.Hash))
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

func (v *verifier) report() Report {
	return Report{Entries: v.entries, LastSeq: v.prevSeq, LastHash: string(v.prevHash[:]), Break: v.brk}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
