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

// TriageNotifyChannel is the PostgreSQL channel tripwire_triage NOTIFYs on
// when a triage change to an alert commits (migrations/0019_live_triage.sql);
// the Grafana plugin's live feed LISTENs on it to update the alerts it shows.
const TriageNotifyChannel = "tripwire_triage_changes"

// TriageNotification names the alert a triage change was made to: the key
// the plugin re-reads the alert and its triage by. It carries no state: a
// notification is only a hint, the stored row is what is shown.
type TriageNotification struct {
	AlertID   string `json:"alert_id"`
	HostName  string `json:"host_name"`
	EventTime string `json:"event_time"` // NotifyTimeLayout
}

// DecodeTriageNotification reads a triage NOTIFY payload: one JSON object
// with an alert id, a host and an event time.
func DecodeTriageNotification(payload []byte) (TriageNotification, error) {
	var n TriageNotification
	if err := json.Unmarshal(payload, &n); err != nil {
		return n, fmt.Errorf("decoding triage notification: %w", err)
	}
	if n.AlertID == "" || n.HostName == "" || n.EventTime == "" {
		return n, errors.New("decoding triage notification: alert_id, host_name and event_time are required")
	}
	return n, nil
}
