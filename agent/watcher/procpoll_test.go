package watcher

import (
	"encoding/binary"
	"slices"
	"testing"
	"unicode/utf16"
)

func TestNewProcs(t *testing.T) {
	seen := map[procKey]bool{}
	first := []procEntry{{PID: 1, Start: 10, Comm: "init"}, {PID: 7, Start: 20, Comm: "sh"}}
	if got := newProcs(seen, first); len(got) != 2 {
		t.Fatalf("first listing: %d new, want 2", len(got))
	}
	// PID 7 exec'd nc (same PID, new name), PID 9 is new, PID 1 unchanged.
	second := []procEntry{{PID: 1, Start: 10, Comm: "init"}, {PID: 7, Start: 20, Comm: "nc"}, {PID: 9, Start: 30, Comm: "ls"}}
	var names []string
	for _, p := range newProcs(seen, second) {
		names = append(names, p.Comm)
	}
	if !slices.Equal(names, []string{"nc", "ls"}) {
		t.Errorf("second listing: new %q, want [nc ls]", names)
	}
	// PID 9 reused by a later process with the same name: new again.
	third := []procEntry{{PID: 9, Start: 31, Comm: "ls"}}
	if got := newProcs(seen, third); len(got) != 1 || len(seen) != 1 {
		t.Errorf("reused pid: %d new, %d remembered; want 1 and 1", len(got), len(seen))
	}
}

func procArgs2(argc int32, exe string, pad int, rest string) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(argc))
	b = append(b, exe...)
	b = append(b, make([]byte, 1+pad)...)
	return append(b, rest...)
}

func TestParseProcArgs2(t *testing.T) {
	cases := []struct {
		name     string
		in       []byte
		exe      string
		args     string
		wantFail bool
	}{
		{"argv and env", procArgs2(3, "/usr/bin/nc", 5, "nc\x00-l\x00443\x00PATH=/bin\x00"), "/usr/bin/nc", "nc\x00-l\x00443\x00", false},
		{"no padding", procArgs2(1, "/bin/ls", 0, "ls\x00"), "/bin/ls", "ls\x00", false},
		{"last argument cut", procArgs2(2, "/bin/cat", 2, "cat\x00/etc/pa"), "/bin/cat", "cat\x00/etc/pa", false},
		{"argc beyond the buffer", procArgs2(1000, "/bin/x", 0, "x\x00"), "/bin/x", "", true},
		{"negative argc", procArgs2(-1, "/bin/x", 0, "x\x00"), "/bin/x", "", true},
		{"unterminated path", binary.NativeEndian.AppendUint32(nil, 1), "", "", true},
		{"too short", []byte{1, 0}, "", "", true},
	}
	for _, c := range cases {
		exe, args, err := parseProcArgs2(c.in)
		if (err != nil) != c.wantFail || exe != c.exe || string(args) != c.args {
			t.Errorf("%s: got %q %q %v", c.name, exe, args, err)
		}
	}
}

func TestProcessTableNames(t *testing.T) {
	for in, want := range map[string]string{
		`C:\Windows\System32\cmd.exe`: "cmd", "nc.EXE": "nc", "/usr/bin/nc": "nc", "nc": "nc", `C:\tools\a.b.exe`: "a.b",
	} {
		if got := commOf(in); got != want {
			t.Errorf("commOf(%q) = %q, want %q", in, got, want)
		}
	}
	var exe [260]uint16
	copy(exe[:], utf16.Encode([]rune("pwsh-Ünïcode.exe")))
	if got := utf16Name(exe[:]); got != "pwsh-Ünïcode.exe" {
		t.Errorf("utf16Name = %q", got)
	}
	if got := cString([]byte("launchd\x00\x00junk")); got != "launchd" {
		t.Errorf("cString = %q", got)
	}
}
