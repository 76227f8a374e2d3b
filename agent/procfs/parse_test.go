package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Stat
	}{
		{"stat-init", Stat{PID: 1, Comm: "process_api", State: 'S', PPID: 0, StartTime: 22}},
		// A command name may contain ") (": fields are counted from the last ')'.
		{"stat-paren-comm", Stat{PID: 4242, Comm: "a) (b) c", State: 'R', PPID: 17, StartTime: 987654}},
	} {
		got, err := ParseStat(fixture(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.file, got, tc.want)
		}
	}
	for _, bad := range []string{"", "12", "12 (x", "x (y) S 1 2", "12 (x) S 1 2 3", string(fixture(t, "stat-truncated")),
		strings.Replace(string(fixture(t, "stat-paren-comm")), " 987654 ", " -5 ", 1)} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	got, err := ParseStatus(fixture(t, "status-cat"))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Name: "cp", PPID: 30770}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	got, err = ParseStatus([]byte("Name:\tx\nPPid:\t3\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != [4]int{1000, 1001, 1002, 1003} || got.GID != [4]int{5, 6, 7, 8} || got.PPID != 3 {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{string(fixture(t, "status-no-uid")), "", "Name:\tx\nPPid:\t3\nUid:\t1\t2\nGid:\t1\t1\t1\t1\n",
		"Name:\tx\nPPid:\tz\nUid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\n"} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"", ""},
		{"/bin/cat\x00/tmp/f\x00", "/bin/cat /tmp/f"},
		{"sh\x00-c\x00echo x >> f\x00", "sh -c 'echo x >> f'"},
		{"a\x00\x00b\x00", "a '' b"},
		{"echo\x00it's\x00", `echo 'it'\''s'`},
		{"printf\x00a\nb\x00", `printf "a\nb"`},
		{"cat\x00bad\xffname\x00", `cat "bad\xffname"`},
		{"cat\x00café\x00", "cat café"},
		// setproctitle-style: no NULs inside, spaces kept as one quoted word.
		{"nginx: worker process", "'nginx: worker process'"},
	} {
		got, trunc := CommandLine([]byte(tc.raw))
		if got != tc.want || trunc {
			t.Errorf("CommandLine(%q) = %q, %v; want %q", tc.raw, got, trunc, tc.want)
		}
	}
	long := strings.Repeat("é", MaxCommandLine) // 2 bytes each
	got, trunc := CommandLine([]byte("x\x00" + long))
	if !trunc || len(got) > MaxCommandLine || !utf8.ValidString(got) {
		t.Errorf("long command line: truncated=%v len=%d valid=%v", trunc, len(got), utf8.ValidString(got))
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable("/tmp/a\xffb"); got != `/tmp/a\xffb` {
		t.Errorf("got %q", got)
	}
	if got := Printable("/tmp/ok"); got != "/tmp/ok" {
		t.Errorf("got %q", got)
	}
}
