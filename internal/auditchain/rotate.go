package auditchain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"github.com/tripwire-sec/tripwire/contract"
)

// Rotation: when the log reaches Options.MaxBytes it is renamed PATH.1 (PATH.1
// becomes PATH.2, ..., and PATH.Keep is removed) and a new PATH is started.
// The chain does not restart: the new file's first entry links to the
// previous file's last hash and carries the next seq, so the files read
// oldest first (PATH.Keep ... PATH.1, PATH) are one chain.

// Defaults of a rotating log.
const (
	DefaultMaxBytes = 64 << 20
	DefaultKeep     = 10
)

// RotatedPath is the name of the n-th most recent rotated file of path.
func RotatedPath(path string, n int) string { return path + "." + strconv.Itoa(n) }

// Files lists the log at path and its rotated files that exist, oldest
// first, the live log last. Numbers are probed up to the first run of
// missing ones past the highest found, so a crash mid-rotation (one number
// skipped) loses no file.
func Files(path string) []string {
	var rotated []string
	for n, missing := 1, 0; missing < 3; n++ {
		p := RotatedPath(path, n)
		if _, err := os.Lstat(p); err != nil {
			missing++
			continue
		}
		missing = 0
		rotated = append(rotated, p)
	}
	out := make([]string, 0, len(rotated)+1)
	for i := len(rotated) - 1; i >= 0; i-- {
		out = append(out, rotated[i])
	}
	if _, err := os.Lstat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// rotate closes the full log, shifts the rotated files and opens a new log.
// On error the writer is unusable (sticky error), as after a failed write.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	w.f = nil
	if err := os.Remove(RotatedPath(w.path, w.opts.Keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	for n := w.opts.Keep - 1; n >= 1; n-- {
		if err := os.Rename(RotatedPath(w.path, n), RotatedPath(w.path, n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating audit log: %w", err)
		}
	}
	if err := os.Rename(w.path, RotatedPath(w.path, 1)); err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	f, err := openLog(w.path)
	if err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	w.f, w.size = f, 0
	w.rotations++
	return nil
}

// Rotations is how many times this writer rotated the log.
func (w *Writer) Rotations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rotations
}

// firstEntry reads the first entry of the log at path (ok false if empty).
func firstEntry(path string) (e Entry, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return e, false, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 1<<16).ReadBytes('\n')
	if errors.Is(err, io.EOF) {
		return e, false, nil
	}
	if err != nil {
		return e, false, err
	}
	var raw rawEntry
	if err := parseLine(line[:len(line)-1], &raw); err != nil {
		return e, false, fmt.Errorf("%s: first entry: %w", path, err)
	}
	e, err = raw.entry()
	return e, err == nil, err
}

// ReadEntriesSet is ReadEntries over the log at path and its rotated files,
// in seq order: it starts at the newest file whose first seq is at most
// fromSeq, so a crash's reconciliation reads only what it needs.
func ReadEntriesSet(path string, fromSeq uint64, fn func(Entry) error) error {
	files := Files(path)
	start := 0
	for i := len(files) - 1; i >= 0; i-- {
		e, ok, err := firstEntry(files[i])
		if err != nil {
			return fmt.Errorf("reading audit log: %w", err)
		}
		if ok && e.Seq <= fromSeq {
			start = i
			break
		}
	}
	for _, p := range files[start:] {
		if err := ReadEntries(p, fromSeq, fn); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// SetReport is the outcome of verifying a log with its rotated files.
type SetReport struct {
	Report
	Files []string
	// Start is where the oldest file kept links to: seq 0 and the genesis
	// hash when nothing was rotated away; otherwise the last entry of a file
	// already removed, which only an anchor from elsewhere can confirm.
	Start Anchor
}

// VerifySet verifies the log at path and its rotated files as one chain,
// oldest first. anchor is checked wherever its seq falls.
func VerifySet(path string, anchor *Anchor) (SetReport, error) {
	rep := SetReport{Files: Files(path)}
	if len(rep.Files) == 0 {
		return rep, fmt.Errorf("opening audit log: %w", fs.ErrNotExist)
	}
	start, err := startOf(rep.Files[0])
	if err != nil {
		return rep, err
	}
	rep.Start = start
	var readers []io.Reader
	for _, p := range rep.Files {
		f, err := os.Open(p)
		if err != nil {
			return rep, fmt.Errorf("opening audit log: %w", err)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	rep.Report, err = VerifyFrom(io.MultiReader(readers...), &start, anchor)
	return rep, err
}

// VerifyFileFrom verifies one file, rotated or live. start is the seq and
// hash of the entry before its first (the previous file's last); nil takes
// them from the file's own first entry, which is then not itself proven.
func VerifyFileFrom(path string, start, anchor *Anchor) (Report, Anchor, error) {
	if start == nil {
		s, err := startOf(path)
		if err != nil {
			return Report{}, s, err
		}
		start = &s
	}
	f, err := os.Open(path)
	if err != nil {
		return Report{}, *start, fmt.Errorf("opening audit log: %w", err)
	}
	defer f.Close()
	rep, err := VerifyFrom(f, start, anchor)
	return rep, *start, err
}

// startOf is what the first entry of path links to: genesis for seq 1.
func startOf(path string) (Anchor, error) {
	e, ok, err := firstEntry(path)
	if err != nil {
		// Verification reports a malformed first line; start from genesis.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return Anchor{}, fmt.Errorf("opening audit log: %w", err)
		}
		return Anchor{Hash: contract.GenesisHash}, nil
	}
	if !ok || e.Seq <= 1 {
		return Anchor{Hash: contract.GenesisHash}, nil
	}
	return Anchor{Seq: e.Seq - 1, Hash: e.PrevHash}, nil
}
