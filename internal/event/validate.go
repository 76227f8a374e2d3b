package event

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Sentinel errors; compare with errors.Is. A returned error names the key.
var (
	ErrMissingField = errors.New("missing field")
	ErrUnknownName  = errors.New("unknown event name")
	ErrOversize     = errors.New("oversize value")
	ErrInvalidUTF8  = errors.New("invalid UTF-8")
	ErrBadSeverity  = errors.New("bad severity")
	ErrWrongKind    = errors.New("wrong attribute type")
	ErrBadValue     = errors.New("bad value")

	errNegative     = errors.New("negative")
	errTypeMismatch = errors.New("tripwire.type does not match the event name")
)

// Validate checks an event before it enters the chain or storage: a known
// name, the fields every event needs, the fields its type needs, and sane
// values. It returns the first problem found.
func (e *Event) Validate() error {
	if e.Name.Type() == "" {
		return fmt.Errorf("%w %q", ErrUnknownName, e.Name)
	}
	if e.Severity < SeverityInfo || e.Severity > SeverityCritical {
		return fmt.Errorf("%w: %d", ErrBadSeverity, e.Severity)
	}
	if e.AlertID == uuid.Nil {
		return missing(KeyAlertID)
	}
	if e.AlertID.Version() != 7 {
		return fmt.Errorf("%w: %s must be a UUIDv7, got version %d", ErrBadValue, KeyAlertID, e.AlertID.Version())
	}
	if e.Seq == 0 && e.Chained() {
		return missing(KeySeq)
	}
	if e.Time.IsZero() {
		return missing("time")
	}
	if e.ObservedTime.IsZero() {
		return missing("observed_time")
	}
	for _, t := range []time.Time{e.Time, e.ObservedTime} {
		if t.Before(minTime) || t.After(maxTime) {
			return fmt.Errorf("%w: time %s outside %d..%d", ErrBadValue, t, minTime.Year(), maxTime.Year())
		}
	}
	if e.Agent != nil && !e.Agent.CertNotAfter.IsZero() && e.Agent.CertNotAfter.After(maxTime) {
		return fmt.Errorf("%w: %s %s after %d", ErrBadValue, KeyCertNotAfter, e.Agent.CertNotAfter, maxTime.Year())
	}
	switch e.Type() {
	case TypeFile:
		if e.File == nil || e.File.Path == "" {
			return missing(KeyFilePath)
		}
	case TypeProcess:
		if e.Process == nil || e.Process.ExecutablePath == "" {
			return missing(KeyProcessExecutable)
		}
	case TypeNetwork:
		if e.Network == nil || e.Network.DestinationPort == 0 {
			return missing(KeyDestinationPort)
		}
	}
	if e.Type() != TypeAgent && e.Type() != TypeAudit && e.Rule == "" {
		return missing(KeyRule)
	}
	var err error
	e.each(func(f *field, v value) {
		if err != nil {
			return
		}
		switch {
		case f.kind == kindString && len(v.s) > f.max:
			err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrOversize, f.key, len(v.s), f.max)
		case f.kind == kindString && !utf8.ValidString(v.s):
			err = fmt.Errorf("%w in %s", ErrInvalidUTF8, f.key)
		case f.kind == kindInt && v.i < 0:
			err = fmt.Errorf("%w: %s is negative", ErrBadValue, f.key)
		case f.kind == kindStrings && len(v.ss) > len(fields):
			err = fmt.Errorf("%w: %s has %d entries, limit %d", ErrOversize, f.key, len(v.ss), len(fields))
		}
	})
	if err != nil {
		return err
	}
	for _, k := range e.Missing {
		if fieldByKey[k] == nil {
			return fmt.Errorf("%w: %s names unknown key %q", ErrBadValue, KeyMissing, k)
		}
	}
	if !isHashOrEmpty(e.PrevHash) || !isHashOrEmpty(e.Hash) {
		return fmt.Errorf("%w: audit hashes must be 64 lowercase hex digits", ErrBadValue)
	}
	return nil
}

// Times are carried as int64 nanoseconds since 1970.
var (
	minTime = time.Unix(0, 1)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func missing(key string) error { return fmt.Errorf("%w: %s", ErrMissingField, key) }

func isHashOrEmpty(h string) bool {
	if h == "" {
		return true
	}
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !lowerHex[h[i]] {
			return false
		}
	}
	return true
}

// lowerHex holds the digits of a hash: one lookup per byte rather than two
// range tests (every event carries two hashes, checked twice centrally).
var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()
