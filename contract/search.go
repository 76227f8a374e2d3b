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

// SearchWords are the words of s: its runs of letters and digits, lowercased,
// each once, sorted. The exporter stores SearchWords(SearchText(...)) in
// alerts.search_words, and the plugin finds q by the rows holding every one
// of SearchWords(q).
func SearchWords(s string) []string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	slices.Sort(words)
	return slices.Compact(words)
}
