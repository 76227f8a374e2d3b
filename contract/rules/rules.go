// Package rules is the schema and the validator of TripWire rules: the
// agent's `rules:` list (docs/agent-config.md) and the central rule sets
// edited in Grafana, which must pass the same checks. It lives in the
// contract module so that the Grafana plugin, its own Go module, validates
// with the very code `tripwire validate` runs, at the cost of one YAML
// library.
//
// Start with [Parse], which checks a rule set (a YAML list of rules) and
// reports every problem at once, each an [*Error] placed at the line and key
// path at fault. The checks that need the host the rules run on (a watched
// path exists, a decoy's directory does) run only when a [Host] is given:
// the agent passes [Local]; the central editor passes nil. [Decode] checks
// the list inside a larger document; [Decoder] is the line-placing YAML
// checker it is built on, which the agent's config uses for its other
// sections.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Rule types.
const (
	TypeFile    = "file"
	TypeProcess = "process"
	TypeNetwork = "network"
)

// Severities a rule may have, lowest first.
var Severities = []string{"INFO", "WARN", "CRITICAL"}

// Rule is one checked tripwire. Only the targets of its Type are set.
type Rule struct {
	Name     string
	Type     string // TypeFile, TypeProcess, TypeNetwork
	Severity string // one of Severities
	Enabled  bool
	Line     int // where the rule starts in the file

	// file
	Paths     []string // cleaned; process rules: executable paths
	PathLines []int    // the line of each of Paths
	Recursive bool
	Plant     *Plant
	HoldOpens bool // planted decoys only: every open of the path waits for the agent
	// process (Paths above holds executable paths)
	Names     []string
	NameLines []int // the line of each of Names
	Resolve   bool
	// network
	Ports     []int
	PortLines []int  // the line of each of Ports
	Mode      string // observe, honeyport
	Transport string // tcp, udp
	Address   string
	Flood     Flood // honeyport only

	Exclude Exclude
}

// Plant is a decoy file the agent creates and watches.
type Plant struct {
	Content string
	Mode    uint32 // default 0o640
	Owner   string // user name or uid; empty keeps root
	Group   string
}

// Flood bounds a honeyport's events from many sources; zero values mean the
// watcher's defaults.
type Flood struct {
	Sources int
	Window  time.Duration
}

// Exclude lists actors whose trips a rule ignores.
type Exclude struct {
	Processes []string // executable base names or absolute paths
	Users     []string // user names or numeric uids
}

// Host is the machine the rules will run on, for the checks that need it.
type Host interface {
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
}

// Local is this machine.
var Local Host = localHost{}

type localHost struct{}

