package tripwireexporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// maxPayloadSummary cuts an alert's summary in its notification:
// PostgreSQL refuses a payload over 8000 bytes, and JSON escaping can make
// each character of a hostile file name six bytes.
const maxPayloadSummary = 512

// payloads encodes each alert row as an event.Notification; notifyBatches
// then packs them into the arrays that are sent.
func (a *alertRows) payloads(received time.Time) ([]string, error) {
	out := make([]string, len(a.ids))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range a.ids {
		p := event.Notification{
			AlertID: uuid.UUID(a.ids[i].Bytes).String(), EventTime: a.times[i].UTC().Format(event.NotifyTimeLayout), ReceivedAt: received.UTC().Format(event.NotifyTimeLayout),
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
