package event

import (
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// CopyTo writes the event into an OTLP LogRecord (pdata), replacing what was
// there.
func (e *Event) CopyTo(lr plog.LogRecord) {
	lr.SetEventName(string(e.Name))
	lr.SetTimestamp(pcommon.NewTimestampFromTime(e.Time))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(e.ObservedTime))
	lr.SetSeverityNumber(plog.SeverityNumber(e.Severity.Number()))
	lr.SetSeverityText(e.Severity.String())
	lr.Body().SetStr(e.Summary())
	attrs := lr.Attributes()
	attrs.Clear()
	attrs.EnsureCapacity(16)
	e.each(func(f *field, v value) {
		switch v.kind {
		case kindString:
			attrs.PutStr(f.key, v.s)
		case kindInt:
			attrs.PutInt(f.key, v.i)
		case kindBool:
			attrs.PutBool(f.key, v.b)
		case kindStrings:
			s := attrs.PutEmptySlice(f.key)
			s.EnsureCapacity(len(v.ss))
			for _, x := range v.ss {
				s.AppendEmpty().SetStr(x)
			}
		}
	})
}

// FromLogRecord decodes an OTLP LogRecord (pdata). Attributes outside the
// schema are ignored (they are neither hashed nor stored); a schema attribute
// of the wrong type is an error naming it. The result is not validated: call
// Validate.
func FromLogRecord(lr plog.LogRecord) (*Event, error) {
	e := &Event{
		Name:         Name(lr.EventName()),
		Time:         tsTime(lr.Timestamp()),
		ObservedTime: tsTime(lr.ObservedTimestamp()),
	}
	var err error
	if e.Severity, err = recordSeverity(lr.SeverityText(), int32(lr.SeverityNumber())); err != nil {
		return nil, err
	}
	lr.Attributes().Range(func(k string, pv pcommon.Value) bool {
		f := fieldByKey[k]
		if f == nil {
			return true
		}
		v := value{kind: f.kind}
		var isKind bool
		switch f.kind {
		case kindString:
			v.s, isKind = pv.Str(), pv.Type() == pcommon.ValueTypeStr
		case kindInt:
			v.i, isKind = pv.Int(), pv.Type() == pcommon.ValueTypeInt
		case kindBool:
			v.b, isKind = pv.Bool(), pv.Type() == pcommon.ValueTypeBool
		case kindStrings:
			v.ss, isKind = strSlice(pv)
		}
		if !isKind {
			err = fmt.Errorf("%w: %s is %s, want %s", ErrWrongKind, k, pv.Type(), f.kind)
			return false
		}
		err = setField(e, f, v)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// strSlice reads an array attribute whose elements are all strings.
func strSlice(pv pcommon.Value) ([]string, bool) {
	if pv.Type() != pcommon.ValueTypeSlice {
		return nil, false
	}
	sl := pv.Slice()
	out := make([]string, sl.Len())
	for i := range out {
		if el := sl.At(i); el.Type() == pcommon.ValueTypeStr {
			out[i] = el.Str()
		} else {
			return nil, false
		}
	}
	return out, true
}

// recordSeverity reads a record's severity: text and number must agree; both
// absent is "unset" (Validate rejects it).
func recordSeverity(text string, number int32) (Severity, error) {
	if text == "" && number == 0 {
		return SeverityUnset, nil
	}
	sev, err := ParseSeverity(text)
	if err != nil {
		return SeverityUnset, err
	}
	if number != sev.Number() {
		return SeverityUnset, fmt.Errorf("%w: severity number %d does not match %s", ErrBadSeverity, number, sev)
	}
	return sev, nil
}

func tsTime(ts pcommon.Timestamp) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

// Summary is the human-readable body of the log record.
func (e *Event) Summary() string {
	p := pOf(e)
	who := ""
	if p.PID != 0 {
		who = fmt.Sprintf(" by pid %d", p.PID)
		if p.ExecutablePath != "" {
			who += " (" + p.ExecutablePath + ")"
		}
	}
	switch e.Type() {
	case TypeFile:
		return fmt.Sprintf("%s %s%s", e.Name, fOf(e).Path, who)
	case TypeProcess:
		return fmt.Sprintf("%s %s%s", e.Name, p.ExecutablePath, who)
	case TypeNetwork:
		n := nOf(e)
		return fmt.Sprintf("%s %s:%d -> port %d", e.Name, n.SourceAddress, n.SourcePort, n.DestinationPort)
	}
	return string(e.Name)
}
