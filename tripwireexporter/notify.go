package tripwireexporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// notifyChannel is the channel of the live feed; the Grafana plugin LISTENs on it.
const notifyChannel = "tripwire_alerts"

// notifyPayload is the live feed's message, one per new alert row. The
// Grafana plugin decodes it; keep the two in step. event_detail is left out
// and the summary cut to 512 characters: PostgreSQL refuses a payload over
// 8000 bytes, and JSON escaping can make each character of a hostile file
// name six bytes.
type notifyPayload struct {
	AlertID      string `json:"alert_id"`
	EventTime    string `json:"event_time"`  // RFC 3339, UTC, microseconds: the row's exact value
	ReceivedAt   string `json:"received_at"` // likewise
	HostName     string `json:"host_name"`
	EventName    string `json:"event_name"`
	TripwireType string `json:"tripwire_type"`
	RuleName     string `json:"rule_name"`
	Severity     string `json:"severity"`
	Seq          *int64 `json:"seq"` // null for central events
	Summary      string `json:"summary"`
}

// payloadTime formats a stored time as the payload carries it.
const payloadTime = "2006-01-02T15:04:05.000000Z"

const maxPayloadSummary = 512

func (a *alertRows) payloads(received time.Time) ([]string, error) {
	out := make([]string, len(a.ids))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range a.ids {
		p := notifyPayload{
			AlertID: uuid.UUID(a.ids[i].Bytes).String(), EventTime: a.times[i].UTC().Format(payloadTime), ReceivedAt: received.UTC().Format(payloadTime),
			HostName: a.hostNames[i], EventName: a.names[i], TripwireType: a.types[i], RuleName: a.rules[i],
			Severity: a.sevs[i], Summary: a.summaries[i],
		}
		if a.seqs[i] != 0 {
			p.Seq = &a.seqs[i]
		}
		if r := []rune(p.Summary); len(r) > maxPayloadSummary {
			p.Summary = string(r[:maxPayloadSummary])
		}
		buf.Reset()
		if err := enc.Encode(&p); err != nil {
			return nil, fmt.Errorf("encoding notification: %w", err)
		}
		out[i] = string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
	return out, nil
}

// maxNotifyPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxNotifyPayload = 7900

// notifyBatches packs alert payloads into JSON arrays of up to
// maxNotifyPayload bytes: one notification per row cost a ninth of the
// exporter's time (BenchmarkExport). A payload is at most about 3.5 kB (the
// summary is cut), so every array holds at least one.
func notifyBatches(payloads []string) []string {
	var out []string
	var cur strings.Builder
	for _, p := range payloads {
		if cur.Len() > 0 && cur.Len()+1+len(p)+1 > maxNotifyPayload {
			cur.WriteByte(']')
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() == 0 {
			cur.WriteByte('[')
		} else {
			cur.WriteByte(',')
		}
		cur.WriteString(p)
	}
	if cur.Len() > 0 {
		cur.WriteByte(']')
		out = append(out, cur.String())
	}
	return out
}
