package tripwirereceiver

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Rejection reasons, the `reason` attribute of the rejected-records metric.
const (
	reasonHostMismatch   = "host_mismatch"
	reasonForbiddenEvent = "forbidden_event"
	reasonMalformed      = "malformed"

	reasonDuplicateAttribute  = "duplicate_attribute"
	reasonUnknownAttribute    = "unknown_attribute"
	reasonAttributeNotAllowed = "attribute_not_allowed"
	reasonOversizeEvent       = "oversize_event"
)

// maxMessage bounds the partial-success message sent back to the agent.
const maxMessage = 512

// identity is who is on the other end of the connection, from the verified
// client certificate.
type identity struct {
	host     string // certificate CN
	address  string // peer IP
	notAfter string // RFC 3339
	serial   string // lowercase hex
}

// verdict is what bindAndValidate refused in one request.
type verdict struct {
	rejected             int
	droppedResourceAttrs int
	byReason             map[string]int
	first                string // why the first refused record was refused
	// The first host.name claimed that is not the certificate's, and why
	// it was refused: an identity refusal, recorded centrally.
	claimed, mismatch string
}

func (v *verdict) mismatched(claimed string, err error) {
	if v.claimed == "" {
		v.claimed, v.mismatch = claimed, err.Error()
	}
}

func (v *verdict) reject(index int, what, reason string, err error) {
	v.rejected++
	if v.byReason == nil {
		v.byReason = map[string]int{}
	}
	v.byReason[reason]++
	if v.first == "" {
		v.first = fmt.Sprintf("log record %d%s: %v", index, what, err)
	}
}

// message is the OTLP partial-success error message: how many, and the first
// reason precisely.
func (v *verdict) message(total int) string {
	m := fmt.Sprintf("rejected %d of %d log records; first: %s", v.rejected, total, v.first)
	if len(m) > maxMessage {
		m = strings.ToValidUTF8(m[:maxMessage], "") + "..."
	}
	return m
}

// bindAndValidate is the host binding. In place, it
//   - drops every ResourceLogs whose resource claims a host.name other than
//     the certificate's, in any of its host.name keys (the whole resource: a
//     claim of another identity says the agent is misconfigured or
//     compromised, so none of what it says under that identity is believed),
//     and likewise a record whose own host.name attribute claims another
//     host;
//   - rebuilds each remaining resource from the allowlist: the certificate's
//     identity (host.name = CN, its not-after and serial; client.address goes on each record)
//     and the agent's descriptive attributes that are short, printable text,
//     each once; everything else is dropped;
//   - drops records that do not decode into a valid event, carry an
//     attribute twice, an attribute outside the schema or outside their
//     event type, whose canonical form exceeds maxEventBytes, or that are
//     central-only events (audit chain breaks are raised by the collector,
//     never accepted from an agent). A record-level host.name naming the
//     certificate's host is removed.
//
// Records are numbered in request order, across resources and scopes.
func bindAndValidate(ld plog.Logs, id identity, maxEventBytes int) verdict {
	var v verdict
	index := 0
	canon := make([]byte, 0, 4096)
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		res := rl.Resource().Attributes()
		if claimed, ok := foreignHostName(res, id.host); ok {
			err := fmt.Errorf("permission denied: resource %s %q is not the client certificate's host %q",
				event.ResourceHostName, claimed, id.host)
			v.mismatched(claimed, err)
			for i := 0; i < rl.ScopeLogs().Len(); i++ {
				for j := 0; j < rl.ScopeLogs().At(i).LogRecords().Len(); j++ {
					v.reject(index, "", reasonHostMismatch, err)
					index++
				}
			}
			return true
		}
		v.droppedResourceAttrs += rebuildResource(res, id)

		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			// Scope attributes mean nothing to TripWire; a consumer
			// downstream should not have to trust them.
			sl.Scope().Attributes().Clear()
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				i := index
				index++
				if claimed, ok := foreignHostName(lr.Attributes(), id.host); ok {
					err := fmt.Errorf("permission denied: attribute %s %q is not the client certificate's host %q",
						event.ResourceHostName, claimed, id.host)
					v.mismatched(claimed, err)
					v.reject(i, "", reasonHostMismatch, err)
					return true
				}
				lr.Attributes().Remove(event.ResourceHostName)
				e, err := event.FromLogRecord(lr)
				if err == nil {
					err = e.Validate()
				}
				// Described only when refused: formatting every accepted
				// record's name and id cost a tenth of the validation.
				if err != nil {
					v.reject(i, describe(lr, e), reasonFor(err), err)
					return true
				}
				if reason, err := checkSchemaKeys(lr.Attributes(), e); err != nil {
					v.reject(i, describe(lr, e), reason, err)
					return true
				}
				if e.Type() == event.TypeAudit {
					v.reject(i, describe(lr, e), reasonForbiddenEvent, fmt.Errorf("%s events are raised by the collector, not accepted from agents", e.Name))
					return true
				}
				canon = e.AppendCanonical(canon[:0])
				if len(canon) > maxEventBytes {
					v.reject(i, describe(lr, e), reasonOversizeEvent, fmt.Errorf("event is %d bytes in canonical form, limit %d", len(canon), maxEventBytes))
					return true
				}
				// Outside the event schema, so not hashed: the chain holds.
				lr.Attributes().PutStr(event.KeyClientAddress, id.address)
				return false
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	return v
}

