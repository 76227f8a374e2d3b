// Package config loads and checks the agent's YAML configuration.
//
// Start with [Load]: it reads a file, reports every problem at once as
// "file:line: key: message" lines (an [Error] each, joined), and returns a
// [Config] whose rules convert to the watcher rule types with
// [Config.FileRules], [Config.ProcessRules] and [Config.NetworkRules].
// The reference for every key is docs/agent-config.md.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"slices"

	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/contract/rules"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// Defaults for keys a config may leave out.
const (
	DefaultHealthGroup       = "tripwire"
	DefaultSpoolPath         = "/var/lib/tripwire/spool.db"
	DefaultAuditPath         = "/var/lib/tripwire/audit.log"
	DefaultSpoolMaxEvents    = 1_000_000
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultDegradedAfter is how long shipping may fail before the agent
	// reports itself DEGRADED.
	DefaultDegradedAfter = 5 * time.Minute
)

// Rule types.
const (
	TypeFile    = rules.TypeFile
	TypeProcess = rules.TypeProcess
	TypeNetwork = rules.TypeNetwork
)

// Config is a checked agent configuration.
type Config struct {
	File string // the file it was loaded from, absolute

	Host              Host
	Rules             []Rule
	Transport         Transport
	Spool             Spool
	Audit             Audit
	Health            Health
	HeartbeatInterval time.Duration
	Watchers          Watchers
	Management        Management

	// rules is the rules: sequence as written, kept so that a central rule
	// set is checked together with it (overlaps span both).
	rules *yaml.Node
	// Central names the rules added from the central rule set, nil when
	// none are (see [Config.WithCentralRules]).
	Central []string
}

// Management is the OpAMP connection through which the collector offers a
// central rule set; off without an endpoint.
type Management struct {
	Endpoint   string // wss://host:port/v1/opamp; "" is off
	CA         string // default: transport.ca
	Cert       string // default: transport.cert (the same identity)
	Key        string // default: transport.key
	ServerName string // default: transport.server_name
	// RulesFile is where the last applied central rule set is kept (0600),
	// so a restart without the server keeps watching it.
	RulesFile string
	// RenewBefore is how long before the client certificate expires the
	// agent asks the server for a new one (a CSR; the key stays here).
	RenewBefore time.Duration
}

// DefaultRenewBefore is management.renew_before when not set.
const DefaultRenewBefore = 30 * 24 * time.Hour

// Host overrides the identity the agent reports; empty fields are detected.
type Host struct {
	Name string
	ID   string
}

// Rule is one tripwire. Only the targets of its Type are set.
type Rule struct {
	Name     string
	Type     string // file, process, network
	Severity event.Severity
	Enabled  bool
	Line     int // where the rule starts in the file

	// file
	Paths     []string
	Recursive bool
	Plant     *watcher.Honeyfile
	HoldOpens bool // planted decoys only: see watcher.FileRule.HoldOpens
	// process (Paths above holds executable paths)
	Names   []string
	Resolve bool
	// network
	Ports     []int
	Mode      string // observe, honeyport
	Transport string // tcp, udp
	Address   string
	Flood     watcher.Flood // honeyport only

	Exclude watcher.Exclusions
}

// Transport is where and how the shipper sends events.
type Transport struct {
	Endpoint   string // host:port of the collector; empty: keep events in the spool
	CA         string
	Cert       string
	Key        string
	ServerName string
	// DegradedAfter is how long shipping may fail before the agent reports
	// itself DEGRADED.
	DegradedAfter time.Duration
}

// Spool bounds the local event store.
type Spool struct {
	Path      string
	MaxEvents int64
	MaxBytes  int64
}

// Audit places the local audit chain.
type Audit struct {
	Path     string
	MaxBytes int64 // rotate at this size
	Keep     int   // rotated files kept
}

// Health is where /healthz and /metrics listen: a Unix socket that only root
// and the socket's group may connect to, and, opt-in, a TCP address that
// answers only requests carrying the bearer token from TokenFile (rule names
// and trip counts are not for every local user).
type Health struct {
	Socket      string // "" only when Address is set
	SocketGroup string // group given read-write access to Socket
	Address     string // host:port; "" serves no TCP
	TokenFile   string // required with Address; mode 0600, owned by root or the agent
	AllowRemote bool
}

// Watchers forces a mechanism per kind; empty picks the best available.
type Watchers struct {
	File    string
	Process string
	Network string
}

