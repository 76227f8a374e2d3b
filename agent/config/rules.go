package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"slices"

	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/event"
)

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

func (d *decoder) rules(f field) []Rule {
	if f.value.Kind == yaml.ScalarNode && f.value.Tag == "!!null" {
		return nil
	}
	if f.value.Kind != yaml.SequenceNode {
		d.errorf(f.value, f.path, "want a list of rules, got %s", kindName(f.value))
		return nil
	}
	rs := &ruleSet{recursive: map[int]bool{}}
	names := map[string]int{}
	all := append(append(append(append([]string{}, commonKeys...), fileKeys...), "names", "resolve"), networkKeys...)
	for i, n := range f.value.Content {
		path := fmt.Sprintf("%s[%d]", f.path, i)
		m := d.mapping(n, path, all...)
		r := Rule{Enabled: true, Line: n.Line}
		d.str(m, "name", &r.Name)
		switch nf, ok := m["name"]; {
		case !ok:
			d.errorf(n, path+".name", "required")
		case r.Name != "":
			if first, dup := names[r.Name]; dup {
				d.errorf(nf.value, nf.path, "duplicate rule name %q (first at line %d)", r.Name, first)
			} else {
				names[r.Name] = nf.value.Line
			}
		}
		d.str(m, "type", &r.Type)
		tf, hasType := m["type"]
		switch {
		case !hasType:
			d.errorf(n, path+".type", "required (file, process or network)")
		case r.Type != "" && typeKeys[r.Type] == nil:
			d.errorf(tf.value, tf.path, "unknown rule type %q (want file, process or network)", r.Type)
		}
		if sf, ok := m["severity"]; ok {
			var s string
			d.str(m, "severity", &s)
			if sev, err := event.ParseSeverity(s); err != nil {
				d.errorf(sf.value, sf.path, "bad severity %q (want INFO, WARN or CRITICAL)", s)
			} else {
				r.Severity = sev
			}
		} else {
			d.errorf(n, path+".severity", "required (INFO, WARN or CRITICAL)")
		}
		d.boolean(m, "enabled", &r.Enabled)
		if ef, ok := m["exclude"]; ok {
			em := d.mapping(ef.value, ef.path, "processes", "users")
			d.strings(em, "processes", &r.Exclude.Processes)
			d.strings(em, "users", &r.Exclude.Users)
		}
		if keys := typeKeys[r.Type]; keys != nil {
			for _, k := range append(append(append([]string{}, fileKeys...), processKeys...), networkKeys...) {
				if kf, ok := m[k]; ok && !slices.Contains(keys, k) && !slices.Contains(commonKeys, k) {
					d.errorf(kf.key, kf.path, "not a key of a %s rule (want %s)", r.Type, strings.Join(keys, ", "))
					delete(m, k)
				}
			}
		}
		switch r.Type {
		case TypeFile:
			d.fileRule(rs, i, path, n, m, &r)
		case TypeProcess:
			d.processRule(rs, i, path, n, m, &r)
		case TypeNetwork:
			d.networkRule(rs, i, path, n, m, &r)
		}
		rs.rules = append(rs.rules, r)
	}
	d.overlaps(rs)
	return rs.rules
}

