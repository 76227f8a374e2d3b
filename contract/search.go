package contract

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SearchCommandLineRunes is how much of a command line free text searches:
// enough for what an analyst types, bounded so one long command line does
// not fill the index.
const SearchCommandLineRunes = 1024

// SearchText is what free text (GET /api/v1/alerts?q=) is matched against:
// the summary, rule, host, the start of the command line and the user name,
// lowercased. Migration 0012's alert_search_text is the same in SQL.
func SearchText(summary, rule, host, commandLine, userName string) string {
	if utf8.RuneCountInString(commandLine) > SearchCommandLineRunes {
		n := 0
		for i := range commandLine {
			if n == SearchCommandLineRunes {
				commandLine = commandLine[:i]
				break
			}
			n++
		}
	}
	return strings.ToLower(summary + " " + rule + " " + host + " " + commandLine + " " + userName)
}

// SearchWords are the search terms of s: its words (runs of letters and
// digits, lowercased) and each pair of neighbouring words joined by a blank,
// each once, in the order they first appear. The exporter stores
// SearchWords(SearchText(...)) in alerts.search_words; the plugin finds q
// by the rows holding every one of SearchQueryTerms(q). The pairs make a q
// of several words selective even when each word alone is common
// ("file 123" in ".../file-123", where "file" is in every row and "123" in
// many). The exporter computes this for every event stored, so the pairs
// share one allocation, and the few terms of a usual text are kept once
// by a scan rather than sorted.
func SearchWords(s string) []string {
	words := splitWords(s)
	if len(words) == 0 {
		return []string{}
	}
	n := 0
	for _, w := range words {
		n += 2 * (len(w) + 1)
	}
	var b strings.Builder
	b.Grow(n)
	for i := 1; i < len(words); i++ {
		b.WriteString(words[i-1])
		b.WriteByte(' ')
		b.WriteString(words[i])
	}
	pairs := b.String()
	terms := make([]string, 0, 2*len(words))
	add := func(t string) {
		if len(terms) > 64 || !slices.Contains(terms, t) {
			terms = append(terms, t)
		}
	}
	for i, w := range words {
		add(w)
		if i > 0 {
			n := len(words[i-1]) + 1 + len(w)
			add(pairs[:n])
			pairs = pairs[n:]
		}
	}
	if len(terms) > 64 { // a long text: scanning would cost more than sorting
		slices.Sort(terms)
		terms = slices.Compact(terms)
	}
	return terms
}

// SearchQueryTerms are the terms a row must hold to contain q: its one word,
// or the pairs of its neighbouring words. Empty when q has no word.
func SearchQueryTerms(q string) []string {
	words := splitWords(q)
	if len(words) < 2 {
		return words
	}
	terms := make([]string, 0, len(words)-1)
	for i := 1; i < len(words); i++ {
		terms = append(terms, words[i-1]+" "+words[i])
	}
	slices.Sort(terms)
	return slices.Compact(terms)
}

func splitWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}
