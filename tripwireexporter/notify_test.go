package tripwireexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract/golden"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
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

func listen(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), "LISTEN "+event.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return conn
}

// notifications reads the notifications that arrive within a short while.
func notifications(t *testing.T, conn *pgx.Conn, want int) []map[string]any {
	t.Helper()
	var got []map[string]any
	for {
		wait := 10 * time.Second
		if len(got) >= want {
			wait = 300 * time.Millisecond // anything more than wanted?
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			return got
		}
		if len(n.Payload) >= 8000 {
			t.Fatalf("payload of %d bytes: PostgreSQL's limit is 8000", len(n.Payload))
		}
		// Every payload is an array of alerts, whichever path stored them.
		var batch []map[string]any
		if err := json.Unmarshal([]byte(n.Payload), &batch); err != nil || len(batch) == 0 {
			t.Fatalf("payload %q is not a non-empty JSON array: %v", n.Payload, err)
		}
		got = append(got, batch...)
	}
}

func TestNotifyBatchesStayUnderTheLimit(t *testing.T) {
	big := `{"summary":"` + strings.Repeat("x", 4000) + `"}`
	small := `{"a":1}`
	payloads := []string{big, small, big, big, small}
	batches := notifyBatches(payloads)
	var got []string
	for _, b := range batches {
		if len(b) > maxNotifyPayload {
			t.Errorf("batch of %d bytes", len(b))
		}
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(b), &arr); err != nil {
			t.Fatalf("batch %q: %v", b[:40], err)
		}
		for _, a := range arr {
			got = append(got, string(a))
		}
	}
	if !slices.Equal(got, payloads) || len(batches) != 3 {
		t.Errorf("%d batches carrying %d payloads, want 3 carrying the 5 in order", len(batches), len(got))
	}
	if notifyBatches(nil) != nil {
		t.Error("no payloads, yet a notification")
	}
}

// A file name of control characters must not push the NOTIFY payload over
// PostgreSQL's 8000-byte limit, which would fail the whole batch.
func TestHostileFileNameStillNotifies(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	feed := listen(t, dsn)
	a := newAgent(t, strings.Repeat("\x01", 255))
	ev := a.trip()
	ev.File.Path = "/tmp/" + strings.Repeat("\x01", 4000)
	ev.Process.ExecutablePath = "/tmp/" + strings.Repeat("\x02", 4000)
	ev.Rule = strings.Repeat("\x03", 256)
	push(t, e, a.logs(a.chained(ev)...))
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
	if got := notifications(t, feed, 1); len(got) != 1 {
		t.Errorf("%d notifications, want 1", len(got))
	}
}
