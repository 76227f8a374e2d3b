package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func builtTrip() *Event {
	now := time.Now()
	return &Event{Name: FileAccess, AlertID: NewAlertID(), Seq: 1, Severity: SeverityCritical, Rule: "decoy",
		Time: now, ObservedTime: now, File: &File{Path: "/srv/decoy"}, Process: &Process{PID: 42, ExecutablePath: "/usr/bin/cat"}}
}

// TestBoundKeepsTripsWithHostileStrings: non-UTF-8 and over-long paths,
// command lines, ancestry and names become valid attributes, cut at a UTF-8
// boundary and flagged, where Validate alone rejects them.
func TestBoundKeepsTripsWithHostileStrings(t *testing.T) {
	deep := "/tmp" + strings.Repeat("/"+strings.Repeat("\xff\xfe", 100), 10) + "/cat" // 2,000 bytes; 8,000 escaped
	cases := []struct {
		name    string
		set     func(*Event)
		wantCut []string
	}{
		{"non-UTF-8 executable path over the limit once escaped", func(e *Event) { e.Process.ExecutablePath = deep }, []string{"process.executable.path"}},
		{"non-UTF-8 file path within the limit", func(e *Event) { e.File.Path = "/srv/\xffdecoy" }, nil},
		{"over-long UTF-8 command line", func(e *Event) { e.Process.CommandLine = "cat " + strings.Repeat("é", 40000) }, []string{"process.command_line"}},
		{"ancestry", func(e *Event) { e.Process.Ancestry = strings.Repeat("1:"+deep+" <- ", 10) }, []string{"tripwire.process.ancestry"}},
		{"user name and rename target", func(e *Event) {
			e.Process.UserName = strings.Repeat("\x80", 300)
			e.File.RenameTo = strings.Repeat("漢", 2000)
		}, []string{KeyProcessUserName, "tripwire.file.rename_to"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := builtTrip()
			c.set(e)
			if err := e.Validate(); err == nil {
				t.Fatal("the hostile event validates without Bound: the case tests nothing")
			}
			e.Bound()
			if err := e.Validate(); err != nil {
				t.Fatalf("after Bound: %v", err)
			}
			if !reflect.DeepEqual(e.Truncated, c.wantCut) {
				t.Errorf("truncated %v, want %v", e.Truncated, c.wantCut)
			}
			e.each(func(f *field, v value) {
				if f.kind == kindString && strings.HasSuffix(v.s, `\`) || strings.HasSuffix(v.s, `\x`) {
					t.Errorf("%s ends inside an escape: %q", f.key, v.s[max(0, len(v.s)-8):])
				}
			})
			// The flag survives the canonical encoding the chain hashes.
			back, err := ParseCanonical(e.Canonical())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Truncated, e.Truncated) && len(e.Truncated) > 0 {
				t.Errorf("canonical round trip: truncated %v, want %v", back.Truncated, e.Truncated)
			}
		})
	}
	// What was kept is the start of the escaped value.
	e := builtTrip()
	e.Process.ExecutablePath = deep
	e.Bound()
	if want := escapeInvalid(deep); !strings.HasPrefix(want, e.Process.ExecutablePath) || len(e.Process.ExecutablePath) < maxPath-3 {
		t.Errorf("kept %d bytes, not a prefix of the escaped path cut near %d", len(e.Process.ExecutablePath), maxPath)
	}
}

// TestBoundLeavesValidEventsAlone: an event within the limits is unchanged.
func TestBoundLeavesValidEventsAlone(t *testing.T) {
	e := builtTrip()
	e.Process.CommandLine = "cat /srv/decoy"
	before := string(e.Canonical())
	e.Bound()
	if string(e.Canonical()) != before || e.Truncated != nil {
		t.Errorf("Bound changed a valid event: %s", e.Canonical())
	}
}

// FuzzBound: whatever bytes a watcher puts in a string attribute, the event
// validates after Bound.
func FuzzBound(f *testing.F) {
	f.Add("/srv/\xff", 3000, "\xc3", 1)
	f.Add("\\x", 5000, "é", 30000)
	f.Fuzz(func(t *testing.T, piece string, n int, tail string, m int) {
		n, m = n%9000, m%70000
		if n < 0 || m < 0 {
			return
		}
		long := strings.Repeat(piece, n/max(1, len(piece))+1) + tail
		e := builtTrip()
		e.File.Path, e.Process.ExecutablePath, e.Process.UserName = long, long, long
		e.Process.CommandLine = strings.Repeat(tail, m/max(1, len(tail))+1) + piece
		e.Process.Ancestry = e.Process.CommandLine
		e.Bound()
		if err := e.Validate(); err != nil {
			if errors.Is(err, ErrMissingField) {
				return // an empty path: not Bound's concern
			}
			t.Fatalf("after Bound: %v", err)
		}
		e.each(func(f *field, v value) {
			if f.kind == kindString && !utf8.ValidString(v.s) {
				t.Fatalf("%s is not UTF-8", f.key)
			}
		})
	})
}
