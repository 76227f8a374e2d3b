package event

import (
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// kind is the OTLP value type of an attribute.
type kind uint8

const (
	kindString kind = iota + 1
	kindInt
	kindBool
	kindStrings // an array of strings
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindInt:
		return "int"
	case kindBool:
		return "bool"
	case kindStrings:
		return "string array"
	}
	return "unknown"
}

// part is the optional part of an Event a field belongs to; partCore
// fields are the Event's own.
type part uint8

const (
	partCore part = iota
	partProcess
	partFile
	partNetwork
	partAgent
	partAudit
	parts
)

// inPart assigns fs to part p.
func inPart(p part, fs ...field) []field {
	for i := range fs {
		fs[i].part = p
	}
	return fs
}

// value is one attribute value; kind says which member is set.
type value struct {
	kind kind
	s    string
	i    int64
	b    bool
	ss   []string
}

func str(s string) (value, bool)     { return value{kind: kindString, s: s}, s != "" }
func strs(ss []string) (value, bool) { return value{kind: kindStrings, ss: ss}, len(ss) > 0 }
func num(i int64) (value, bool)      { return value{kind: kindInt, i: i}, i != 0 }
func flag(b bool) (value, bool)      { return value{kind: kindBool, b: b}, b }

// field maps one attribute key onto the Event. The table below is the schema:
// the OTLP mapping, the canonical encoding, the JSON payload and validation all
// walk it, so a new attribute is added here and nowhere else.
type field struct {
	key  string
	kind kind
	max  int // longest accepted string (each, in an array), in bytes
	part part
	get  func(*Event) (value, bool)
	set  func(*Event, value) error
}

// Keys of attributes other code names: semantic-convention keys where one
// exists (go.opentelemetry.io/otel/semconv), tripwire.* for the rest.
const (
	KeyAlertID   = string(semconv.LogRecordUIDKey)     // the alert's UUIDv7
	KeyRule      = string(semconv.SecurityRuleNameKey) // the rule that tripped
	KeySeq       = "tripwire.seq"
	KeyType      = "tripwire.type"
	KeyMechanism = "tripwire.watcher.mechanism"
	// KeyMissing lists the attribute keys the mechanism cannot fill.
	KeyMissing  = "tripwire.missing_fields"
	KeyPrevHash = "tripwire.audit.prev_hash"
	KeyHash     = "tripwire.audit.hash"
	// KeyTruncated lists the attributes cut to their limit (see [Event.Bound]).
	KeyTruncated = "tripwire.truncated"

	KeyFilePath           = string(semconv.FilePathKey)
	KeyProcessPID         = string(semconv.ProcessPIDKey)
	KeyProcessParentPID   = string(semconv.ProcessParentPIDKey)
	KeyProcessExecutable  = string(semconv.ProcessExecutablePathKey)
	KeyProcessCommandLine = string(semconv.ProcessCommandLineKey)
	KeyProcessUserID      = string(semconv.ProcessUserIDKey) // an int on the wire
	KeyProcessUserName    = string(semconv.ProcessUserNameKey)
	// KeyProcessCgroupID is the cgroup v2 id the kernel reports. Not
	// process.linux.cgroup: that is the /proc/PID/cgroup path, which the
	// eBPF watchers never see.
	KeyProcessCgroupID = "tripwire.process.cgroup_id"
	// KeyCertNotAfter is when the agent's client certificate expires
	// (RFC 3339), on tripwire.agent.cert_expiry and heartbeats.
	KeyCertNotAfter    = string(semconv.TLSClientNotAfterKey)
	KeyDestinationPort = string(semconv.DestinationPortKey)
)

const (
	maxShort = 256       // names, addresses, ids
	maxPath  = 4096      // PATH_MAX
	maxLong  = 64 * 1024 // command lines, ancestry
)

func proc(e *Event) *Process {
	if e.Process == nil {
		e.Process = &Process{}
	}
	return e.Process
}

func file(e *Event) *File {
	if e.File == nil {
		e.File = &File{}
	}
	return e.File
}

func netw(e *Event) *Network {
	if e.Network == nil {
		e.Network = &Network{}
	}
	return e.Network
}

func agent(e *Event) *Agent {
	if e.Agent == nil {
		e.Agent = &Agent{}
	}
	return e.Agent
}