func (localHost) Stat(name string) (fs.FileInfo, error)  { return os.Stat(name) }
func (localHost) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// Parse checks data, a YAML document holding one list of rules, as if read
// from file name. Errors name keys as under the agent's rules: key
// (rules[0].paths[1]), so they read the same in both places. The error, if
// any, joins one [*Error] per problem.
func Parse(name string, data []byte, host Host) ([]Rule, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{File: name, Line: YAMLErrorLine(err), Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d := &Decoder{File: name}
	if root.Kind == 0 {
		return nil, nil // an empty document: no rules
	}
	rs := Decode(d, Field{Key: root, Value: root, Path: "rules"}, host)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// YAMLErrorLine is the line a yaml.v3 error names, or 1.
func YAMLErrorLine(err error) int {
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		return line
	}
	return 1
}

// Within reports whether p is strictly below dir.
func Within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checker checks one rules list.
type checker struct {
	*Decoder
	host Host
}

var (
	commonKeys  = []string{"name", "type", "severity", "enabled", "exclude"}
	fileKeys    = []string{"paths", "recursive", "plant", "hold_opens"}
	processKeys = []string{"names", "paths", "resolve"}
	networkKeys = []string{"ports", "mode", "transport", "address", "flood"}
	typeKeys    = map[string][]string{TypeFile: fileKeys, TypeProcess: processKeys, TypeNetwork: networkKeys}
)

// target remembers where a rule's path, name or port was written, so that an
// overlap names both places.
type target struct {
	rule  int
	value string
	node  *yaml.Node
	path  string
}

type ruleSet struct {
	rules     []Rule
	filePaths []target // file rule paths (enabled rules)
	recursive map[int]bool
	procNames []target
	procPaths []target
	ports     []target // "tcp/22"
	state     map[string]*yaml.Node
}

// Decode checks f, the value of a rules: key, reporting problems to d. A nil
// host skips the checks that need the host (see [Host]).
func Decode(d *Decoder, f Field, host Host) []Rule {
	c := &checker{Decoder: d, host: host}
	return c.rules(f)
}

func (c *checker) rules(f Field) []Rule {
	if f.Value.Kind == yaml.ScalarNode && f.Value.Tag == "!!null" {
		return nil
	}
	if f.Value.Kind != yaml.SequenceNode {
		c.Errorf(f.Value, f.Path, "want a list of rules, got %s", KindName(f.Value))
		return nil
	}
	rs := &ruleSet{recursive: map[int]bool{}}
	names := map[string]int{}
	all := append(append(append(append([]string{}, commonKeys...), fileKeys...), "names", "resolve"), networkKeys...)
	for i, n := range f.Value.Content {
		path := fmt.Sprintf("%s[%d]", f.Path, i)
		m := c.Mapping(n, path, all...)
		r := Rule{Enabled: true, Line: n.Line}
		c.Str(m, "name", &r.Name)
		switch nf, ok := m["name"]; {
		case !ok:
			c.Errorf(n, path+".name", "required")
		case r.Name != "":
			if first, dup := names[r.Name]; dup {
				c.Errorf(nf.Value, nf.Path, "duplicate rule name %q (first at line %d)", r.Name, first)
			} else {
				names[r.Name] = nf.Value.Line
			}
		}
		c.Str(m, "type", &r.Type)
		tf, hasType := m["type"]
		switch {
		case !hasType:
			c.Errorf(n, path+".type", "required (file, process or network)")
		case r.Type != "" && typeKeys[r.Type] == nil:
			c.Errorf(tf.Value, tf.Path, "unknown rule type %q (want file, process or network)", r.Type)
		}
		if sf, ok := m["severity"]; ok {
			var s string
			c.Str(m, "severity", &s)
			if !slices.Contains(Severities, s) {
				c.Errorf(sf.Value, sf.Path, "bad severity %q (want INFO, WARN or CRITICAL)", s)
			} else {
				r.Severity = s
			}
		} else {
			c.Errorf(n, path+".severity", "required (INFO, WARN or CRITICAL)")
		}
		c.Boolean(m, "enabled", &r.Enabled)
		if ef, ok := m["exclude"]; ok {
			em := c.Mapping(ef.Value, ef.Path, "processes", "users")
			c.Strings(em, "processes", &r.Exclude.Processes)
			c.Strings(em, "users", &r.Exclude.Users)
		}
		if keys := typeKeys[r.Type]; keys != nil {
			for _, k := range append(append(append([]string{}, fileKeys...), processKeys...), networkKeys...) {
				if kf, ok := m[k]; ok && !slices.Contains(keys, k) && !slices.Contains(commonKeys, k) {
					c.Errorf(kf.Key, kf.Path, "not a key of a %s rule (want %s)", r.Type, strings.Join(keys, ", "))
					delete(m, k)
				}
			}
		}
		switch r.Type {
		case TypeFile:
			c.fileRule(rs, i, path, n, m, &r)
		case TypeProcess:
			c.processRule(rs, i, path, n, m, &r)
		case TypeNetwork:
			c.networkRule(rs, i, path, n, m, &r)
		}
		rs.rules = append(rs.rules, r)
	}
	c.overlaps(rs)
	return rs.rules
}

func (c *checker) fileRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]Field, r *Rule) {
	nodes := c.Strings(m, "paths", &r.Paths)
	r.PathLines = lines(nodes)
	c.Boolean(m, "recursive", &r.Recursive)
	if pf, ok := m["plant"]; ok {
		r.Plant = c.plant(pf)
	}
	c.Boolean(m, "hold_opens", &r.HoldOpens)
	if hf, ok := m["hold_opens"]; ok && r.HoldOpens && r.Plant == nil {
		c.Errorf(hf.Value, hf.Path, "allowed only on a planted decoy (plant:): it makes every open of the path wait for the agent")
	}
	if len(r.Paths) == 0 {
		c.Errorf(n, path+".paths", "a file rule needs at least one path")
		return
	}
	if r.Plant != nil && len(r.Paths) != 1 {
		c.Errorf(m["paths"].Value, m["paths"].Path, "a planted rule takes exactly one path, the decoy (got %d)", len(r.Paths))
	}
	for j, p := range r.Paths {
		node, key := nodes[j], fmt.Sprintf("%s.paths[%d]", path, j)
		if !filepath.IsAbs(p) {
			c.Errorf(node, key, "%q is not an absolute path", p)
			continue
		}
		p = filepath.Clean(p)
		r.Paths[j] = p
		switch {
		case c.host == nil:
			// Checked on the host, when the agent applies the rules.
		case r.Plant != nil:
			parent := filepath.Dir(p)
			if st, err := c.host.Stat(parent); err != nil {
				c.Errorf(node, key, "cannot plant %s: parent directory unreadable: %v", p, unwrapPathErr(err))
				continue
			} else if !st.IsDir() {
				c.Errorf(node, key, "cannot plant %s: %s is not a directory", p, parent)
				continue
			}
			if st, err := c.host.Lstat(p); err == nil && st.IsDir() {
				c.Errorf(node, key, "cannot plant %s: it is a directory", p)
				continue
			}
		default:
			st, err := c.host.Stat(p)
			if err != nil {
				c.Errorf(node, key, "unreadable path: %v", unwrapPathErr(err))
				continue
			}
			if r.Recursive && !st.IsDir() {
				c.Errorf(node, key, "recursive: %s is not a directory", p)
				continue
			}
		}
		if r.Enabled {
			rs.filePaths = append(rs.filePaths, target{rule: i, value: p, node: node, path: key})
		}
	}
	if r.Enabled && r.Recursive {
		rs.recursive[i] = true
	}
}

