package plugin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tripwire-sec/tripwire/contract"
)

// triageRow is a triage change's row of a stream frame.
type triageRow struct {
	id, host, state, assignee, by string
}

// triageRows reads the rows of fr, failing on a row that is not a triage
// change.
func triageRows(t *testing.T, fr *data.Frame) []triageRow {
	t.Helper()
	field := func(name string) *data.Field {
		f, _ := fr.FieldByName(name)
		if f == nil {
			t.Fatalf("frame lacks %s", name)
		}
		return f
	}
	str := func(f *data.Field, i int) string {
		if p := f.At(i).(*string); p != nil {
			return *p
		}
		return ""
	}
	out := make([]triageRow, fr.Rows())
	for i := range out {
		if !field("triage_changed").At(i).(bool) {
			t.Fatalf("row %d (%s) is not a triage change", i, field("alert_id").At(i))
		}
		out[i] = triageRow{field("alert_id").At(i).(string), field("host").At(i).(string),
			str(field("triage_state"), i), str(field("triage_assignee"), i), str(field("triage_updated_by"), i)}
	}
	return out
}

// nextTriage collects n triage rows from frames.
func nextTriage(t *testing.T, frames <-chan *data.Frame, n int) []triageRow {
	t.Helper()
	var got []triageRow
	for len(got) < n {
		got = append(got, triageRows(t, nextFrame(t, frames))...)
	}
	if len(got) != n {
		t.Fatalf("got %d triage rows, want %d: %v", len(got), n, got)
	}
	return got
}

// TestLiveStreamsTriageChanges: a triage change, single or bulk, reaches the
// Live page's channels whose filter the alert matches, as an update with the
// stored state, assignee and user; a forged notification naming no stored
// alert delivers nothing; a dashboard's alerts channel gets no update rows.
func TestLiveStreamsTriageChanges(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := seedAlerts()
	live := e.stream(t, "live")
	web := e.stream(t, "live/host=web-01")
	alerts := e.stream(t, "alerts")
	e.waitSubscribers(t, 3)

	// One alert, acknowledged by alice: web-01's and the unfiltered view.
	a := all[0] // web-01
	if code, body := e.send(t, "POST", "/api/v1/alerts/"+a.id+"/triage?host="+a.host, "Editor", "alice",
		`{"state":"ACKNOWLEDGED"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	want := triageRow{a.id, a.host, TriageAcknowledged, "", "alice"}
	for _, frames := range []<-chan *data.Frame{live, web} {
		if got := nextTriage(t, frames, 1); got[0] != want {
			t.Fatalf("got %+v, want %+v", got[0], want)
		}
	}

	// A forged notification naming an alert that is not stored, and one
	// that is not the contract's shape: nothing is delivered for them.
	e.exec(t, `SELECT pg_notify($1, $2)`, contract.TriageNotifyChannel,
		`{"alert_id":"0190a000-0000-7000-8000-999999999999","host_name":"web-01","event_time":"2026-01-01T00:00:00.000000Z"}`)
	e.exec(t, `SELECT pg_notify($1, $2)`, contract.TriageNotifyChannel, `[{"alert_id":"x"}]`)

	// A bulk assignment to carol of alerts on web-01, db-01 and mac-01 by
	// bob: the unfiltered view gets all three, web-01's only its own.
	bulk := `{"alerts":[`
	for i, b := range all[1:4] {
		if i > 0 {
			bulk += ","
		}
		bulk += `{"alert_id":"` + b.id + `","host_name":"` + b.host + `"}`
	}
	bulk += `],"assignee":"carol"}`
	if code, body := e.send(t, "POST", "/api/v1/alerts/triage", "Editor", "bob", bulk); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := nextTriage(t, live, 3)
	for i, b := range all[1:4] {
		if w := (triageRow{b.id, b.host, TriageOpen, "carol", "bob"}); got[i] != w {
			t.Errorf("bulk row %d: %+v, want %+v", i, got[i], w)
		}
	}
	if got := nextTriage(t, web, 1); got[0] != (triageRow{all[3].id, "web-01", TriageOpen, "carol", "bob"}) {
		t.Errorf("web-01's view got %+v", got[0])
	}
	if n := e.ds.feed.Malformed.Load(); n != 1 {
		t.Errorf("%d notifications counted malformed, want 1", n)
	}

	// An alert already delivered as new and then changed again is delivered
	// again: the feed's de-duplication is for new alerts only.
	fresh := a
	fresh.id, fresh.seq, fresh.ago = "0190a000-0000-7000-8000-000000000100", 100, 0
	e.notifyAlert(t, fresh)
	for _, frames := range []<-chan *data.Frame{live, alerts} {
		fr := nextFrame(t, frames)
		if ids := frameIDs(fr); len(ids) != 1 || ids[0] != fresh.id {
			t.Fatalf("new alert: got %v", ids)
		}
		f, _ := fr.FieldByName("triage_changed")
		// A dashboard's frame keeps its query frame's schema.
		if frames == alerts && (f != nil || len(fr.Fields) != len(alertTableFrame("alerts", nil).Fields)) {
			t.Fatal("the alerts channel's frame has triage fields")
		}
		if frames == live && (f == nil || f.At(0).(bool)) {
			t.Fatal("a new alert's row is marked a triage change")
		}
	}
	nextFrame(t, web) // web-01's copy of the new alert
	for _, state := range []string{TriageAcknowledged, TriageOpen} {
		if code, body := e.send(t, "POST", "/api/v1/alerts/"+fresh.id+"/triage?host=web-01", "Editor", "alice",
			`{"state":"`+state+`"}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if got := nextTriage(t, live, 1); got[0] != (triageRow{fresh.id, "web-01", state, "", "alice"}) {
			t.Fatalf("got %+v", got[0])
		}
	}

	// The dashboard's channel got none of the changes: its next row is the
	// next new alert.
	next := fresh
	next.id, next.seq = "0190a000-0000-7000-8000-000000000101", 101
	e.notifyAlert(t, next)
	if ids := frameIDs(nextFrame(t, alerts)); len(ids) != 1 || ids[0] != next.id {
		t.Fatalf("alerts channel got %v, want only %s", ids, next.id)
	}
	select {
	case fr := <-alerts:
		t.Fatalf("alerts channel got more: %v", frameIDs(fr))
	case <-time.After(200 * time.Millisecond):
	}
}

