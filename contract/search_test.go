package contract

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestSearchWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"/etc/shadow by pid 42", []string{"etc", "shadow", "etc shadow", "by", "shadow by", "pid", "by pid", "42", "pid 42"}},
		{"Größe ÉTÉ", []string{"größe", "été", "größe été"}},
		{"a-a a", []string{"a", "a a"}},
		{"#%_ --", []string{}},
	} {
		if got := SearchWords(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SearchWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A long text (beyond 64 terms) still gives each word and pair once.
func TestSearchWordsOfALongText(t *testing.T) {
	var text []string
	want := map[string]bool{}
	for i := range 50 {
		w := fmt.Sprintf("w%d", i%45) // five words twice
		text = append(text, w)
		want[w] = true
		if i > 0 {
			want[text[i-1]+" "+w] = true
		}
	}
	got := SearchWords(strings.Join(text, " "))
	seen := map[string]bool{}
	for _, term := range got {
		if seen[term] || !want[term] {
			t.Fatalf("SearchWords: %q repeated or not a term", term)
		}
		seen[term] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("SearchWords: %d terms, want %d", len(seen), len(want))
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