func (d *decoder) fileRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]field, r *Rule) {
	nodes := d.strings(m, "paths", &r.Paths)
	d.boolean(m, "recursive", &r.Recursive)
	if pf, ok := m["plant"]; ok {
		r.Plant = d.plant(pf)
	}
	d.boolean(m, "hold_opens", &r.HoldOpens)
	if hf, ok := m["hold_opens"]; ok && r.HoldOpens && r.Plant == nil {
		d.errorf(hf.value, hf.path, "allowed only on a planted decoy (plant:): it makes every open of the path wait for the agent")
	}
	if len(r.Paths) == 0 {
		d.errorf(n, path+".paths", "a file rule needs at least one path")
		return
	}
	if r.Plant != nil && len(r.Paths) != 1 {
		d.errorf(m["paths"].value, m["paths"].path, "a planted rule takes exactly one path, the decoy (got %d)", len(r.Paths))
	}
	for j, p := range r.Paths {
		node, key := nodes[j], fmt.Sprintf("%s.paths[%d]", path, j)
		if !filepath.IsAbs(p) {
			d.errorf(node, key, "%q is not an absolute path", p)
			continue
		}
		p = filepath.Clean(p)
		r.Paths[j] = p
		if r.Plant != nil {
			parent := filepath.Dir(p)
			if st, err := os.Stat(parent); err != nil {
				d.errorf(node, key, "cannot plant %s: parent directory unreadable: %v", p, unwrapPathErr(err))
				continue
			} else if !st.IsDir() {
				d.errorf(node, key, "cannot plant %s: %s is not a directory", p, parent)
				continue
			}
			if st, err := os.Lstat(p); err == nil && st.IsDir() {
				d.errorf(node, key, "cannot plant %s: it is a directory", p)
				continue
			}
		} else {
			st, err := os.Stat(p)
			if err != nil {
				d.errorf(node, key, "unreadable path: %v", unwrapPathErr(err))
				continue
			}
			if r.Recursive && !st.IsDir() {
				d.errorf(node, key, "recursive: %s is not a directory", p)
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

func (d *decoder) plant(f field) *watcher.Honeyfile {
	m := d.mapping(f.value, f.path, "content", "mode", "owner", "group")
	h := &watcher.Honeyfile{Mode: 0o640}
	d.str(m, "content", &h.Content)
	d.str(m, "owner", &h.Owner)
	d.str(m, "group", &h.Group)
	if mf, ok := m["mode"]; ok {
		if s, ok := d.scalar(mf); ok {
			v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
			if err != nil || v > 0o7777 {
				d.errorf(mf.value, mf.path, "want an octal file mode such as 0640, got %q", s)
			} else {
				h.Mode = uint32(v)
			}
		}
	}
	return h
}

func (d *decoder) processRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]field, r *Rule) {
	nameNodes := d.strings(m, "names", &r.Names)
	pathNodes := d.strings(m, "paths", &r.Paths)
	d.boolean(m, "resolve", &r.Resolve)
	if len(r.Names) == 0 && len(r.Paths) == 0 {
		d.errorf(n, path+".names", "a process rule needs names or paths")
		return
	}
	for j, name := range r.Names {
		if strings.Contains(name, "/") {
			d.errorf(nameNodes[j], fmt.Sprintf("%s.names[%d]", path, j), "%q is a path; put it under paths", name)
			continue
		}
		if r.Enabled {
			rs.procNames = append(rs.procNames, target{rule: i, value: name, node: nameNodes[j], path: fmt.Sprintf("%s.names[%d]", path, j)})
		}
	}
	for j, p := range r.Paths {
		key := fmt.Sprintf("%s.paths[%d]", path, j)
		if !filepath.IsAbs(p) {
			d.errorf(pathNodes[j], key, "%q is not an absolute path", p)
			continue
		}
		r.Paths[j] = filepath.Clean(p)
		if r.Enabled {
			rs.procPaths = append(rs.procPaths, target{rule: i, value: r.Paths[j], node: pathNodes[j], path: key})
		}
	}
}

func (d *decoder) networkRule(rs *ruleSet, i int, path string, n *yaml.Node, m map[string]field, r *Rule) {
	r.Mode, r.Transport = "observe", "tcp"
	d.str(m, "mode", &r.Mode)
	d.str(m, "transport", &r.Transport)
	d.str(m, "address", &r.Address)
	if mf, ok := m["mode"]; ok && r.Mode != "observe" && r.Mode != "honeyport" {
		d.errorf(mf.value, mf.path, "unknown mode %q (want observe or honeyport)", r.Mode)
	}
	if tf, ok := m["transport"]; ok {
		switch {
		case r.Transport != "tcp" && r.Transport != "udp":
			d.errorf(tf.value, tf.path, "unknown transport %q (want tcp or udp)", r.Transport)
		case r.Transport == "udp" && r.Mode != "honeyport":
			d.errorf(tf.value, tf.path, "udp is only watched in honeyport mode")
		}
	}
	if af, ok := m["address"]; ok {
		switch {
		case r.Mode != "honeyport":
			d.errorf(af.key, af.path, "address is only used in honeyport mode")
		case net.ParseIP(r.Address) == nil:
			d.errorf(af.value, af.path, "want an IP address, got %q", r.Address)
		}
	}
	if ff, ok := m["flood"]; ok {
		fm := d.mapping(ff.value, ff.path, "sources", "window")
		sources := int64(watcher.DefaultFloodSources)
		d.integer(fm, "sources", 1, 1<<16, &sources)
		r.Flood.Sources = int(sources)
		d.duration(fm, "window", time.Second, &r.Flood.Window)
		if r.Mode != "honeyport" {
			d.errorf(ff.key, ff.path, "flood is only used in honeyport mode")
		}
	}
	pf, ok := m["ports"]
	if !ok {
		d.errorf(n, path+".ports", "a network rule needs ports")
		return
	}
	var nodes []*yaml.Node
	switch pf.value.Kind {
	case yaml.SequenceNode:
		nodes = pf.value.Content
	case yaml.ScalarNode:
		nodes = []*yaml.Node{pf.value}
	default:
		d.errorf(pf.value, pf.path, "want a list of ports, got %s", kindName(pf.value))
		return
	}
	for j, pn := range nodes {
		key := fmt.Sprintf("%s.ports[%d]", path, j)
		port, err := strconv.Atoi(pn.Value)
		if pn.Kind != yaml.ScalarNode || err != nil || port < 1 || port > 65535 {
			d.errorf(pn, key, "bad port %s (want 1 to 65535)", kindName(pn))
			continue
		}
		r.Ports = append(r.Ports, port)
		if r.Enabled {
			rs.ports = append(rs.ports, target{rule: i, value: r.Transport + "/" + pn.Value, node: pn, path: key})
		}
	}
}

// overlaps rejects two enabled rules that watch the same thing: the same
// trip would be reported twice under two names.
func (d *decoder) overlaps(rs *ruleSet) {
	same := func(what string, ts []target) {
		seen := map[string]target{}
		for _, t := range ts {
			if first, dup := seen[t.value]; dup {
				d.errorf(t.node, t.path, "overlapping rules: %s %s is also watched by rule %q (line %d)",
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
			if within(t.value, dir.value) {
				d.errorf(t.node, t.path, "overlapping rules: %s is inside %s, watched recursively by rule %q (line %d)",
					t.value, dir.value, rs.rules[dir.rule].Name, dir.node.Line)
			}
		}
	}
	d.fileTargets = rs.filePaths
	d.recursive = rs.recursive
}

// within reports whether p is strictly below dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkStateOutsideRules keeps the agent's own files out of watched paths: a
// watcher without PIDs (fsnotify) could not tell the agent's writes from an
// intruder's, and every spool commit would trip a rule and feed itself.
func (d *decoder) checkStateOutsideRules(c *Config) {
	state := []struct{ key, path string }{
		{"spool.path", c.Spool.Path}, {"audit.path", c.Audit.Path},
	}
	for _, t := range d.fileTargets {
		for _, s := range state {
			watched := s.path == t.value ||
				(d.recursive[t.rule] && within(s.path, t.value)) ||
				filepath.Dir(s.path) == t.value
			if watched {
				d.errorf(t.node, t.path, "watches the agent's own %s (%s); move %s out of watched paths", s.key, s.path, s.key)
			}
		}
	}
}