// TestLiveTriageSurvivesListenerLoss: a triage change committed while the
// feed's LISTEN connection is down reaches the Live view once it is back,
// replayed from alert_triage.updated_at.
func TestLiveTriageSurvivesListenerLoss(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	a := seedAlerts()[0]
	// Triaged before the feed started listening: not replayed.
	if code, body := e.send(t, "POST", "/api/v1/alerts/"+seedAlerts()[3].id+"/triage?host=web-01", "Editor", "bob",
		`{"note":"old news"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	time.Sleep(triageReplaySlack / 60) // updated_at strictly before listening
	before := time.Now()
	live := e.stream(t, "live")
	e.waitSubscribers(t, 1)
	// Past triageReplaySlack: the replay starts after the old note.
	e.exec(t, `UPDATE alert_triage SET updated_at = updated_at - interval '1 hour' WHERE updated_by = 'bob'`)
	var killed int
	if err := e.conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE query LIKE 'LISTEN %' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	if code, body := e.send(t, "POST", "/api/v1/alerts/"+a.id+"/triage?host=web-01", "Editor", "alice",
		`{"state":"ACKNOWLEDGED","assignee":"alice"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := nextTriage(t, live, 1)
	if w := (triageRow{a.id, "web-01", TriageAcknowledged, "alice", "alice"}); got[0] != w {
		t.Fatalf("got %+v, want %+v", got[0], w)
	}
	// The same change may come twice (live and replayed): harmless, a
	// viewer updates the row in place. Nothing else comes.
	deadline := time.After(time.Second)
	for {
		select {
		case fr := <-live:
			if rows := triageRows(t, fr); len(rows) != 1 || rows[0].id != a.id {
				t.Fatalf("after the change got %+v", rows)
			}
			continue
		case <-deadline:
		}
		break
	}
	// The replay query itself: the change made while disconnected, not the
	// old note.
	replayed, err := e.ds.store.TriagedSince(t.Context(), before.Add(-time.Second), 10)
	if err != nil || len(replayed) != 1 || replayed[0].AlertID != a.id || replayed[0].Triage.State != TriageAcknowledged {
		t.Fatalf("TriagedSince: %+v, %v", replayed, err)
	}
}

// TestTwoBackendsEveryTriageChange: with two plugin backends (two Grafana
// replicas, each with its own LISTEN), a change made through one reaches
// the Live views of both.
func TestTwoBackendsEveryTriageChange(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	second := e.secondBackend(t)
	views := []<-chan *data.Frame{e.stream(t, "live"), second.stream(t, "live")}
	e.waitSubscribers(t, 1)
	second.waitSubscribers(t, 1)
	all := seedAlerts()
	for i, b := range []*env{e, second} {
		a := all[i]
		if code, body := b.send(t, "POST", "/api/v1/alerts/"+a.id+"/triage?host="+a.host, "Editor", "alice",
			`{"state":"ACKNOWLEDGED"}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		for j, v := range views {
			if got := nextTriage(t, v, 1); got[0] != (triageRow{a.id, a.host, TriageAcknowledged, "", "alice"}) {
				t.Fatalf("change through backend %d, seen on backend %d: %+v", i, j, got[0])
			}
		}
	}
}

// TestLiveBulkOfMaxBulk: a bulk change of the most alerts one request may
// name reaches the Live view as one update per alert, each with the new
// state (the feed re-reads the bulk's notifications together). The time
// from the request to the last row is logged, not asserted.
func TestLiveBulkOfMaxBulk(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	refs := make([]string, maxBulk)
	for i := range refs {
		a := seedAlerts()[0]
		a.id, a.seq = fmt.Sprintf("0190d000-0000-7000-8000-%012d", i), int64(5000+i)
		e.insertAlert(t, a)
		refs[i] = `{"alert_id":"` + a.id + `","host_name":"web-01"}`
	}
	live := e.stream(t, "live")
	e.waitSubscribers(t, 1)
	start := time.Now()
	if code, body := e.send(t, "POST", "/api/v1/alerts/triage", "Editor", "bob",
		`{"alerts":[`+strings.Join(refs, ",")+`],"state":"ACKNOWLEDGED"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	committed := time.Since(start)
	seen := map[string]bool{}
	for len(seen) < maxBulk {
		for _, r := range triageRows(t, nextFrame(t, live)) {
			if seen[r.id] || r.state != TriageAcknowledged || r.by != "bob" || !strings.HasPrefix(r.id, "0190d000-") {
				t.Fatalf("row %+v (seen before: %v)", r, seen[r.id])
			}
			seen[r.id] = true
		}
	}
	t.Logf("bulk of %d: committed %v after the request, last row %v after it", maxBulk, committed, time.Since(start))
}
