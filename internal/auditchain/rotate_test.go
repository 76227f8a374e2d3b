package auditchain

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestRotationKeepsTheChain appends past several rotations: the set of kept
// files verifies as one chain ending at the last seq, each rotated file
// verifies alone from the previous file's last entry, files beyond Keep are
// removed, and the oldest kept file's start is what the removed one ended on.
func TestRotationKeepsTheChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{Sync: SyncNone, MaxBytes: 16 << 10, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	for i := 1; i <= n; i++ {
		if err := w.Append([]*event.Event{trip(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rotations := w.Rotations()
	seq, hash := w.Head()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := Files(path)
	if rotations < 4 || len(files) != 4 || files[0] != RotatedPath(path, 3) || files[3] != path {
		t.Fatalf("%d rotations, files %q: want more than Keep rotations and Keep+1 files", rotations, files)
	}
	if _, err := os.Stat(RotatedPath(path, 4)); err == nil {
		t.Error("a file beyond Keep was kept")
	}

	rep, err := VerifySet(path, &Anchor{Seq: seq, Hash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break != nil || rep.LastSeq != n || rep.LastHash != hash || rep.Start.Seq == 0 {
		t.Fatalf("set: %+v", rep)
	}
	// Each file alone, linked to the one before it.
	start := rep.Start
	for _, p := range files {
		r, _, err := VerifyFileFrom(p, &start, nil)
		if err != nil || r.Break != nil {
			t.Fatalf("%s from %d: %+v %v", p, start.Seq, r, err)
		}
		start = Anchor{Seq: r.LastSeq, Hash: r.LastHash}
	}
	// A file checked against the wrong link point is a break.
	if r, _, _ := VerifyFileFrom(files[2], &Anchor{Seq: rep.Start.Seq, Hash: rep.Start.Hash}, nil); r.Break == nil {
		t.Error("a rotated file verified from another file's start")
	}

	// An edit inside a rotated file breaks the set.
	lines := readLines(t, files[1])
	lines[2] = bytes.Replace(lines[2], []byte("/etc/shadow"), []byte("/etc/shadoX"), 1)
	writeLines(t, files[1], lines)
	rep, err = VerifySet(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break == nil || rep.Break.Kind != contract.BreakMismatch {
		t.Errorf("edited rotated file: %+v", rep.Report)
	}
}

// TestRotationCrash: a crash right after the rename leaves no live log (or an
// empty one); the next Open continues the chain from the newest rotated file
// instead of restarting at seq 1, and the entries read across files for
// reconciliation are all there.
func TestRotationCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{Sync: SyncNone, MaxBytes: 8 << 10, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for w.Rotations() < 2 {
		i++
		if err := w.Append([]*event.Event{trip(i)}); err != nil {
			t.Fatal(err)
		}
	}
	seq, hash := w.Head()
	w.Close()
	if err := os.Remove(path); err != nil { // the new, still empty live log
		t.Fatal(err)
	}
	w, err = Open(path, Options{Sync: SyncNone, MaxBytes: 8 << 10, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	if s, h := w.Head(); s != seq || h != hash {
		t.Fatalf("after the crash the head is %d %s, want %d %s", s, h, seq, hash)
	}
	if err := w.Append([]*event.Event{trip(i + 1)}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rep, err := VerifySet(path, nil)
	if err != nil || rep.Break != nil || rep.LastSeq != seq+1 || rep.Start.Seq != 0 {
		t.Fatalf("set after the crash: %+v %v", rep, err)
	}
	var got []uint64
	if err := ReadEntriesSet(path, 3, func(e Entry) error { got = append(got, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != int(seq+1-2) || got[0] != 3 || got[len(got)-1] != seq+1 {
		t.Errorf("entries from seq 3 across files: %d, first %v", len(got), got[:min(3, len(got))])
	}
}
