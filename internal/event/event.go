// Package event is the one definition of a TripWire event: what a trip carries,
// how it maps to an OpenTelemetry LogRecord, how it is validated, and the
// canonical bytes the audit chain hashes.
//
// Start with [Event]. The agent builds one per trip, [Event.Validate]s it and
// writes it into a pdata LogRecord with [Event.CopyTo]; the collector decodes it with [FromLogRecord]
// and recomputes [Event.Canonical] to check the audit chain.
package event

import (
	"time"

	"github.com/google/uuid"
)

// Name is the OTLP EventName of a trip. Its second dot-separated segment is the
// event's [Type].
type Name string

// Event names. A file, process or network name is a trip; agent names describe
// the agent itself; audit names are raised centrally.
const (
	FileAccess        Name = "tripwire.file.access"
	FileModify        Name = "tripwire.file.modify"
	FileAttrib        Name = "tripwire.file.attrib"
	FileCreate        Name = "tripwire.file.create"
	FileDelete        Name = "tripwire.file.delete"
	FileRename        Name = "tripwire.file.rename"
	ProcessExec       Name = "tripwire.process.exec"
	NetworkConnection Name = "tripwire.network.connection"
	NetworkScan       Name = "tripwire.network.scan"
	AgentStart        Name = "tripwire.agent.start"
	AgentHeartbeat    Name = "tripwire.agent.heartbeat"
	AgentLoss         Name = "tripwire.agent.loss"
	AgentCertExpiry   Name = "tripwire.agent.cert_expiry"
	AgentStatus       Name = "tripwire.agent.status" // ONLINE ↔ DEGRADED, with the reasons
	AuditChainBreak   Name = "tripwire.audit.chain_break"
)

var knownNames = map[Name]Type{
	FileAccess: TypeFile, FileModify: TypeFile, FileAttrib: TypeFile,
	FileCreate: TypeFile, FileDelete: TypeFile, FileRename: TypeFile,
	ProcessExec:       TypeProcess,
	NetworkConnection: TypeNetwork, NetworkScan: TypeNetwork,
	AgentStart: TypeAgent, AgentHeartbeat: TypeAgent, AgentLoss: TypeAgent, AgentCertExpiry: TypeAgent,
	AgentStatus:     TypeAgent,
	AuditChainBreak: TypeAudit,
}

// Type groups event names: the explorer filters on it.
type Type string

const (
	TypeFile    Type = "file"
	TypeProcess Type = "process"
	TypeNetwork Type = "network"
	TypeAgent   Type = "agent"
	TypeAudit   Type = "audit"
)

// Type returns the type of a known name, or "" for an unknown one.
func (n Name) Type() Type { return knownNames[n] }

// Event is one trip (or one agent or audit event). Zero values mean "not
// known": a watcher that cannot fill a field leaves it zero and lists it in
// Missing.
type Event struct {
	Name         Name
	AlertID      uuid.UUID // UUIDv7, unique across hosts; storage is idempotent on it
	Seq          uint64    // per-host sequence, starts at 1, gap-free
	Severity     Severity
	Rule         string    // security_rule.name; empty for agent events
	Time         time.Time // when it happened (agent clock)
	ObservedTime time.Time // when the agent saw it
	Mechanism    string    // watcher mechanism: fanotify, fsnotify, ebpf, honeyport, sockdiag, ...
	Missing      []string  // attribute keys the mechanism cannot fill, sorted
	Count        int64     // identical trips coalesced into this one; 0 or 1 means one
	// CountLowerBound: the mechanism merges identical trips before the agent
	// sees them (fanotify, inotify), so Count (or 1) is at least, not exactly,
	// how many there were.
	CountLowerBound bool
	Truncated       []string // attribute keys Bound cut to their limit, sorted

	Process *Process // the actor, when known
	File    *File
	Network *Network
	Agent   *Agent
	Audit   *AuditBreak

	// PrevHash and Hash place the event in its host's audit chain. They are
	// carried with the event but are not part of Canonical.
	PrevHash string
	Hash     string
}

// Process describes a process: the actor of a trip, or the exec'd program.
type Process struct {
	PID            int64
	PPID           int64
	ExecutablePath string
	CommandLine    string
	ArgsTruncated  bool
	UserName       string
	UserID         string // a string, as in the semantic conventions: "0" is root
	CgroupID       int64
	Ancestry       string // "pid:exe <- pid:exe <- ...", parent first
}

// File describes the file a trip touched.
type File struct {
	Path     string
	RenameTo string // new path of a rename
}

// Network describes a connection or probe.
type Network struct {
	SourceAddress      string
	SourcePort         int64
	DestinationAddress string
	DestinationPort    int64
	Transport          string // tcp, udp
	Type               string // ipv4, ipv6
	Mode               string // observe, honeyport
	FirstBytes         string // Go-quoted prefix of what a honeyport client sent
	// SourceUnverified: the source address was not confirmed by a handshake
	// (UDP), so anyone could have forged it.
	SourceUnverified bool
	// Sources is the number of distinct source addresses of an aggregate
	// (tripwire.count probes from many sources, source.address empty).
	Sources int64
}

// Agent describes agent events: losses, heartbeats, certificate expiry.
type Agent struct {
	LossCount  int64
	LossReason string // spool_shed, kernel_overflow, ringbuf, ...
	// For spool_shed: the seq range shed, so the collector can tell an
	// accounted gap in the chain from tampering.
	LossFirstSeq int64
	LossLastSeq  int64
	Watchers     string // "file=fanotify,process=ebpf,network=ebpf"
	Status       string // ONLINE, DEGRADED
	CertNotAfter time.Time
	Unserved     string // rules the agent cannot serve, and why
	Reasons      string // why the agent is DEGRADED, "; "-separated
}

// AuditBreak describes a break found in a host's audit chain.
type AuditBreak struct {
	Kind         BreakKind
	ExpectedSeq  int64
	GotSeq       int64
	ExpectedHash string
	GotHash      string
}

// Type is the event's type, from its name.
func (e *Event) Type() Type { return e.Name.Type() }

// Chained reports whether the event goes through the host's audit chain and so
// carries a seq and hashes. Heartbeats do not: they are state, not history, and
// only update the host's row centrally.
func (e *Event) Chained() bool { return e.Name != AgentHeartbeat && e.Type() != TypeAudit }

// NewAlertID returns a fresh UUIDv7.
func NewAlertID() uuid.UUID { return uuid.Must(uuid.NewV7()) }
