package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Pseudo-keys of the canonical form for the record fields that are not
// attributes.
const (
	keyName         = "event.name"
	keySeverity     = "severity_text"
	keyTime         = "time_unix_nano"
	keyObservedTime = "observed_time_unix_nano"
)

// Canonical is the byte form of an event that the audit chain hashes:
// compact JSON of every present attribute except the audit hashes, plus the
// event name, severity and both times, with keys in byte order, integers in
// decimal, and strings escaped only where JSON requires it ('"', '\\' and
// bytes below 0x20 as \u00XX, lowercase). It depends on nothing but the
// values, so the collector recomputes it from the OTLP record alone, and it
// is valid JSON, so the audit log stores it as the entry's payload.
//
// It is defined for valid events; an invalid UTF-8 byte is written as \ufffd.
func (e *Event) Canonical() []byte { return e.AppendCanonical(make([]byte, 0, 1024)) }

// canonicalKey is one key of the canonical form, with its quoted prefix.
type canonicalKey struct {
	prefix []byte // "key":
	get    func(*Event) (value, bool)
	part   part
}

// canonicalKeys are the hashed attributes and the record pseudo-keys, in
// byte order of the key, so encoding needs no sort.
var canonicalKeys = func() []canonicalKey {
	type named struct {
		key  string
		get  func(*Event) (value, bool)
		part part
	}
	always := func(get func(*Event) value) func(*Event) (value, bool) {
		return func(e *Event) (value, bool) { return get(e), true }
	}
	keys := []named{
		{keyName, always(func(e *Event) value { return value{kind: kindString, s: string(e.Name)} }), partCore},
		{keySeverity, always(func(e *Event) value { return value{kind: kindString, s: e.Severity.String()} }), partCore},
		{keyTime, always(func(e *Event) value { return value{kind: kindInt, i: unixNano(e.Time)} }), partCore},
		{keyObservedTime, always(func(e *Event) value { return value{kind: kindInt, i: unixNano(e.ObservedTime)} }), partCore},
	}
	for i := range fields {
		if fields[i].hashed() {
			keys = append(keys, named{fields[i].key, fields[i].get, fields[i].part})
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].key < keys[j].key })
	out := make([]canonicalKey, len(keys))
	for i, k := range keys {
		out[i] = canonicalKey{prefix: append(appendString(nil, k.key), ':'), get: k.get, part: k.part}
	}
	return out
}()

// AppendCanonical appends Canonical to dst.
func (e *Event) AppendCanonical(dst []byte) []byte {
	dst = append(dst, '{')
	sep := false
	has := e.parts()
	for i := range canonicalKeys {
		k := &canonicalKeys[i]
		if !has[k.part] {
			continue
		}
		v, present := k.get(e)
		if !present {
			continue
		}
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, k.prefix...)
		switch v.kind {
		case kindString:
			dst = appendString(dst, v.s)
		case kindInt:
			dst = strconv.AppendInt(dst, v.i, 10)
		case kindBool:
			dst = strconv.AppendBool(dst, v.b)
		case kindStrings:
			dst = append(dst, '[')
			for i, s := range v.ss {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, s)
			}
			dst = append(dst, ']')
		}
	}
	return append(dst, '}')
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// ParseCanonical decodes the canonical form (an audit-log payload) back into
// an event. It accepts any JSON object with the schema's keys and types; keys
// it does not know are errors, since the payload was written by TripWire.
func ParseCanonical(b []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding canonical event: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding canonical event: trailing data")
	}
	e := &Event{}
	// Name first: tripwire.type is checked against it.
	name, _ := m[keyName].(string)
	e.Name = Name(name)
	for k, raw := range m {
		var err error
		switch k {
		case keyName:
			if _, isStr := raw.(string); !isStr {
				err = fmt.Errorf("%w: %s wants string", ErrWrongKind, k)
			}
		case keySeverity:
			s, isStr := raw.(string)
			if !isStr {
				err = fmt.Errorf("%w: %s wants string", ErrWrongKind, k)
			} else if s != "" {
				e.Severity, err = ParseSeverity(s)
			}
		case keyTime, keyObservedTime:
			var n int64
			if n, err = jsonInt(k, raw); err == nil && n != 0 {
				t := time.Unix(0, n).UTC()
				if k == keyTime {
					e.Time = t
				} else {
					e.ObservedTime = t
				}
			}
		default:
			f := fieldByKey[k]
			if f == nil {
				return nil, fmt.Errorf("decoding canonical event: unknown key %q", k)
			}
			var v value
			if v, err = jsonValue(f, raw); err == nil {
				err = setField(e, f, v)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("decoding canonical event: %w", err)
		}
	}
	return e, nil
}

func jsonInt(key string, raw any) (int64, error) {
	n, isNum := raw.(json.Number)
	if !isNum {
		return 0, fmt.Errorf("%w: %s wants int", ErrWrongKind, key)
	}
	i, err := n.Int64()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrBadValue, key, err)
	}
	return i, nil
}

func jsonValue(f *field, raw any) (value, error) {
	v := value{kind: f.kind}
	var isKind bool
	switch f.kind {
	case kindString:
		v.s, isKind = raw.(string)
	case kindBool:
		v.b, isKind = raw.(bool)
	case kindInt:
		var err error
		v.i, err = jsonInt(f.key, raw)
		return v, err
	case kindStrings:
		var arr []any
		if arr, isKind = raw.([]any); isKind {
			v.ss = make([]string, len(arr))
			for i, a := range arr {
				if v.ss[i], isKind = a.(string); !isKind {
					break
				}
			}
		}
	}
	if !isKind {
		return v, fmt.Errorf("%w: %s wants %s", ErrWrongKind, f.key, f.kind)
	}
	return v, nil
}

func setField(e *Event, f *field, v value) error {
	if err := f.set(e, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadValue, f.key, err)
	}
	return nil
}