func audit(e *Event) *AuditBreak {
	if e.Audit == nil {
		e.Audit = &AuditBreak{}
	}
	return e.Audit
}

func sField(key string, max int, get func(*Event) string, set func(*Event, string)) field {
	return field{key: key, kind: kindString, max: max,
		get: func(e *Event) (value, bool) { return str(get(e)) },
		set: func(e *Event, v value) error { set(e, v.s); return nil }}
}

func iField(key string, get func(*Event) int64, set func(*Event, int64)) field {
	return field{key: key, kind: kindInt,
		get: func(e *Event) (value, bool) { return num(get(e)) },
		set: func(e *Event, v value) error { set(e, v.i); return nil }}
}

func lField(key string, max int, get func(*Event) []string, set func(*Event, []string)) field {
	return field{key: key, kind: kindStrings, max: max,
		get: func(e *Event) (value, bool) { return strs(get(e)) },
		set: func(e *Event, v value) error { set(e, v.ss); return nil }}
}

func bField(key string, get func(*Event) bool, set func(*Event, bool)) field {
	return field{key: key, kind: kindBool,
		get: func(e *Event) (value, bool) { return flag(get(e)) },
		set: func(e *Event, v value) error { set(e, v.b); return nil }}
}

// Getters for optional parts: a nil part reads as zero. They hand out a
// pointer, to the part or to a shared zero value that nothing writes,
// rather than a copy of the whole part for each field read.
var (
	noProcess Process
	noFile    File
	noNetwork Network
	noAgent   Agent
	noAudit   AuditBreak
)

func pOf(e *Event) *Process {
	if e.Process == nil {
		return &noProcess
	}
	return e.Process
}
func fOf(e *Event) *File {
	if e.File == nil {
		return &noFile
	}
	return e.File
}
func nOf(e *Event) *Network {
	if e.Network == nil {
		return &noNetwork
	}
	return e.Network
}
func aOf(e *Event) *Agent {
	if e.Agent == nil {
		return &noAgent
	}
	return e.Agent
}
func bOf(e *Event) *AuditBreak {
	if e.Audit == nil {
		return &noAudit
	}
	return e.Audit
}

