package event

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/contract"
)

// Names of the tripwire receiver's refusal record; see contract.
const (
	IdentityRefused    = contract.IdentityRefused
	RefusalSource      = contract.RefusalSource
	KeyRefusedCertName = contract.RefusedCertName
	KeyRefusedClaimed  = contract.RefusedClaimedName
	KeyRefusedReason   = contract.RefusedReason
	KeyRefusedDetail   = contract.RefusedDetail
	KeyRefusedCount    = contract.RefusedCount
)

// Refusal is an identity the tripwire receiver refused: a certificate whose
// records claimed another host, or that was revoked or expired. It is not a
// TripWire event (no agent sent it, it is not chained): the receiver hands it
// on so that the exporter records the refused host centrally.
type Refusal struct {
	Time         time.Time
	CertName     string // the certificate's CN
	CertSerial   string // lowercase hex
	CertNotAfter time.Time
	ClaimedName  string // the host.name claimed, for a host mismatch
	Reason       string // the receiver's reason label
	Detail       string // the refusal's message
	Address      string // the peer's IP, when known
	Count        int64  // refusals this record stands for
}

// maxRefusalText bounds each text of a refusal: the claimed name and the
// message come from what a refused agent sent.
const maxRefusalText = 512

// AppendTo adds the refusal to ld as its own ResourceLogs, marked as the
// receiver's.
func (r *Refusal) AppendTo(ld plog.Logs) {
	rl := ld.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	res.PutStr(RefusalSource, IdentityRefused)
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName(IdentityRefused)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(r.Time))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(r.Time))
	lr.SetSeverityNumber(plog.SeverityNumberWarn)
	lr.SetSeverityText(SeverityWarn.String())
	lr.Body().SetStr(clip(r.Detail))
	a := lr.Attributes()
	a.PutStr(KeyRefusedCertName, clip(r.CertName))
	a.PutStr(KeyRefusedReason, clip(r.Reason))
	a.PutStr(KeyRefusedDetail, clip(r.Detail))
	a.PutInt(KeyRefusedCount, r.Count)
	if r.ClaimedName != "" {
		a.PutStr(KeyRefusedClaimed, clip(r.ClaimedName))
	}
	if r.CertSerial != "" {
		a.PutStr(ResourceClientCertSerial, r.CertSerial)
	}
	if !r.CertNotAfter.IsZero() {
		a.PutStr(ResourceClientCertNotAfter, r.CertNotAfter.UTC().Format(time.RFC3339))
	}
	if r.Address != "" {
		a.PutStr(KeyClientAddress, r.Address)
	}
}

// IsRefusal reports whether rl is a refusal record of the receiver.
func IsRefusal(rl plog.ResourceLogs) bool {
	v, ok := rl.Resource().Attributes().Get(RefusalSource)
	return ok && v.Str() == IdentityRefused
}

// RefusalsFrom decodes the refusals of a ResourceLogs that IsRefusal; a
// record without a certificate name or reason is an error.
func RefusalsFrom(rl plog.ResourceLogs) ([]Refusal, error) {
	var out []Refusal
	for i := 0; i < rl.ScopeLogs().Len(); i++ {
		lrs := rl.ScopeLogs().At(i).LogRecords()
		for j := 0; j < lrs.Len(); j++ {
			lr := lrs.At(j)
			a := lr.Attributes()
			str := func(k string) string {
				if v, ok := a.Get(k); ok && v.Type() == pcommon.ValueTypeStr {
					return clip(v.Str())
				}
				return ""
			}
			r := Refusal{
				Time:        tsTime(lr.Timestamp()),
				CertName:    str(KeyRefusedCertName),
				CertSerial:  str(ResourceClientCertSerial),
				ClaimedName: str(KeyRefusedClaimed),
				Reason:      str(KeyRefusedReason),
				Detail:      str(KeyRefusedDetail),
				Address:     str(KeyClientAddress),
				Count:       1,
			}
			if v, ok := a.Get(KeyRefusedCount); ok && v.Type() == pcommon.ValueTypeInt && v.Int() > 0 {
				r.Count = v.Int()
			}
			if t, err := time.Parse(time.RFC3339, str(ResourceClientCertNotAfter)); err == nil {
				r.CertNotAfter = t
			}
			if r.CertName == "" || r.Reason == "" {
				return out, fmt.Errorf("%s record without %s or %s", IdentityRefused, KeyRefusedCertName, KeyRefusedReason)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// clip makes s short, valid UTF-8 text without NUL.
func clip(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= maxRefusalText {
		return s
	}
	s = s[:maxRefusalText]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
