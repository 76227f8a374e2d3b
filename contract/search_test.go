package contract

import (
	"slices"
	"strings"
	"testing"
)

func TestSearchWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"tripwire.file.access /etc/shadow by pid 42 (/usr/bin/cat)", []string{"42", "access", "bin", "by", "cat", "etc", "file", "pid", "shadow", "tripwire", "usr"}},
		{"curl -X POST http://10.0.0.5:8080/a_b", []string{"0", "10", "5", "8080", "a", "b", "curl", "http", "post", "x"}},
		{"Größe ÉTÉ", []string{"größe", "été"}},
		{"#%_ --", nil},
	} {
		if got := SearchWords(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SearchWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSearchTextCutsTheCommandLine(t *testing.T) {
	long := strings.Repeat("é", SearchCommandLineRunes) + " TAIL"
	got := SearchText("S", "R", "H", long, "U")
	if want := "s r h " + strings.Repeat("é", SearchCommandLineRunes) + " u"; got != want {
		t.Errorf("SearchText kept %d bytes, want %d (the first %d runes of the command line)", len(got), len(want), SearchCommandLineRunes)
	}
}