// fields is the schema, grouped here by the part of the Event each field
// lives in; it is sorted by key once at init, and canonical encoding relies
// on that.
var fields = slices.Concat([]field{
	{key: KeyAlertID, kind: kindString, max: 36,
		get: func(e *Event) (value, bool) {
			if e.AlertID == uuid.Nil {
				return value{kind: kindString}, false
			}
			return str(e.AlertID.String())
		},
		set: func(e *Event, v value) error {
			id, err := uuid.Parse(v.s)
			if err != nil {
				return err
			}
			e.AlertID = id
			return nil
		}},
	{key: KeySeq, kind: kindInt,
		get: func(e *Event) (value, bool) { return num(int64(e.Seq)) },
		set: func(e *Event, v value) error {
			if v.i < 0 {
				return errNegative
			}
			e.Seq = uint64(v.i)
			return nil
		}},
	{key: KeyType, kind: kindString, max: maxShort,
		// Derived from the name; decoding only checks it agrees.
		get: func(e *Event) (value, bool) { return str(string(e.Type())) },
		set: func(e *Event, v value) error {
			if e.Name != "" && Type(v.s) != e.Type() {
				return errTypeMismatch
			}
			return nil
		}},
	sField(KeyRule, maxShort, func(e *Event) string { return e.Rule }, func(e *Event, s string) { e.Rule = s }),
	sField(KeyMechanism, maxShort, func(e *Event) string { return e.Mechanism }, func(e *Event, s string) { e.Mechanism = s }),
	lField(KeyMissing, maxShort, func(e *Event) []string { return e.Missing }, func(e *Event, ss []string) { e.Missing = ss }),
	iField("tripwire.count", func(e *Event) int64 { return e.Count }, func(e *Event, i int64) { e.Count = i }),
	bField("tripwire.count.lower_bound", func(e *Event) bool { return e.CountLowerBound }, func(e *Event, b bool) { e.CountLowerBound = b }),
	lField(KeyTruncated, maxShort, func(e *Event) []string { return e.Truncated }, func(e *Event, ss []string) { e.Truncated = ss }),
}, inPart(partProcess,
	iField(KeyProcessPID, func(e *Event) int64 { return pOf(e).PID }, func(e *Event, i int64) { proc(e).PID = i }),
	iField(KeyProcessParentPID, func(e *Event) int64 { return pOf(e).PPID }, func(e *Event, i int64) { proc(e).PPID = i }),
	sField(KeyProcessExecutable, maxPath, func(e *Event) string { return pOf(e).ExecutablePath }, func(e *Event, s string) { proc(e).ExecutablePath = s }),
	sField(KeyProcessCommandLine, maxLong, func(e *Event) string { return pOf(e).CommandLine }, func(e *Event, s string) { proc(e).CommandLine = s }),
	bField("tripwire.process.args_truncated", func(e *Event) bool { return pOf(e).ArgsTruncated }, func(e *Event, b bool) { proc(e).ArgsTruncated = b }),
	sField(KeyProcessUserName, maxShort, func(e *Event) string { return pOf(e).UserName }, func(e *Event, s string) { proc(e).UserName = s }),
	// process.user.id is an int; the event keeps a string so that uid 0
	// (root) is not mistaken for "not known".
	field{key: KeyProcessUserID, kind: kindInt,
		get: func(e *Event) (value, bool) {
			uid, err := strconv.ParseInt(pOf(e).UserID, 10, 64)
			return value{kind: kindInt, i: uid}, err == nil
		},
		set: func(e *Event, v value) error { proc(e).UserID = strconv.FormatInt(v.i, 10); return nil }},
	iField(KeyProcessCgroupID, func(e *Event) int64 { return pOf(e).CgroupID }, func(e *Event, i int64) { proc(e).CgroupID = i }),
	sField("tripwire.process.ancestry", maxLong, func(e *Event) string { return pOf(e).Ancestry }, func(e *Event, s string) { proc(e).Ancestry = s }),
), inPart(partFile,
	sField(KeyFilePath, maxPath, func(e *Event) string { return fOf(e).Path }, func(e *Event, s string) { file(e).Path = s }),
	sField("tripwire.file.rename_to", maxPath, func(e *Event) string { return fOf(e).RenameTo }, func(e *Event, s string) { file(e).RenameTo = s }),
), inPart(partNetwork,
	sField(string(semconv.SourceAddressKey), maxShort, func(e *Event) string { return nOf(e).SourceAddress }, func(e *Event, s string) { netw(e).SourceAddress = s }),
	iField(string(semconv.SourcePortKey), func(e *Event) int64 { return nOf(e).SourcePort }, func(e *Event, i int64) { netw(e).SourcePort = i }),
	sField(string(semconv.DestinationAddressKey), maxShort, func(e *Event) string { return nOf(e).DestinationAddress }, func(e *Event, s string) { netw(e).DestinationAddress = s }),
	iField(KeyDestinationPort, func(e *Event) int64 { return nOf(e).DestinationPort }, func(e *Event, i int64) { netw(e).DestinationPort = i }),
	sField(string(semconv.NetworkTransportKey), maxShort, func(e *Event) string { return nOf(e).Transport }, func(e *Event, s string) { netw(e).Transport = s }),
	sField(string(semconv.NetworkTypeKey), maxShort, func(e *Event) string { return nOf(e).Type }, func(e *Event, s string) { netw(e).Type = s }),
	sField("tripwire.network.mode", maxShort, func(e *Event) string { return nOf(e).Mode }, func(e *Event, s string) { netw(e).Mode = s }),
	sField("tripwire.network.first_bytes", maxLong, func(e *Event) string { return nOf(e).FirstBytes }, func(e *Event, s string) { netw(e).FirstBytes = s }),
	bField("tripwire.network.source_unverified", func(e *Event) bool { return nOf(e).SourceUnverified }, func(e *Event, b bool) { netw(e).SourceUnverified = b }),
	iField("tripwire.network.sources", func(e *Event) int64 { return nOf(e).Sources }, func(e *Event, i int64) { netw(e).Sources = i }),
), inPart(partAgent,
	iField("tripwire.loss.count", func(e *Event) int64 { return aOf(e).LossCount }, func(e *Event, i int64) { agent(e).LossCount = i }),
	sField("tripwire.loss.reason", maxShort, func(e *Event) string { return aOf(e).LossReason }, func(e *Event, s string) { agent(e).LossReason = s }),
	iField("tripwire.loss.first_seq", func(e *Event) int64 { return aOf(e).LossFirstSeq }, func(e *Event, i int64) { agent(e).LossFirstSeq = i }),
	iField("tripwire.loss.last_seq", func(e *Event) int64 { return aOf(e).LossLastSeq }, func(e *Event, i int64) { agent(e).LossLastSeq = i }),
	sField("tripwire.agent.watchers", maxLong, func(e *Event) string { return aOf(e).Watchers }, func(e *Event, s string) { agent(e).Watchers = s }),
	sField("tripwire.agent.status", maxShort, func(e *Event) string { return aOf(e).Status }, func(e *Event, s string) { agent(e).Status = s }),
	sField("tripwire.agent.status_reasons", maxLong, func(e *Event) string { return aOf(e).Reasons }, func(e *Event, s string) { agent(e).Reasons = s }),
	sField("tripwire.agent.unserved_rules", maxLong, func(e *Event) string { return aOf(e).Unserved }, func(e *Event, s string) { agent(e).Unserved = s }),
	field{key: KeyCertNotAfter, kind: kindString, max: maxShort,
		get: func(e *Event) (value, bool) {
			t := aOf(e).CertNotAfter
			if t.IsZero() {
				return value{kind: kindString}, false
			}
			return str(t.UTC().Format(time.RFC3339))
		},
		set: func(e *Event, v value) error {
			t, err := time.Parse(time.RFC3339, v.s)
			if err != nil {
				return err
			}
			agent(e).CertNotAfter = t.UTC()
			return nil
		}},
), inPart(partAudit,
	sField("tripwire.audit.break.kind", maxShort, func(e *Event) string { return string(bOf(e).Kind) }, func(e *Event, s string) { audit(e).Kind = BreakKind(s) }),
	iField("tripwire.audit.break.expected_seq", func(e *Event) int64 { return bOf(e).ExpectedSeq }, func(e *Event, i int64) { audit(e).ExpectedSeq = i }),
	iField("tripwire.audit.break.got_seq", func(e *Event) int64 { return bOf(e).GotSeq }, func(e *Event, i int64) { audit(e).GotSeq = i }),
	sField("tripwire.audit.break.expected_hash", maxShort, func(e *Event) string { return bOf(e).ExpectedHash }, func(e *Event, s string) { audit(e).ExpectedHash = s }),
	sField("tripwire.audit.break.got_hash", maxShort, func(e *Event) string { return bOf(e).GotHash }, func(e *Event, s string) { audit(e).GotHash = s }),
), []field{
	// Not hashed: they are the chain itself.
	sField(KeyPrevHash, 64, func(e *Event) string { return e.PrevHash }, func(e *Event, s string) { e.PrevHash = s }),
	sField(KeyHash, 64, func(e *Event) string { return e.Hash }, func(e *Event, s string) { e.Hash = s }),
})

var fieldByKey = map[string]*field{}

func init() {
	sort.Slice(fields, func(i, j int) bool { return fields[i].key < fields[j].key })
	for i := range fields {
		fieldByKey[fields[i].key] = &fields[i]
	}
}

// Keys lists every attribute key of the schema, sorted.
func Keys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// hashed reports whether the attribute is part of Canonical.
func (f *field) hashed() bool { return f.key != KeyPrevHash && f.key != KeyHash }

// parts tells which parts the event has.
func (e *Event) parts() [parts]bool {
	return [parts]bool{partCore: true, partProcess: e.Process != nil, partFile: e.File != nil,
		partNetwork: e.Network != nil, partAgent: e.Agent != nil, partAudit: e.Audit != nil}
}

// each calls fn for every present attribute, in key order. The fields of
// a part the event does not have are skipped unread: a trip has about
// half the schema's fields.
func (e *Event) each(fn func(f *field, v value)) {
	has := e.parts()
	for i := range fields {
		if !has[fields[i].part] {
			continue
		}
		if v, present := fields[i].get(e); present {
			fn(&fields[i], v)
		}
	}
}
