package event

import "fmt"

// Severity is a trip's severity. Its OTLP form is both SeverityNumber and
// SeverityText.
type Severity int8

const (
	SeverityUnset Severity = iota
	SeverityInfo
	SeverityWarn
	SeverityCritical
)

var severityNames = [...]string{"", "INFO", "WARN", "CRITICAL"}

// OTLP SeverityNumber for each severity: INFO, WARN and FATAL (the highest
// range, since CRITICAL is TripWire's highest).
var severityNumbers = [...]int32{0, 9, 13, 21}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int8(s))
	}
	return severityNames[s]
}

// Number is the OTLP SeverityNumber.
func (s Severity) Number() int32 {
	if s < 0 || int(s) >= len(severityNumbers) {
		return 0
	}
	return severityNumbers[s]
}

// ParseSeverity parses INFO, WARN or CRITICAL.
func ParseSeverity(text string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && n == text {
			return Severity(i), nil
		}
	}
	return SeverityUnset, fmt.Errorf("%w %q: want INFO, WARN or CRITICAL", ErrBadSeverity, text)
}

// MarshalText makes severities readable in YAML and JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts INFO, WARN or CRITICAL.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
