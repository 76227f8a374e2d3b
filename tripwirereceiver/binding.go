package tripwirereceiver

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// Rejection reasons, the `reason` attribute of the rejected-records metric.
const (
	reasonHostMismatch   = "host_mismatch"
	reasonForbiddenEvent = "forbidden_event"
	reasonMalformed      = "malformed"
)

// maxMessage bounds the partial-success message sent back to the agent.
const maxMessage = 512

// identity is who is on the other end of the connection, from the verified
// client certificate.
type identity struct {
	host     string // certificate CN
	address  string // peer IP
	notAfter string // RFC 3339
}

// verdict is what bindAndValidate refused in one request.
type verdict struct {
	rejected int
	byReason map[string]int
	first    string // why the first refused record was refused
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
//     the certificate's (the whole resource: a claim of another identity
//     says the agent is misconfigured or compromised, so none of what it
//     says under that identity is believed), and likewise a record whose own
//     host.name attribute claims another host;
//   - stamps the certificate's identity on each remaining resource:
//     host.name = CN, client.address, tripwire.client.cert_not_after;
//   - drops records that do not decode into a valid event, or that are
//     central-only events (audit chain breaks are raised by the collector,
//     never accepted from an agent).
//
// Records are numbered in request order, across resources and scopes.
func bindAndValidate(ld plog.Logs, id identity) verdict {
	var v verdict
	index := 0
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		res := rl.Resource().Attributes()
		if claimed, ok := res.Get(event.ResourceHostName); ok && !strings.EqualFold(claimed.AsString(), id.host) {
			err := fmt.Errorf("permission denied: resource %s %q is not the client certificate's host %q",
				event.ResourceHostName, claimed.AsString(), id.host)
			for i := 0; i < rl.ScopeLogs().Len(); i++ {
				for j := 0; j < rl.ScopeLogs().At(i).LogRecords().Len(); j++ {
					v.reject(index, "", reasonHostMismatch, err)
					index++
				}
			}
			return true
		}
		res.PutStr(event.ResourceHostName, id.host)
		res.PutStr(event.ResourceClientAddress, id.address)
		res.PutStr(event.ResourceClientCertNotAfter, id.notAfter)

		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				i := index
				index++
				if claimed, ok := lr.Attributes().Get(event.ResourceHostName); ok && !strings.EqualFold(claimed.AsString(), id.host) {
					v.reject(i, "", reasonHostMismatch, fmt.Errorf("permission denied: attribute %s %q is not the client certificate's host %q",
						event.ResourceHostName, claimed.AsString(), id.host))
					return true
				}
				e, err := event.FromLogRecord(lr)
				if err == nil {
					err = e.Validate()
				}
				what := describe(lr, e)
				if err != nil {
					v.reject(i, what, reasonFor(err), err)
					return true
				}
				if e.Type() == event.TypeAudit {
					v.reject(i, what, reasonForbiddenEvent, fmt.Errorf("%s events are raised by the collector, not accepted from agents", e.Name))
					return true
				}
				return false
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	return v
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