func (c *checker) plant(f Field) *Plant {
	m := c.Mapping(f.Value, f.Path, "content", "mode", "owner", "group")
	h := &Plant{Mode: 0o640}
	c.Str(m, "content", &h.Content)
	c.Str(m, "owner", &h.Owner)
	c.Str(m, "group", &h.Group)
	if mf, ok := m["mode"]; ok {
		if s, ok := c.Scalar(mf); ok {
			v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
			if err != nil || v > 0o7777 {
				c.Errorf(mf.Value, mf.Path, "want an octal file mode such as 0640, got %q", s)
			} else {
				h.Mode = uint32(v)
			}
		}
	}
	return h
}

func (c *checker) processRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]Field, r *Rule) {
	nameNodes := c.Strings(m, "names", &r.Names)
	pathNodes := c.Strings(m, "paths", &r.Paths)
	r.PathLines = lines(pathNodes)
	r.NameLines = lines(nameNodes)
	c.Boolean(m, "resolve", &r.Resolve)
	if len(r.Names) == 0 && len(r.Paths) == 0 {
		c.Errorf(n, path+".names", "a process rule needs names or paths")
		return
	}
	for j, name := range r.Names {
		if strings.Contains(name, "/") {
			c.Errorf(nameNodes[j], fmt.Sprintf("%s.names[%d]", path, j), "%q is a path; put it under paths", name)
			continue
		}
		if r.Enabled {
			rs.procNames = append(rs.procNames, target{rule: i, value: name, node: nameNodes[j], path: fmt.Sprintf("%s.names[%d]", path, j)})
		}
	}
	for j, p := range r.Paths {
		key := fmt.Sprintf("%s.paths[%d]", path, j)
		if !filepath.IsAbs(p) {
			c.Errorf(pathNodes[j], key, "%q is not an absolute path", p)
			continue
		}
		r.Paths[j] = filepath.Clean(p)
		if r.Enabled {
			rs.procPaths = append(rs.procPaths, target{rule: i, value: r.Paths[j], node: pathNodes[j], path: key})
		}
	}
}

