package tripwireexporter

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tripwire-sec/tripwire/contract/golden"
	"github.com/tripwire-sec/tripwire/internal/event"
)

var update = flag.Bool("update", false, "rewrite contract/golden/notify.json")

// TestGoldenNotification pins the NOTIFY payload of two alerts, a chained
// trip and a central chain break (no seq), in contract/golden/notify.json,
// which the Grafana plugin's stream test feeds through pg_notify. With
// -update it rewrites the file.
func TestGoldenNotification(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	trip := &event.Event{Name: event.FileAccess, AlertID: uuid.MustParse("01a21904-949b-72cf-ab95-26add05021d9"),
		Severity: event.SeverityCritical, Rule: "shadow-read", Time: at, ObservedTime: at, Seq: 7, Mechanism: "fanotify",
		Process: &event.Process{PID: 4242, ExecutablePath: "/usr/bin/cat"}, File: &event.File{Path: "/etc/shadow \"x\" <é>"}}
	brk := &event.Event{Name: event.AuditChainBreak, AlertID: uuid.MustParse("01a21904-949b-72d2-a692-a711a6ecfd8d"),
		Severity: event.SeverityCritical, Time: at, ObservedTime: at,
		Audit: &event.AuditBreak{Kind: event.BreakGap, ExpectedSeq: 3, GotSeq: 7}}
	var rows alertRows
	host := dbUUID(uuid.MustParse("01a21904-949b-7000-8000-000000000001"))
	rows.add(host, "web-01", trip, trip.Summary(), trip.Canonical())
	rows.add(host, "web-01", brk, breakSummary("web-01", chainBreak{kind: brk.Audit.Kind, expectedSeq: 3, gotSeq: 7}), brk.Canonical())
	payloads, err := rows.payloads(at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	batches := notifyBatches(payloads)
	if len(batches) != 1 {
		t.Fatalf("%d notifications, want 1", len(batches))
	}
	got := []byte(batches[0] + "\n")
	const file = "../contract/golden/notify.json"
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := golden.Notify(); !bytes.Equal(got, want) && !*update {
		t.Fatalf("%s is stale (run this test with -update and commit it):\n got %s\nwant %s", file, got, want)
	}
}
