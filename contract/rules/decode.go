package rules

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"slices"
)

// Error is one problem in a YAML file, placed at the line of the key (or
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

// Decoder walks a YAML node tree by hand instead of letting yaml.v3 fill
// structs, so that every error carries the file, the line and the key path,
// and so that all errors in a file are reported at once. The agent's config
// checks its other sections with it too.
type Decoder struct {
	File string // named in every Error
	errs []error
}

// Err returns every error reported so far, joined in line order, or nil.
func (d *Decoder) Err() error {
	if len(d.errs) == 0 {
		return nil
	}
	// Sections are checked in a fixed order; report in file order.
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].(*Error).Line < d.errs[j].(*Error).Line })
	return errors.Join(d.errs...)
}

// Errorf reports a problem at node n (its line) and key path key.
func (d *Decoder) Errorf(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Field is one key/value pair of a mapping, with the key node kept for its line.
type Field struct {
	Key   *yaml.Node
	Value *yaml.Node
	Path  string // dotted key path, e.g. rules[2].severity
}

// Mapping checks that n is a mapping whose keys are all in allowed (unknown
// and repeated keys are errors) and returns its pairs by key.
func (d *Decoder) Mapping(n *yaml.Node, path string, allowed ...string) map[string]Field {
	out := map[string]Field{}
	if n == nil || n.Kind == 0 { // absent, or an empty document
		return out
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return out
		}
		d.Errorf(n, path, "want a mapping, got %s", KindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		p := Join(path, name)
		if !slices.Contains(allowed, name) {
			d.Errorf(k, p, "unknown key (want one of %s)", strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := out[name]; dup {
			d.Errorf(k, p, "repeated key (first at line %d)", prev.Key.Line)
			continue
		}
		out[name] = Field{Key: k, Value: v, Path: p}
	}
	return out
}

// Join appends key to a dotted key path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// KindName says what n is, for "want X, got Y" messages.
func KindName(n *yaml.Node) string {
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

// Scalar returns f's single value, or reports that it is not one.
func (d *Decoder) Scalar(f Field) (string, bool) {
	if f.Value.Kind != yaml.ScalarNode || f.Value.Tag == "!!null" {
		d.Errorf(f.Value, f.Path, "want a single value, got %s", KindName(f.Value))
		return "", false
	}
	return f.Value.Value, true
}

// Str sets *dst to the string at m[key], if present.
func (d *Decoder) Str(m map[string]Field, key string, dst *string) {
	f, ok := m[key]
	if !ok {
		return
	}
	if s, ok := d.Scalar(f); ok {
		if f.Value.Tag != "!!str" {
			d.Errorf(f.Value, f.Path, "want a string, got %s", f.Value.Value)
			return
		}
		*dst = s
	}
}

// Boolean sets *dst to the true or false at m[key], if present.
func (d *Decoder) Boolean(m map[string]Field, key string, dst *bool) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.Scalar(f)
	if !ok {
		return
	}
	switch s {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		d.Errorf(f.Value, f.Path, "want true or false, got %q", s)
	}
}

// Integer sets *dst to the whole number in [min, max] at m[key], if present.
func (d *Decoder) Integer(m map[string]Field, key string, min, max int64, dst *int64) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.Scalar(f)
	if !ok {
		return
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Errorf(f.Value, f.Path, "want a whole number, got %q", s)
		return
	}
	if v < min || v > max {
		d.Errorf(f.Value, f.Path, "%d is out of range [%d, %d]", v, min, max)
		return
	}
	*dst = v
}

// Duration sets *dst to the duration of at least min at m[key], if present.
func (d *Decoder) Duration(m map[string]Field, key string, min time.Duration, dst *time.Duration) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.Scalar(f)
	if !ok {
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf(f.Value, f.Path, "want a duration such as 30s or 1m, got %q", s)
		return
	}
	if v < min {
		d.Errorf(f.Value, f.Path, "%s is shorter than the minimum %s", v, min)
		return
	}
	*dst = v
}

// Strings sets *dst to the list of non-empty strings at m[key] (one string is
// a list of one), if present, and returns their nodes.
func (d *Decoder) Strings(m map[string]Field, key string, dst *[]string) []*yaml.Node {
	f, ok := m[key]
	if !ok {
		return nil
	}
	var nodes []*yaml.Node
	switch f.Value.Kind {
	case yaml.ScalarNode:
		if f.Value.Tag == "!!null" {
			return nil
		}
		nodes = []*yaml.Node{f.Value}
	case yaml.SequenceNode:
		nodes = f.Value.Content
	default:
		d.Errorf(f.Value, f.Path, "want a list, got %s", KindName(f.Value))
		return nil
	}
	var out []string
	var kept []*yaml.Node
	for i, n := range nodes {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
			d.Errorf(n, fmt.Sprintf("%s[%d]", f.Path, i), "want a non-empty string, got %s", KindName(n))
			continue
		}
		out = append(out, n.Value)
		kept = append(kept, n)
	}
	*dst = out
	return kept
}
