package contract

import (
	"encoding/json"
	"errors"
	"fmt"
)

// NotifyChannel is the PostgreSQL channel the tripwire exporter NOTIFYs on
// when alerts commit; the Grafana plugin LISTENs on it for the live feed.
const NotifyChannel = "tripwire_alerts"

// NotifyTimeLayout formats the times of a [Notification]: RFC 3339, UTC,
// microseconds, the stored row's exact value.
const NotifyTimeLayout = "2006-01-02T15:04:05.000000Z"

// Notification is one new alert row in a NOTIFY payload. Every payload is a
// JSON array of them: the exporter packs the alerts of a transaction into as
// few notifications as fit PostgreSQL's 8000-byte limit. event_detail is
// left out and the summary cut for the same limit.
type Notification struct {
	AlertID      string `json:"alert_id"`
	EventTime    string `json:"event_time"`  // NotifyTimeLayout
	ReceivedAt   string `json:"received_at"` // NotifyTimeLayout
	HostName     string `json:"host_name"`
	EventName    string `json:"event_name"`
	TripwireType string `json:"tripwire_type"`
	RuleName     string `json:"rule_name"`
	Severity     string `json:"severity"`
	Seq          *int64 `json:"seq"` // null for central events
	Summary      string `json:"summary"`
}

// DecodeNotifications reads a NOTIFY payload: a non-empty JSON array of
// notifications, each with an alert id.
func DecodeNotifications(payload []byte) ([]Notification, error) {
	var ns []Notification
	if err := json.Unmarshal(payload, &ns); err != nil {
		return nil, fmt.Errorf("decoding notification: %w", err)
	}
	if len(ns) == 0 {
		return nil, errors.New("decoding notification: empty array")
	}
	for i := range ns {
		if ns[i].AlertID == "" {
			return nil, fmt.Errorf("decoding notification: entry %d has no alert_id", i)
		}
	}
	return ns, nil
}
