package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tripwire-sec/tripwire/contract/rules"
)

// CentralName is how errors name the central rule set.
const CentralName = "central rule set"

// WithCentralRules returns a copy of c with the rules of a central rule set
// added: data is a YAML document whose only key is rules:, in the schema of
// the file's rules, checked by the same validator. Local rules are never
// overridden: a central rule named like a local one is an error, and so is
// any other problem of the set alone or beside the local rules (two rules
// watching the same path, port or process). c itself is not changed.
func (c *Config) WithCentralRules(data []byte) (*Config, error) {
	d := &decoder{Decoder: &rules.Decoder{File: CentralName}}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{File: CentralName, Line: rules.YAMLErrorLine(err), Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var central []Rule
	var seq *yaml.Node
	if root.Kind != 0 && !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		top := d.Mapping(root, "", "rules")
		if f, ok := top["rules"]; ok {
			central = d.rules(f)
			if f.Value.Kind == yaml.SequenceNode {
				seq = f.Value
			}
		}
	}
	local := map[string]int{}
	for _, r := range c.Rules {
		local[r.Name] = r.Line
	}
	for i, r := range central {
		if line, clash := local[r.Name]; clash {
			d.Errorf(&yaml.Node{Line: r.Line}, fmt.Sprintf("rules[%d].name", i),
				"rule %q is also defined in %s (line %d); a local rule is not overridden", r.Name, c.File, line)
		}
	}
	d.checkStateOutsideRules(c)
	if err := d.Err(); err != nil {
		return nil, err
	}
	if seq != nil && len(seq.Content) > 0 && c.rules != nil && c.rules.Kind == yaml.SequenceNode {
		// The set beside the local rules: what each watches alone was
		// checked above, what is left is overlaps across the two.
		both := &decoder{Decoder: &rules.Decoder{File: CentralName}}
		combined := &yaml.Node{Kind: yaml.SequenceNode, Content: slices.Concat(c.rules.Content, seq.Content)}
		both.rules(rules.Field{Key: combined, Value: combined, Path: "rules"})
		if err := both.Err(); err != nil {
			var errs []error
			for _, e := range unjoin(err) {
				msg := e.Error()
				var re *Error
				if errors.As(e, &re) {
					msg = re.Msg
				}
				errs = append(errs, fmt.Errorf("%s beside the rules of %s: %s", CentralName, c.File, msg))
			}
			return nil, errors.Join(errs...)
		}
	}
	out := *c
	out.Rules = slices.Concat(c.Rules, central)
	out.Central = make([]string, 0, len(central))
	for _, r := range central {
		out.Central = append(out.Central, r.Name)
	}
	return &out, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// LocalRulesYAML is the file's rules: section as written (comments and
// all), what the agent reports as its local rules.
func (c *Config) LocalRulesYAML() []byte {
	if c.rules == nil {
		return nil
	}
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "rules"}, c.rules}})
	if err != nil {
		return nil
	}
	return out
}