// Mechanisms each kind may be forced to.
var mechanisms = map[string][]string{
	TypeFile:    {"ebpf", "ebpf_lsm", "ebpf_syscall", "fanotify", "fsnotify"},
	TypeProcess: {"ebpf", "fanotify_exec", "fanotify", "proc_connector"},
	TypeNetwork: {"ebpf", "sockdiag"},
}

// Load reads and checks the config at path. The error, if any, joins one
// [*Error] per problem.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse checks config data as if read from file name; relative paths in it are
// taken relative to the directory of name.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{Decoder: &rules.Decoder{File: name}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file, all defaults
		return nil, &Error{File: name, Line: rules.YAMLErrorLine(err), Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	dir := filepath.Dir(name)
	if abs, err := filepath.Abs(name); err == nil {
		dir = filepath.Dir(abs)
	}
	c := &Config{
		File:              name,
		Spool:             Spool{Path: DefaultSpoolPath, MaxEvents: DefaultSpoolMaxEvents, MaxBytes: DefaultSpoolMaxBytes},
		Audit:             Audit{Path: DefaultAuditPath, MaxBytes: auditchain.DefaultMaxBytes, Keep: auditchain.DefaultKeep},
		Health:            Health{Socket: DefaultHealthSocket, SocketGroup: DefaultHealthGroup},
		HeartbeatInterval: DefaultHeartbeatInterval,
		Transport:         Transport{DegradedAfter: DefaultDegradedAfter},
	}
	top := d.Mapping(root, "", "host", "rules", "transport", "spool", "audit", "health", "heartbeat_interval", "watchers", "management")
	if f, ok := top["host"]; ok {
		m := d.Mapping(f.Value, f.Path, "name", "id")
		d.Str(m, "name", &c.Host.Name)
		d.Str(m, "id", &c.Host.ID)
	}
	if f, ok := top["transport"]; ok {
		d.transport(f, dir, &c.Transport)
	}
	if f, ok := top["spool"]; ok {
		m := d.Mapping(f.Value, f.Path, "path", "max_events", "max_bytes")
		d.path(m, "path", dir, &c.Spool.Path)
		d.Integer(m, "max_events", 100, 1<<40, &c.Spool.MaxEvents)
		d.size(m, "max_bytes", &c.Spool.MaxBytes)
	}
	if f, ok := top["audit"]; ok {
		m := d.Mapping(f.Value, f.Path, "path", "max_bytes", "keep")
		d.path(m, "path", dir, &c.Audit.Path)
		d.size(m, "max_bytes", &c.Audit.MaxBytes)
		keep := int64(c.Audit.Keep)
		d.Integer(m, "keep", 1, 1000, &keep)
		c.Audit.Keep = int(keep)
	}
	if f, ok := top["health"]; ok {
		m := d.Mapping(f.Value, f.Path, "socket", "socket_group", "address", "token_file", "allow_remote")
		if s, ok := m["socket"]; ok && s.Value.Tag == "!!str" && s.Value.Value == "" {
			c.Health.Socket = "" // explicitly off: TCP only
		} else {
			d.path(m, "socket", dir, &c.Health.Socket)
		}
		d.Str(m, "socket_group", &c.Health.SocketGroup)
		d.Str(m, "address", &c.Health.Address)
		d.path(m, "token_file", dir, &c.Health.TokenFile)
		d.Boolean(m, "allow_remote", &c.Health.AllowRemote)
		if a, ok := m["address"]; ok {
			d.healthAddress(a, c.Health)
			if c.Health.TokenFile == "" {
				d.Errorf(a.Value, a.Path, "a TCP health address needs health.token_file: any local user can reach a TCP port")
			}
		}
		if c.Health.Socket == "" && c.Health.Address == "" {
			d.Errorf(f.Value, f.Path, "health needs a socket or an address")
		}
	}
	d.Duration(top, "heartbeat_interval", time.Second, &c.HeartbeatInterval)
	if f, ok := top["watchers"]; ok {
		m := d.Mapping(f.Value, f.Path, TypeFile, TypeProcess, TypeNetwork)
		d.mechanism(m, TypeFile, &c.Watchers.File)
		d.mechanism(m, TypeProcess, &c.Watchers.Process)
		d.mechanism(m, TypeNetwork, &c.Watchers.Network)
	}
	if f, ok := top["rules"]; ok {
		c.Rules = d.rules(f)
		c.rules = f.Value
	}
	if f, ok := top["management"]; ok {
		d.management(f, dir, c)
	}
	d.checkStateOutsideRules(c)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *decoder) path(m map[string]rules.Field, key, dir string, dst *string) {
	var s string
	d.Str(m, key, &s)
	if s == "" {
		if f, ok := m[key]; ok && f.Value.Tag == "!!str" {
			d.Errorf(f.Value, f.Path, "must not be empty")
		}
		return
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(dir, s)
	}
	*dst = filepath.Clean(s)
}

