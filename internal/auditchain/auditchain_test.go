package auditchain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
)

func trip(i int) *event.Event {
	t := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return &event.Event{
		Name: event.FileAccess, AlertID: event.NewAlertID(), Severity: event.SeverityCritical,
		Rule: "shadow", Time: t, ObservedTime: t.Add(time.Microsecond), Mechanism: "fanotify",
		Process: &event.Process{PID: int64(1000 + i), PPID: 1, ExecutablePath: "/usr/bin/cat",
			CommandLine: fmt.Sprintf("cat /etc/shadow #%d", i), UserName: "root", UserID: "0"},
		File: &event.File{Path: "/etc/shadow"},
	}
}

// writeLog appends n events in batches and returns the path.
func writeLog(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*event.Event, 0, 256)
	for i := 1; i <= n; i++ {
		batch = append(batch, trip(i))
		if len(batch) == cap(batch) || i == n {
			if err := w.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rehash recomputes an entry's hash after its payload was edited, as an
// attacker who knows the scheme would.
func rehash(t *testing.T, line []byte) []byte {
	t.Helper()
	var raw rawEntry
	if err := parseLine(bytes.TrimSuffix(line, []byte("\n")), &raw); err != nil {
		t.Fatal(err)
	}
	e, err := raw.entry()
	if err != nil {
		t.Fatal(err)
	}
	e.Payload = append([]byte(nil), e.Payload...)
	e.Hash = contract.ChainHash(e.PrevHash, e.Payload)
	return appendLine(nil, &e)
}

func TestAppendAndVerifyIntact(t *testing.T) {
	path := writeLog(t, 1000)
	rep, err := VerifyFile(path, nil)
	if err != nil || rep.Break != nil {
		t.Fatalf("intact log: report %+v, break %v, err %v", rep, rep.Break, err)
	}
	if rep.Entries != 1000 || rep.LastSeq != 1000 {
		t.Fatalf("entries %d last seq %d, want 1000", rep.Entries, rep.LastSeq)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	// Reopening continues the chain.
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seq, hash := w.Head(); seq != 1000 || hash != rep.LastHash {
		t.Fatalf("head after reopen: %d %s, want 1000 %s", seq, hash, rep.LastHash)
	}
	e := trip(1001)
	if err := w.Append([]*event.Event{e}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if e.Seq != 1001 || e.PrevHash != rep.LastHash || e.Hash != contract.ChainHash(e.PrevHash, e.Canonical()) {
		t.Fatalf("appended event not chained: seq %d prev %s", e.Seq, e.PrevHash)
	}
	rep, err = VerifyFile(path, &Anchor{Seq: 1001, Hash: e.Hash})
	if err != nil || rep.Break != nil {
		t.Fatalf("after reopen: %v %v", rep.Break, err)
	}
}

func TestTamperDetected(t *testing.T) {
	const n = 50
	tests := []struct {
		name   string
		tamper func(t *testing.T, lines [][]byte) [][]byte
		anchor func(lines [][]byte) string
		want   contract.BreakKind
		seq    uint64
	}{
		{"modified payload", func(t *testing.T, l [][]byte) [][]byte {
			l[19] = bytes.Replace(l[19], []byte("/etc/shadow"), []byte("/etc/hosts!"), 1)
			return l
		}, nil, contract.BreakMismatch, 20},
		{"modified seq field", func(t *testing.T, l [][]byte) [][]byte {
			l[9] = bytes.Replace(l[9], []byte(`{"seq":10,`), []byte(`{"seq":11,`), 1)
			return l
		}, nil, contract.BreakMismatch, 11},
		{"rewritten with recomputed hash", func(t *testing.T, l [][]byte) [][]byte {
			l[29] = rehash(t, bytes.Replace(l[29], []byte("root"), []byte("eve!"), 1))
			return l
		}, nil, contract.BreakLink, 30},
		{"inserted entry", func(t *testing.T, l [][]byte) [][]byte {
			return append(l[:25], append([][]byte{l[24]}, l[25:]...)...)
		}, nil, contract.BreakFork, 25},
		{"deleted entry", func(t *testing.T, l [][]byte) [][]byte {
			return append(l[:40], l[41:]...)
		}, nil, contract.BreakGap, 41},
		{"reordered entries", func(t *testing.T, l [][]byte) [][]byte {
			l[14], l[15] = l[15], l[14]
			return l
		}, nil, contract.BreakReordered, 15},
		{"truncated against anchor", func(t *testing.T, l [][]byte) [][]byte {
			return l[:45]
		}, anchorAt(n), contract.BreakTruncated, 46},
		{"tail rewritten against anchor", func(t *testing.T, l [][]byte) [][]byte {
			// Drop the last 5 entries and append 5 forged ones that chain correctly.
			l = l[:45]
			path := filepath.Join(t.TempDir(), "forged.log")
			writeLines(t, path, l)
			w, err := Open(path, Options{Sync: SyncNone})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				e := trip(1000 + i)
				if err := w.Append([]*event.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			return readLines(t, path)
		}, anchorAt(n), contract.BreakFork, n},
		{"first entry cut", func(t *testing.T, l [][]byte) [][]byte { return l[1:] }, nil, contract.BreakGap, 1},
		{"garbage line", func(t *testing.T, l [][]byte) [][]byte {
			l[4] = []byte("hello\n")
			return l
		}, nil, contract.BreakMalformed, 5},
		{"torn last line", func(t *testing.T, l [][]byte) [][]byte {
			l[n-1] = l[n-1][:20]
			return l
		}, nil, contract.BreakMalformed, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeLog(t, n)
			lines := readLines(t, path)
			var anchor *Anchor
			if tt.anchor != nil {
				a, err := ParseAnchor(tt.anchor(lines))
				if err != nil {
					t.Fatal(err)
				}
				anchor = a
			}
			writeLines(t, path, tt.tamper(t, lines))
			rep, err := VerifyFile(path, anchor)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Break == nil {
				t.Fatalf("tampering not detected (%d entries verified)", rep.Entries)
			}
			if rep.Break.Kind != tt.want || rep.Break.Seq != tt.seq {
				t.Fatalf("got %v, want %s at seq %d", rep.Break, tt.want, tt.seq)
			}
		})
	}
}

func anchorAt(seq int) func([][]byte) string {
	return func(lines [][]byte) string {
		var e rawEntry
		if err := parseLine(bytes.TrimSuffix(lines[seq-1], []byte("\n")), &e); err != nil {
			panic(err)
		}
		return fmt.Sprintf("%d:%s", e.seq, e.hash)
	}
}

func TestOpenCutsTornTail(t *testing.T) {
	path := writeLog(t, 10)
	lines := readLines(t, path)
	writeLines(t, path, append(lines, []byte(`{"seq":11,"time":"2026`)))
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.TornTail() == 0 {
		t.Fatal("torn tail not reported")
	}
	if seq, _ := w.Head(); seq != 10 {
		t.Fatalf("head seq %d, want 10", seq)
	}
	if err := w.Append([]*event.Event{trip(11)}); err != nil {
		t.Fatal(err)
	}
	if rep, _ := VerifyFile(path, nil); rep.Break != nil || rep.LastSeq != 11 {
		t.Fatalf("after repair: %v, last %d", rep.Break, rep.LastSeq)
	}
}

func TestOpenRefusesDamagedHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, []byte("not an entry\n"), 0o600)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "last entry") {
		t.Fatalf("want an error about the last entry, got %v", err)
	}
}

func TestAppendRejectsWrongSeq(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "a.log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	e := trip(1)
	e.Seq = 7
	if err := w.Append([]*event.Event{e}); err == nil {
		t.Fatal("seq 7 as first entry accepted")
	}
}

func TestReadEntries(t *testing.T) {
	path := writeLog(t, 20)
	var seqs []uint64
	err := ReadEntries(path, 15, func(e Entry) error {
		ev, err := event.ParseCanonical(e.Payload)
		if err != nil {
			return err
		}
		if ev.Seq != e.Seq {
			return fmt.Errorf("payload seq %d, entry %d", ev.Seq, e.Seq)
		}
		seqs = append(seqs, e.Seq)
		return nil
	})
	if err != nil || len(seqs) != 6 || seqs[0] != 15 {
		t.Fatalf("seqs %v err %v", seqs, err)
	}
}

// TestMillionEntries verifies an untouched 1,000,000-entry log (the issue's
// acceptance size); skipped with -short.
func TestMillionEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 entries: not in -short")
	}
	path := writeLog(t, 1_000_000)
	rep, err := VerifyFile(path, nil)
	if err != nil || rep.Break != nil || rep.Entries != 1_000_000 {
		t.Fatalf("entries %d break %v err %v", rep.Entries, rep.Break, err)
	}
}

