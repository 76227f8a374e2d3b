package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"slices"
)

// Error is one problem in a config file, placed at the line of the key (or
// value) at fault.
type Error struct {
	File string
	Line int
	Key  string // dotted path, e.g. rules[2].severity
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// decoder walks the YAML node tree by hand instead of letting yaml.v3 fill
// structs, so that every error carries the file, the line and the key path,
// and so that all errors in a file are reported at once.
type decoder struct {
	file string
	errs []error

	// Kept from the rules for checks that span sections.
	fileTargets []target
	recursive   map[int]bool
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// field is one key/value pair of a mapping, with the key node kept for its line.
type field struct {
	key   *yaml.Node
	value *yaml.Node
	path  string
}

// mapping checks that n is a mapping whose keys are all in allowed (unknown
// and repeated keys are errors) and returns its pairs by key.
func (d *decoder) mapping(n *yaml.Node, path string, allowed ...string) map[string]field {
	out := map[string]field{}
	if n == nil || n.Kind == 0 { // absent, or an empty document
		return out
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return out
		}
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		p := join(path, name)
		if !slices.Contains(allowed, name) {
			d.errorf(k, p, "unknown key (want one of %s)", strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := out[name]; dup {
			d.errorf(k, p, "repeated key (first at line %d)", prev.key.Line)
			continue
		}
		out[name] = field{key: k, value: v, path: p}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (d *decoder) scalar(f field) (string, bool) {
	if f.value.Kind != yaml.ScalarNode || f.value.Tag == "!!null" {
		d.errorf(f.value, f.path, "want a single value, got %s", kindName(f.value))
		return "", false
	}
	return f.value.Value, true
}

func (d *decoder) str(m map[string]field, key string, dst *string) {
	f, ok := m[key]
	if !ok {
		return
	}
	if s, ok := d.scalar(f); ok {
		if f.value.Tag != "!!str" {
			d.errorf(f.value, f.path, "want a string, got %s", f.value.Value)
			return
		}
		*dst = s
	}
}

func (d *decoder) boolean(m map[string]field, key string, dst *bool) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	switch s {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		d.errorf(f.value, f.path, "want true or false, got %q", s)
	}
}

func (d *decoder) integer(m map[string]field, key string, min, max int64, dst *int64) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.errorf(f.value, f.path, "want a whole number, got %q", s)
		return
	}
	if v < min || v > max {
		d.errorf(f.value, f.path, "%d is out of range [%d, %d]", v, min, max)
		return
	}
	*dst = v
}

// size accepts a byte count with an optional unit: 1048576, 512KiB, 64MiB, 1GiB.
func (d *decoder) size(m map[string]field, key string, dst *int64) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	v, err := parseSize(s)
	if err != nil {
		d.errorf(f.value, f.path, "%v", err)
		return
	}
	*dst = v
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			mult = u.mult
			num = strings.TrimSpace(strings.TrimSuffix(num, u.suffix))
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("want a positive size such as 268435456 or 256MiB, got %q", s)
	}
	return v * mult, nil
}

func (d *decoder) duration(m map[string]field, key string, min time.Duration, dst *time.Duration) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(f.value, f.path, "want a duration such as 30s or 1m, got %q", s)
		return
	}
	if v < min {
		d.errorf(f.value, f.path, "%s is shorter than the minimum %s", v, min)
		return
	}
	*dst = v
}

// strings accepts a list of strings, or one string as a list of one.
func (d *decoder) strings(m map[string]field, key string, dst *[]string) []*yaml.Node {
	f, ok := m[key]
	if !ok {
		return nil
	}
	var nodes []*yaml.Node
	switch f.value.Kind {
	case yaml.ScalarNode:
		if f.value.Tag == "!!null" {
			return nil
		}
		nodes = []*yaml.Node{f.value}
	case yaml.SequenceNode:
		nodes = f.value.Content
	default:
		d.errorf(f.value, f.path, "want a list, got %s", kindName(f.value))
		return nil
	}
	var out []string
	var kept []*yaml.Node
	for i, n := range nodes {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
			d.errorf(n, fmt.Sprintf("%s[%d]", f.path, i), "want a non-empty string, got %s", kindName(n))
			continue
		}
		out = append(out, n.Value)
		kept = append(kept, n)
	}
	*dst = out
	return kept
}