func (c *checker) networkRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]Field, r *Rule) {
	r.Mode, r.Transport = "observe", "tcp"
	c.Str(m, "mode", &r.Mode)
	c.Str(m, "transport", &r.Transport)
	c.Str(m, "address", &r.Address)
	if mf, ok := m["mode"]; ok && r.Mode != "observe" && r.Mode != "honeyport" {
		c.Errorf(mf.Value, mf.Path, "unknown mode %q (want observe or honeyport)", r.Mode)
	}
	if tf, ok := m["transport"]; ok {
		switch {
		case r.Transport != "tcp" && r.Transport != "udp":
			c.Errorf(tf.Value, tf.Path, "unknown transport %q (want tcp or udp)", r.Transport)
		case r.Transport == "udp" && r.Mode != "honeyport":
			c.Errorf(tf.Value, tf.Path, "udp is only watched in honeyport mode")
		}
	}
	if af, ok := m["address"]; ok {
		switch {
		case r.Mode != "honeyport":
			c.Errorf(af.Key, af.Path, "address is only used in honeyport mode")
		case net.ParseIP(r.Address) == nil:
			c.Errorf(af.Value, af.Path, "want an IP address, got %q", r.Address)
		}
	}
	if ff, ok := m["flood"]; ok {
		fm := c.Mapping(ff.Value, ff.Path, "sources", "window")
		var sources int64
		c.Integer(fm, "sources", 1, 1<<16, &sources)
		r.Flood.Sources = int(sources)
		c.Duration(fm, "window", time.Second, &r.Flood.Window)
		if r.Mode != "honeyport" {
			c.Errorf(ff.Key, ff.Path, "flood is only used in honeyport mode")
		}
	}
	pf, ok := m["ports"]
	if !ok {
		c.Errorf(n, path+".ports", "a network rule needs ports")
		return
	}
	var nodes []*yaml.Node
	switch pf.Value.Kind {
	case yaml.SequenceNode:
		nodes = pf.Value.Content
	case yaml.ScalarNode:
		nodes = []*yaml.Node{pf.Value}
	default:
		c.Errorf(pf.Value, pf.Path, "want a list of ports, got %s", KindName(pf.Value))
		return
	}
	for j, pn := range nodes {
		key := fmt.Sprintf("%s.ports[%d]", path, j)
		port, err := strconv.Atoi(pn.Value)
		if pn.Kind != yaml.ScalarNode || err != nil || port < 1 || port > 65535 {
			c.Errorf(pn, key, "bad port %s (want 1 to 65535)", KindName(pn))
			continue
		}
		r.Ports = append(r.Ports, port)
		r.PortLines = append(r.PortLines, pn.Line)
		if r.Enabled {
			rs.ports = append(rs.ports, target{rule: i, value: r.Transport + "/" + pn.Value, node: pn, path: key})
		}
	}
}

// overlaps rejects two enabled rules that watch the same thing: the same
// trip would be reported twice under two names.
func (c *checker) overlaps(rs *ruleSet) {
	same := func(what string, ts []target) {
		seen := map[string]target{}
		for _, t := range ts {
			if first, dup := seen[t.value]; dup {
				c.Errorf(t.node, t.path, "overlapping rules: %s %s is also watched by rule %q (line %d)",
					what, t.value, rs.rules[first.rule].Name, first.node.Line)
				continue
			}
			seen[t.value] = t
		}
	}
	same("path", rs.filePaths)
	same("process name", rs.procNames)
	same("executable path", rs.procPaths)
	same("port", rs.ports)
	for _, t := range rs.filePaths {
		for _, dir := range rs.filePaths {
			if dir.rule == t.rule || !rs.recursive[dir.rule] || dir.value == t.value {
				continue
			}
			if Within(t.value, dir.value) {
				c.Errorf(t.node, t.path, "overlapping rules: %s is inside %s, watched recursively by rule %q (line %d)",
					t.value, dir.value, rs.rules[dir.rule].Name, dir.node.Line)
			}
		}
	}
}

func lines(nodes []*yaml.Node) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, n.Line)
	}
	return out
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
