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
		{"/etc/shadow by pid 42", []string{"42", "by", "by pid", "etc", "etc shadow", "pid", "pid 42", "shadow", "shadow by"}},
		{"Größe ÉTÉ", []string{"größe", "größe été", "été"}},
		{"a-a a", []string{"a", "a a"}},
		{"#%_ --", []string{}},
	} {
		if got := SearchWords(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SearchWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSearchQueryTerms(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Shadow", []string{"shadow"}},
		{"file-123", []string{"file 123"}},
		{"rule-6 host", []string{"6 host", "rule 6"}},
		{"_%", nil},
	} {
		got := SearchQueryTerms(c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("SearchQueryTerms(%q) = %q, want %q", c.in, got, c.want)
		}
		// Every term of a query is a term of a text holding it.
		for _, term := range got {
			if !slices.Contains(SearchWords("x "+c.in+" y"), term) {
				t.Errorf("SearchWords of a text holding %q lacks %q", c.in, term)
			}
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
