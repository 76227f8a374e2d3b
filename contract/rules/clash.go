package rules

import (
	"fmt"
	"sort"
	"strconv"
)

// Clashes reports what an agent would refuse in one list made of two
// checked lists, theirs and mine (say two central rule sets that reach one
// host): a rule name used in both, a target both watch with enabled rules,
// or a path of one inside a directory the other watches recursively. Each
// Error is placed in mine, with Key as [Parse] writes it; where names the
// other list in messages (`rule set "base"`). File is left empty.
func Clashes(mine, theirs []Rule, where string) []*Error {
	var out []*Error
	at := func(line int, key, format string, a ...any) {
		out = append(out, &Error{Line: line, Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	names := map[string]Rule{}
	for _, r := range theirs {
		names[r.Name] = r
	}
	for i, r := range mine {
		if o, ok := names[r.Name]; ok {
			at(r.Line, fmt.Sprintf("rules[%d].name", i), "duplicate rule name %q (also in %s, line %d)", r.Name, where, o.Line)
		}
	}
	theirTargets := map[string]clashTarget{}
	for _, t := range clashTargets(theirs) {
		if _, dup := theirTargets[t.value]; !dup {
			theirTargets[t.value] = t
		}
	}
	mineT, theirT := clashTargets(mine), clashTargets(theirs)
	for _, t := range mineT {
		if o, ok := theirTargets[t.value]; ok {
			at(t.line, t.key, "overlapping rules: %s %s is also watched by rule %q of %s (line %d)", t.what, t.shown, o.rule.Name, where, o.line)
		}
	}
	for _, t := range mineT {
		for _, o := range theirT {
			if t.what != "path" || o.what != "path" || t.shown == o.shown {
				continue
			}
			switch {
			case o.rule.Recursive && Within(t.shown, o.shown):
				at(t.line, t.key, "overlapping rules: %s is inside %s, watched recursively by rule %q of %s (line %d)",
					t.shown, o.shown, o.rule.Name, where, o.line)
			case t.rule.Recursive && Within(o.shown, t.shown):
				at(t.line, t.key, "overlapping rules: watches %s recursively, and %s inside it is watched by rule %q of %s (line %d)",
					t.shown, o.shown, o.rule.Name, where, o.line)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// clashTarget is one thing an enabled rule watches, as the decoder's
// overlap check compares them.
type clashTarget struct {
	rule  Rule
	what  string // path, process name, executable path, port
	value string // what + the target, unique per kind
	shown string // the target as messages show it
	line  int
	key   string
}

func clashTargets(rs []Rule) []clashTarget {
	var out []clashTarget
	add := func(r Rule, what, shown string, lines []int, j int, key string) {
		line := r.Line
		if j < len(lines) {
			line = lines[j]
		}
		out = append(out, clashTarget{rule: r, what: what, value: what + " " + shown, shown: shown, line: line, key: key})
	}
	for i, r := range rs {
		if !r.Enabled {
			continue
		}
		key := func(field string, j int) string { return fmt.Sprintf("rules[%d].%s[%d]", i, field, j) }
		switch r.Type {
		case TypeFile:
			for j, p := range r.Paths {
				add(r, "path", p, r.PathLines, j, key("paths", j))
			}
		case TypeProcess:
			for j, n := range r.Names {
				add(r, "process name", n, r.NameLines, j, key("names", j))
			}
			for j, p := range r.Paths {
				add(r, "executable path", p, r.PathLines, j, key("paths", j))
			}
		case TypeNetwork:
			for j, p := range r.Ports {
				add(r, "port", r.Transport+"/"+strconv.Itoa(p), r.PortLines, j, key("ports", j))
			}
		}
	}
	return out
}