func TestParseAnchor(t *testing.T) {
	for _, bad := range []string{"", "12", "x:" + contract.GenesisHash, "0:" + contract.GenesisHash, "5:abc", "5:" + strings.ToUpper(contract.GenesisHash[:63]) + "A"} {
		if _, err := ParseAnchor(bad); err == nil {
			t.Errorf("ParseAnchor(%q) accepted", bad)
		}
	}
	if a, err := ParseAnchor("5:" + contract.GenesisHash); err != nil || a.Seq != 5 {
		t.Fatalf("valid anchor: %v %v", a, err)
	}
}

// Write chains at once but Head moves only with Sync: a caller that reports
// the head (the heartbeat) never names an entry a power loss could undo.
// Two writes are covered by one sync, and a rotation waits for the sync.
func TestWriteThenSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{MaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, b := trip(1), trip(2)
	if err := w.Write([]*event.Event{a}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]*event.Event{b}); err != nil {
		t.Fatal(err)
	}
	if a.Seq != 1 || b.Seq != 2 || b.PrevHash != a.Hash {
		t.Fatalf("written: seq %d, %d; second links to %q, first is %q", a.Seq, b.Seq, b.PrevHash, a.Hash)
	}
	if seq, hash := w.Head(); seq != 0 || hash != contract.GenesisHash {
		t.Fatalf("head before the sync: %d %q", seq, hash)
	}
	if w.Rotations() != 0 {
		t.Fatal("rotated before the sync")
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if seq, hash := w.Head(); seq != 2 || hash != b.Hash {
		t.Fatalf("head after the sync: %d %q, want 2 %q", seq, hash, b.Hash)
	}
	if w.Rotations() != 1 {
		t.Fatalf("%d rotations after a sync past MaxBytes, want 1", w.Rotations())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifySet(path, nil)
	if err != nil || rep.Entries != 2 || rep.Break != nil {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
