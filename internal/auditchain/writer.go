package auditchain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// Sync says when the writer makes appended entries durable.
type Sync int

const (
	// SyncBatch fsyncs once per Append call: a batch is durable when Append
	// returns. The default.
	SyncBatch Sync = iota
	// SyncNone leaves durability to the OS (tests and benchmarks only).
	SyncNone
)

// Options configure a Writer.
type Options struct {
	Sync Sync
	// MaxBytes rotates the log once it reaches this size; 0 never rotates.
	MaxBytes int64
	// Keep is how many rotated files are kept; 0 means DefaultKeep.
	Keep int
}

// Writer appends events to a log. It is safe for concurrent use, though the
// agent has one writer goroutine.
type Writer struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	size      int64
	rotations int
	opts      Options
	seq       uint64 // head of what was written
	hash      string
	durable   uint64 // head of what was synced: Head
	durHash   string
	tornTail  int64
	buf       []byte
	err       error // sticky: after a failed write the head is unknown
}

// Open opens or creates the log at path (mode 0600, O_APPEND, never through
// a symlink: see safefile.OpenPrivate) and reads its
// head from the last entry. A torn last line (a crash mid-write, never made
// durable, so never acknowledged) is cut off and its size reported by
// TornTail; anything else wrong with the last line is an error, since
// appending after it would bury the damage.
//
// An empty log continues the chain of its newest rotated file, if any: a
// crash between the rotation's rename and the first append must not restart
// the chain at seq 1.
func Open(path string, opts Options) (*Writer, error) {
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	f, err := openLog(path)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	w := &Writer{f: f, path: path, opts: opts, hash: contract.GenesisHash}
	if err := w.readHead(); err != nil {
		f.Close()
		return nil, err
	}
	if w.seq == 0 {
		if err := w.readRotatedHead(); err != nil {
			f.Close()
			return nil, err
		}
	}
	// What Open finds was there before: count it as durable.
	w.durable, w.durHash = w.seq, w.hash
	return w, nil
}

func openLog(path string) (*os.File, error) {
	return safefile.OpenPrivate(path, os.O_RDWR|os.O_APPEND)
}

// readRotatedHead takes the head from the newest rotated file.
func (w *Writer) readRotatedHead() error {
	files := Files(w.path)
	for i := len(files) - 1; i >= 0; i-- {
		if files[i] == w.path {
			continue
		}
		f, err := os.Open(files[i])
		if err != nil {
			return fmt.Errorf("reading rotated audit log: %w", err)
		}
		fi, err := f.Stat()
		if err == nil {
			var line []byte
			if line, _, err = lastLine(f, fi.Size()); err == nil && line != nil {
				var e rawEntry
				if err = parseLine(line, &e); err == nil {
					w.seq, w.hash = e.seq, string(e.hash)
				}
			}
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("reading rotated audit log %s head: %w", files[i], err)
		}
		return nil
	}
	return nil
}

func (w *Writer) readHead() error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	line, end, err := lastLine(w.f, fi.Size())
	if err != nil {
		return fmt.Errorf("reading audit log head: %w", err)
	}
	w.size = end
	if end < fi.Size() {
		if err := w.f.Truncate(end); err != nil {
			return fmt.Errorf("cutting torn audit entry: %w", err)
		}
		w.tornTail = fi.Size() - end
	}
	if line == nil {
		return nil
	}
	var e rawEntry
	if err := parseLine(line, &e); err != nil {
		return fmt.Errorf("reading audit log head: last entry: %w", err)
	}
	w.seq, w.hash = e.seq, string(e.hash)
	return nil
}

// lastLine returns the last complete line (without newline) and the offset
// just past its newline. Bytes after the last newline are a torn write.
func lastLine(f *os.File, size int64) ([]byte, int64, error) {
	const chunk = 64 << 10
	var tail []byte
	for off := size; off > 0; {
		n := int64(chunk)
		if n > off {
			n = off
		}
		off -= n
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		tail = append(b, tail...)
		last := bytes.LastIndexByte(tail, '\n')
		if last < 0 {
			continue
		}
		end := off + int64(last) + 1
		prev := bytes.LastIndexByte(tail[:last], '\n')
		if prev >= 0 || off == 0 {
			return tail[prev+1 : last], end, nil
		}
	}
	return nil, 0, nil
}

// TornTail is the number of bytes of a torn last entry cut off at Open.
func (w *Writer) TornTail() int64 { return w.tornTail }

// Head returns the last durable seq and hash (0 and contract.GenesisHash
// for an empty log): entries written but not yet synced are not in it.
func (w *Writer) Head() (uint64, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durable, w.durHash
}

// Append is Write then Sync: the events are durable when it returns.
func (w *Writer) Append(events []*event.Event) error {
	if err := w.Write(events); err != nil {
		return err
	}
	return w.Sync()
}

// Write chains events in order: an event without a seq gets the next one,
// an event with a seq must carry exactly the next one. It sets PrevHash and
// Hash on each and writes all entries with one write(2), but does not make
// them durable: Sync does, for everything written before it, so a caller
// can overlap the sync with work that must not be visible before it (the
// spool's transaction). On error nothing may be assumed about the file and
// the writer refuses further writes; reopen it.
func (w *Writer) Write(events []*event.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	seq, hash := w.seq, w.hash
	buf := w.buf[:0]
	var canon []byte
	for _, e := range events {
		seq++
		if e.Seq == 0 {
			e.Seq = seq
		} else if e.Seq != seq {
			return fmt.Errorf("appending to audit log: event has seq %d, next is %d", e.Seq, seq)
		}
		canon = e.AppendCanonical(canon[:0])
		e.PrevHash = hash
		e.Hash = contract.ChainHash(hash, canon)
		hash = e.Hash
		buf = appendLine(buf, &Entry{Seq: seq, Time: e.Time, PrevHash: e.PrevHash, Hash: e.Hash, Payload: canon})
	}
	w.buf = buf
	if _, err := w.f.Write(buf); err != nil {
		w.err = fmt.Errorf("writing audit log: %w", err)
		return w.err
	}
	w.seq, w.hash = seq, hash
	w.size += int64(len(buf))
	return nil
}

// Sync makes everything written durable per the policy and moves Head to
// it, then rotates a full log.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.durable == w.seq {
		return nil
	}
	if w.opts.Sync == SyncBatch {
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("syncing audit log: %w", err)
			return w.err
		}
	}
	w.durable, w.durHash = w.seq, w.hash
	if w.opts.MaxBytes > 0 && w.size >= w.opts.MaxBytes {
		// What was written is durable in the old file; the next write
		// starts the new.
		if err := w.rotate(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// Close syncs and closes the log.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := errors.Join(w.f.Sync(), w.f.Close())
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing audit log: %w", err)
	}
	return nil
}