func (d *decoder) transport(f rules.Field, dir string, t *Transport) {
	m := d.Mapping(f.Value, f.Path, "endpoint", "ca", "cert", "key", "server_name", "degraded_after")
	d.Str(m, "endpoint", &t.Endpoint)
	d.Duration(m, "degraded_after", time.Second, &t.DegradedAfter)
	d.Str(m, "server_name", &t.ServerName)
	for _, k := range []struct {
		key string
		dst *string
	}{{"ca", &t.CA}, {"cert", &t.Cert}, {"key", &t.Key}} {
		d.path(m, k.key, dir, k.dst)
		if *k.dst == "" {
			if t.Endpoint != "" {
				d.Errorf(f.Key, rules.Join(f.Path, k.key), "required when transport.endpoint is set")
			}
			continue
		}
		if _, err := os.Stat(*k.dst); err != nil {
			d.Errorf(m[k.key].Value, m[k.key].Path, "unreadable: %v", unwrapPathErr(err))
		}
	}
	if t.Endpoint != "" {
		if _, _, err := net.SplitHostPort(t.Endpoint); err != nil {
			d.Errorf(m["endpoint"].Value, m["endpoint"].Path, "want host:port, got %q", t.Endpoint)
		}
	}
}

func (d *decoder) management(f rules.Field, dir string, c *Config) {
	m := d.Mapping(f.Value, f.Path, "endpoint", "ca", "cert", "key", "server_name", "rules_file", "renew_before")
	g := &c.Management
	g.RenewBefore = DefaultRenewBefore
	d.Duration(m, "renew_before", time.Minute, &g.RenewBefore)
	d.Str(m, "endpoint", &g.Endpoint)
	d.Str(m, "server_name", &g.ServerName)
	d.path(m, "rules_file", dir, &g.RulesFile)
	if g.Endpoint == "" {
		return
	}
	if u, err := url.Parse(g.Endpoint); err != nil || u.Scheme != "wss" || u.Host == "" {
		d.Errorf(m["endpoint"].Value, m["endpoint"].Path, "want wss://host:port/path, got %q (management is mutual TLS only)", g.Endpoint)
	}
	for _, k := range []struct {
		key      string
		dst      *string
		fallback string
	}{{"ca", &g.CA, c.Transport.CA}, {"cert", &g.Cert, c.Transport.Cert}, {"key", &g.Key, c.Transport.Key}} {
		d.path(m, k.key, dir, k.dst)
		if *k.dst == "" {
			*k.dst = k.fallback
		}
		if *k.dst == "" {
			d.Errorf(f.Key, rules.Join(f.Path, k.key), "required when management.endpoint is set (or set transport.%s)", k.key)
			continue
		}
		if _, err := os.Stat(*k.dst); err != nil {
			d.Errorf(f.Key, rules.Join(f.Path, k.key), "%s unreadable: %v", *k.dst, unwrapPathErr(err))
		}
	}
	if g.ServerName == "" {
		g.ServerName = c.Transport.ServerName
	}
	if g.RulesFile == "" {
		g.RulesFile = filepath.Join(filepath.Dir(c.Spool.Path), "central-rules.yaml")
	}
}

func (d *decoder) healthAddress(f rules.Field, h Health) {
	host, port, err := net.SplitHostPort(h.Address)
	if err != nil || port == "" {
		d.Errorf(f.Value, f.Path, "want host:port, got %q", h.Address)
		return
	}
	if h.AllowRemote {
		return
	}
	if host == "localhost" {
		return
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		d.Errorf(f.Value, f.Path, "%q is not a loopback address; set health.allow_remote: true to expose health and metrics beyond this host", h.Address)
	}
}

func (d *decoder) mechanism(m map[string]rules.Field, kind string, dst *string) {
	d.Str(m, kind, dst)
	if *dst != "" && !slices.Contains(mechanisms[kind], *dst) {
		d.Errorf(m[kind].Value, m[kind].Path, "unknown %s mechanism %q (want one of %s, or empty for the best available)",
			kind, *dst, strings.Join(mechanisms[kind], ", "))
	}
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