// foreignHostName returns the first host.name value in m, among all its
// host.name keys, that is not host.
func foreignHostName(m pcommon.Map, host string) (string, bool) {
	var claimed string
	found := false
	m.Range(func(k string, val pcommon.Value) bool {
		if k == event.ResourceHostName && !strings.EqualFold(val.AsString(), host) {
			claimed, found = val.AsString(), true
			return false
		}
		return true
	})
	return claimed, found
}

// resourceAllowlist is what the receiver keeps of the agent's resource,
// with the characters each value may hold.
var resourceAllowlist = map[string]func(rune) bool{
	event.ResourceHostID:         isPrintable,
	event.ResourceOSType:         isToken, // a semantic-conventions enum value
	event.ResourceHostArch:       isToken,
	event.ResourceServiceName:    isPrintable,
	event.ResourceServiceVersion: isPrintable,
}

// maxResourceValue bounds a descriptive resource attribute, as the
// schema's short fields.
const maxResourceValue = 256

func isPrintable(r rune) bool { return unicode.IsPrint(r) }
func isToken(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
}

// rebuildResource replaces res with the certificate's identity and the
// allowlisted attributes that are valid, each key once (a key given twice is
// dropped: which one a consumer would read is not defined). It returns how
// many attributes it dropped.
func rebuildResource(res pcommon.Map, id identity) int {
	kept := map[string]string{}
	seen := map[string]int{}
	dropped := 0
	res.Range(func(k string, val pcommon.Value) bool {
		if k == event.ResourceHostName {
			return true // checked against the certificate, set below
		}
		seen[k]++
		ok := resourceAllowlist[k]
		s := val.Str()
		if ok == nil || val.Type() != pcommon.ValueTypeStr || s == "" || len(s) > maxResourceValue ||
			!utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !ok(r) }) >= 0 {
			dropped++
			return true
		}
		kept[k] = s
		return true
	})
	for k, n := range seen {
		if n > 1 {
			if _, ok := kept[k]; ok {
				delete(kept, k)
			}
			dropped += n - 1
		}
	}
	res.Clear()
	res.EnsureCapacity(len(kept) + 3)
	for _, k := range sortedKeys(kept) {
		res.PutStr(k, kept[k])
	}
	res.PutStr(event.ResourceHostName, id.host)
	res.PutStr(event.ResourceClientCertNotAfter, id.notAfter)
	res.PutStr(event.ResourceClientCertSerial, id.serial)
	return dropped
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkSchemaKeys refuses a record whose attributes are not exactly a set
// of schema keys of its event type: a key twice (consumers disagree on which
// copy counts), a key outside the schema (never hashed, yet passed on), or
// a field of another event type (a file trip carrying 64 KiB of agent
// watchers is stored, hashed and escaped for nothing).
func checkSchemaKeys(attrs pcommon.Map, e *event.Event) (string, error) {
	if attrs.Len() > len(schemaKeys) {
		return reasonDuplicateAttribute, fmt.Errorf("%d attributes, more than the schema's %d keys", attrs.Len(), len(schemaKeys))
	}
	var seen [64]string
	n := 0
	var reason string
	var err error
	attrs.Range(func(k string, _ pcommon.Value) bool {
		if !schemaKeys[k] {
			reason, err = reasonUnknownAttribute, fmt.Errorf("attribute %q is not in the TripWire event schema", truncate(k))
			return false
		}
		for _, s := range seen[:n] {
			if s == k {
				reason, err = reasonDuplicateAttribute, fmt.Errorf("attribute %q appears more than once", k)
				return false
			}
		}
		if n < len(seen) {
			seen[n] = k
			n++
		}
		return true
	})
	if err != nil {
		return reason, err
	}
	if part := foreignPart(e); part != "" {
		return reasonAttributeNotAllowed, fmt.Errorf("%s events carry no %s attributes", e.Type(), part)
	}
	return "", nil
}

var schemaKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range event.Keys() {
		m[k] = true
	}
	return m
}()

// foreignPart names a part of e that its event type does not have. Agent
// events describe the agent, trips describe an actor and what it touched.
func foreignPart(e *event.Event) string {
	t := e.Type()
	switch {
	case e.File != nil && t != event.TypeFile:
		return "file"
	case e.Network != nil && t != event.TypeNetwork:
		return "network"
	case e.Agent != nil && t != event.TypeAgent:
		return "agent"
	case e.Audit != nil && t != event.TypeAudit:
		return "audit"
	case e.Process != nil && t == event.TypeAgent:
		return "process"
	}
	return ""
}

func truncate(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}

// describe names a record in an error message: its event name and alert id
// when it has them.
func describe(lr plog.LogRecord, e *event.Event) string {
	name := lr.EventName()
	if name == "" {
		return ""
	}
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	if e != nil && e.AlertID.Version() == 7 {
		return fmt.Sprintf(" (%q, alert_id %s)", name, e.AlertID)
	}
	return fmt.Sprintf(" (%q)", name)
}

// reasonFor maps an event decoding or validation error onto a metric reason.
func reasonFor(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{event.ErrMissingField, "missing_field"},
		{event.ErrUnknownName, "unknown_event_name"},
		{event.ErrOversize, "oversize_value"},
		{event.ErrInvalidUTF8, "invalid_utf8"},
		{event.ErrBadSeverity, "bad_severity"},
		{event.ErrWrongKind, "wrong_attribute_type"},
		{event.ErrBadValue, "bad_value"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return reasonMalformed
}
