package event

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Bound makes an event the agent built fit the schema, so that [Validate]
// never rejects a trip for what an attacker put in a path, a command line
// or a name. In every string attribute each byte that is not valid UTF-8 is
// written as \xNN; a value still over its limit is cut at a UTF-8 boundary
// (never inside a \xNN) and its key is listed in Truncated
// (tripwire.truncated). The agent calls it before validating; the collector
// does not, so what arrives centrally is checked strictly.
func (e *Event) Bound() {
	var cut []string
	for i := range fields {
		f := &fields[i]
		if f.kind != kindString || f.key == KeyTruncated {
			continue
		}
		v, present := f.get(e)
		if !present || len(v.s) <= f.max && utf8.ValidString(v.s) {
			continue
		}
		s, truncated := boundString(v.s, f.max)
		if err := f.set(e, value{kind: kindString, s: s}); err != nil {
			continue // derived values (ids, times) are never out of bounds
		}
		if truncated {
			cut = append(cut, f.key)
		}
	}
	if len(cut) > 0 {
		cut = append(cut, e.Truncated...)
		sort.Strings(cut)
		e.Truncated = compactStrings(cut)
	}
}

// boundString escapes invalid UTF-8 in s and cuts it to at most limit bytes.
func boundString(s string, limit int) (string, bool) {
	s = escapeInvalid(s)
	if len(s) <= limit {
		return s, false
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	// A \x starting in the last 3 bytes is an escape the cut would split.
	for k := n - 1; k >= 0 && k > n-4; k-- {
		if s[k] == '\\' && s[k+1] == 'x' {
			n = k
			break
		}
	}
	return s[:n], true
}

// escapeInvalid writes each byte of s that is not valid UTF-8 as \xNN.
func escapeInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
