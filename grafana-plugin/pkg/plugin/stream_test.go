package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/golden"
)

func TestParseStreamPath(t *testing.T) {
	good := map[string]StreamFilter{
		"alerts":                               {},
		"alerts/host=web-01/severity=CRITICAL": {Hosts: []string{"web-01"}, Severities: []string{"CRITICAL"}},
		"alerts/type=file/type=process/rule=nc-exec":      {Types: []string{"file", "process"}, Rules: []string{"nc-exec"}},
		"alerts/host=db-01/host=web-01/severity=WARN":     {Hosts: []string{"db-01", "web-01"}, Severities: []string{"WARN"}},
		"alerts/rule=read=20of=20.aws=2Fcredentials=3D1":  {Rules: []string{"read of .aws/credentials=1"}},
		"alerts/severity=CRITICAL/severity=WARN":          {Severities: []string{"CRITICAL", "WARN"}},
		"alerts/host=h=C3=A9te.example/rule=ssh_keys-dir": {Hosts: []string{"h\u00e9te.example"}, Rules: []string{"ssh_keys-dir"}},
		"live":                   {Triage: true},
		"live/severity=CRITICAL": {Severities: []string{"CRITICAL"}, Triage: true},
	}
	for path, want := range good {
		got, err := ParseStreamPath(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %+v, want %+v", path, got, want)
		}
		if back := encodedPath(want.canonical()); back != path {
			t.Errorf("encoding %+v: %s, want %s", want, back, path)
		}
	}
	for _, bad := range []string{"", "hosts", "alerts/", "alerts/host", "alerts/host=", "alerts/severity=critical",
		"alerts/type=x", "alerts/colour=red", "alerts/host=a,b", "alerts/host=a=00b", "alerts/host=a=2",
		"alerts/host=a=2d", "alerts/host=a=2D", "alerts/host=a=4X", "alerts/host=b/host=a", "alerts/host=a/host=a",
		"alerts/severity=WARN/host=a", "alerts/f=0123", "live/", "Live", "live/host=b/host=a"} {
		if _, err := ParseStreamPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubscribeStream(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	sub := func(path, role string) *backend.SubscribeStreamResponse {
		r, err := e.ds.SubscribeStream(t.Context(), &backend.SubscribeStreamRequest{
			PluginContext: backend.PluginContext{User: &backend.User{Role: role}}, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, bad := range []string{"alerts/colour=red", "alerts/severity=WARN,CRITICAL", "alerts/f=00000000000000000000000000000000"} {
		if r := sub(bad, "Viewer"); r.Status != backend.SubscribeStreamStatusNotFound {
			t.Errorf("%s: %v", bad, r.Status)
		}
	}
	// Grafana let the user through, so datasources:query is granted: the
	// org role, None for an RBAC-only grant, is not compared again.
	for _, role := range []string{"Viewer", "None"} {
		r := sub("alerts/severity=CRITICAL", role)
		if r.Status != backend.SubscribeStreamStatusOK || r.InitialData == nil {
			t.Fatalf("%s: %+v", role, r)
		}
		// Schema only: Grafana's StreamingDataFrame appends subscribe-time
		// rows to the panel's query frame, and again on every reconnect.
		var fr data.Frame
		if err := json.Unmarshal(r.InitialData.Data(), &fr); err != nil {
			t.Fatal(err)
		}
		if n, _ := fr.RowLen(); n != 0 {
			t.Fatalf("initial data carries %d rows; they would duplicate the panel's query rows", n)
		}
		want := alertTableFrame("alerts", nil)
		if len(fr.Fields) != len(want.Fields) {
			t.Fatalf("schema has %d fields, want %d", len(fr.Fields), len(want.Fields))
		}
		for i, f := range fr.Fields {
			if f.Name != want.Fields[i].Name || f.Type() != want.Fields[i].Type() {
				t.Errorf("field %d: %s %v, want %s %v", i, f.Name, f.Type(), want.Fields[i].Name, want.Fields[i].Type())
			}
		}
	}
	// The Live page's channel adds the triage fields after the table's.
	r := sub("live/severity=CRITICAL", "Viewer")
	var fr data.Frame
	if r.Status != backend.SubscribeStreamStatusOK || json.Unmarshal(r.InitialData.Data(), &fr) != nil {
		t.Fatalf("live: %+v", r)
	}
	if want := alertStreamFrame(nil, true); len(fr.Fields) != len(want.Fields) || fr.Fields[len(fr.Fields)-1].Name != "triage_updated_at" {
		t.Fatalf("live schema has %d fields, want %d", len(fr.Fields), len(want.Fields))
	}
	pub, err := e.ds.PublishStream(t.Context(), &backend.PublishStreamRequest{
		PluginContext: backend.PluginContext{User: &backend.User{Role: "Admin"}}, Path: "alerts"})
	if err != nil || pub.Status != backend.PublishStreamStatusPermissionDenied {
		t.Fatalf("publish: %+v %v", pub, err)
	}
}

// packetSink collects what RunStream sends.
type packetSink chan *backend.StreamPacket

func (p packetSink) Send(pk *backend.StreamPacket) error { p <- pk; return nil }

// stream runs RunStream on path until the test ends and returns its frames.
func (e *env) stream(t *testing.T, path string) <-chan *data.Frame {
	t.Helper()
	sink := make(packetSink, 64)
	frames := make(chan *data.Frame, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.ds.RunStream(ctx, &backend.RunStreamRequest{Path: path}, backend.NewStreamSender(sink))
	}()
	go func() {
		for pk := range sink {
			var fr data.Frame
			if err := json.Unmarshal(pk.Data, &fr); err != nil {
				t.Errorf("stream packet: %v", err)
				continue
			}
			frames <- &fr
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunStream: %v", err)
		}
		close(sink)
	})
	return frames
}

// waitSubscribers polls until the feed listens and has n subscribers.
func (e *env) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.ds.feed.mu.Lock()
		got := len(e.ds.feed.subs)
		e.ds.feed.mu.Unlock()
		select {
		case <-e.ds.feed.Ready():
			if got >= n {
				return
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("feed not ready with %d subscribers after 30 s (have %d)", n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// notifyAlert inserts an alert and NOTIFYs it in one transaction, as the
// tripwire exporter does, so the notification is delivered at commit.
func (e *env) notifyAlert(t testing.TB, a seedAlert) {
	t.Helper()
	e.notifyAlerts(t, false, a)
}

// notifyAlerts commits the alerts in one transaction and NOTIFYs them, as
// the exporter does: packed into one array, or one object each.
func (e *env) notifyAlerts(t testing.TB, packed bool, alerts ...seedAlert) {
	t.Helper()
	if err := e.notifyAlertsOn(e.conn, packed, alerts...); err != nil {
		t.Fatal(err)
	}
}

// notifyAlertsOn is notifyAlerts on a given connection (one per writer, as
// each collector has its own).
func (e *env) notifyAlertsOn(conn *pgx.Conn, packed bool, alerts ...seedAlert) error {
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var payloads []contract.Notification
	for _, a := range alerts {
		at := e.now.Add(-a.ago)
		var received time.Time
		err = tx.QueryRow(ctx, `INSERT INTO alerts (alert_id, event_time, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail)
SELECT $1, $2, host_id, host_name, $4, $5, $6, $7, $8, $9, '{}' FROM hosts WHERE host_name = $3 RETURNING received_at`,
			a.id, at, a.host, a.event, a.typ, a.rule, a.severity, a.seq, a.summary).Scan(&received)
		if err != nil {
			return err
		}
		payloads = append(payloads, contract.Notification{
			AlertID: a.id, EventTime: at.UTC().Format(contract.NotifyTimeLayout), ReceivedAt: received.UTC().Format(contract.NotifyTimeLayout),
			HostName: a.host, EventName: a.event, TripwireType: a.typ, RuleName: a.rule,
			Severity: a.severity, Seq: &a.seq, Summary: a.summary,
		})
	}
	var notes [][]byte
	if packed {
		b, _ := json.Marshal(payloads)
		notes = append(notes, b)
	} else {
		for _, p := range payloads {
			b, _ := json.Marshal([]contract.Notification{p})
			notes = append(notes, b)
		}
	}
	for _, n := range notes {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, contract.NotifyChannel, string(n)); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func nextFrame(t *testing.T, frames <-chan *data.Frame) *data.Frame {
	t.Helper()
	select {
	case fr := <-frames:
		return fr
	case <-time.After(30 * time.Second):
		t.Fatal("no frame within 30 s")
		return nil
	}
}

func frameIDs(fr *data.Frame) []string {
	f, _ := fr.FieldByName("alert_id")
	var ids []string
	for i := 0; i < f.Len(); i++ {
		ids = append(ids, f.At(i).(string))
	}
	return ids
}

func TestRunStreamDeliversNotifiedInserts(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := e.stream(t, "alerts")
	critical := e.stream(t, "alerts/host=web-01/severity=CRITICAL")
	e.waitSubscribers(t, 2)

	warn := seedAlert{id: "0190b000-0000-7000-8000-000000000001", host: "web-01", typ: "file",
		event: "tripwire.file.access", rule: "shadow-read", severity: "WARN", summary: "warn one", seq: 100}
	crit := warn
	crit.id, crit.severity, crit.summary, crit.seq = "0190b000-0000-7000-8000-000000000002", "CRITICAL", "crit one", 101
	e.notifyAlert(t, warn)
	e.notifyAlert(t, crit)

	var got []string
	for len(got) < 2 {
		fr := nextFrame(t, all)
		got = append(got, frameIDs(fr)...)
		if sev, _ := fr.FieldByName("severity"); sev == nil {
			t.Fatal("frame lacks severity")
		}
	}
	if got[0] != warn.id || got[1] != crit.id {
		t.Fatalf("unfiltered stream got %v", got)
	}
	// The filtered channel skips the WARN alert.
	if ids := frameIDs(nextFrame(t, critical)); len(ids) != 1 || ids[0] != crit.id {
		t.Fatalf("filtered stream got %v", ids)
	}

	// A malformed notification (an array is malformed as a whole when one
	// entry is not an alert; a lone object is not the contract's shape) is
	// counted and skipped.
	for i, bad := range []string{`not json`, `[{"alert_id":"x"},{"severity":"CRITICAL"}]`, `{"alert_id":"x"}`} {
		e.exec(t, `SELECT pg_notify($1, $2)`, contract.NotifyChannel, bad)
		next := crit
		next.id, next.seq = fmt.Sprintf("0190b000-0000-7000-8000-%012d", 3+i), int64(102+i)
		e.notifyAlert(t, next)
		if ids := frameIDs(nextFrame(t, critical)); ids[0] != next.id {
			t.Fatalf("after malformed %q: %v", bad, ids)
		}
		if n := e.ds.feed.Malformed.Load(); n != int64(i+1) {
			t.Fatalf("malformed count %d, want %d", n, i+1)
		}
	}

	// Alerts packed into one notification, as the exporter sends a batch,
	// arrive one by one and in order.
	fifth, sixth := crit, crit
	fifth.id, fifth.seq = "0190b000-0000-7000-8000-000000000010", 110
	sixth.id, sixth.seq = "0190b000-0000-7000-8000-000000000011", 111
	e.notifyAlerts(t, true, fifth, sixth)
	var packed []string
	for len(packed) < 2 {
		packed = append(packed, frameIDs(nextFrame(t, critical))...)
	}
	if len(packed) != 2 || packed[0] != fifth.id || packed[1] != sixth.id {
		t.Fatalf("packed notification gave %v", packed)
	}
}

// When the LISTEN connection dies, the feed reconnects and replays what was
// committed meanwhile, so a subscriber misses nothing and sees nothing twice.
func TestRunStreamSurvivesListenerLoss(t *testing.T) {
	for _, notifyFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("notified_before_loss=%v", notifyFirst), func(t *testing.T) {
			testListenerLoss(t, notifyFirst)
		})
	}
}

func testListenerLoss(t *testing.T, notifyFirst bool) {
	e := newEnv(t)
	e.seed(t)
	frames := e.stream(t, "alerts")
	e.waitSubscribers(t, 1)
	a := seedAlert{id: "0190c000-0000-7000-8000-000000000001", host: "web-01", typ: "file",
		event: "tripwire.file.access", rule: "shadow-read", severity: "CRITICAL", summary: "before", seq: 200}
	if notifyFirst {
		e.notifyAlert(t, a)
		if ids := frameIDs(nextFrame(t, frames)); ids[0] != a.id {
			t.Fatalf("got %v", ids)
		}
	}
	var killed int
	if err := e.conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE query LIKE 'LISTEN %' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	var want []string
	for i := range 3 {
		b := a
		b.id, b.summary, b.seq = fmt.Sprintf("0190c000-0000-7000-8000-00000000001%d", i), "during", int64(201+i)
		e.notifyAlert(t, b)
		want = append(want, b.id)
	}
	var got []string
	for len(got) < len(want) {
		got = append(got, frameIDs(nextFrame(t, frames))...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reconnect got %v, want %v", got, want)
	}
	select {
	case fr := <-frames:
		t.Fatalf("duplicate frame %v", frameIDs(fr))
	case <-time.After(500 * time.Millisecond):
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.ds.feed.Reconnects.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.ds.feed.Reconnects.Load() < 1 {
		t.Fatal("no reconnect counted")
	}
}

// The payload the exporter's test pinned in contract/golden reaches a
// subscriber field for field: the two modules agree on the NOTIFY shape.
func TestRunStreamReadsTheExportersPayload(t *testing.T) {
	want, err := contract.DecodeNotifications(golden.Notify())
	if err != nil {
		t.Fatalf("contract/golden/notify.json: %v", err)
	}
	e := newEnv(t)
	e.seed(t)
	frames := e.stream(t, "alerts")
	e.waitSubscribers(t, 1)
	// The feed delivers stored rows only: store the ones the payload names.
	for _, w := range want {
		e.exec(t, `INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail)
SELECT $1, $2, $3, host_id, host_name, $5, $6, $7, $8, $9, $10, '{}' FROM hosts WHERE host_name = $4`,
			w.AlertID, w.EventTime, w.ReceivedAt, w.HostName, w.EventName, w.TripwireType, w.RuleName, w.Severity, w.Seq, w.Summary)
	}
	e.exec(t, `SELECT pg_notify($1, $2)`, contract.NotifyChannel, string(golden.Notify()))
	var got []Alert
	for len(got) < len(want) {
		got = append(got, frameAlerts(t, nextFrame(t, frames))...)
	}
	if n := e.ds.feed.Malformed.Load(); n != 0 {
		t.Fatalf("%d notifications counted malformed", n)
	}
	for i, w := range want {
		g := got[i]
		if g.AlertID != w.AlertID || g.HostName != w.HostName || g.EventName != w.EventName || g.Type != w.TripwireType ||
			g.Rule != w.RuleName || g.Severity != w.Severity || g.Summary != w.Summary ||
			g.EventTime.UTC().Format(contract.NotifyTimeLayout) != w.EventTime || (g.Seq == nil) != (w.Seq == nil) {
			t.Errorf("alert %d: got %+v, want %+v", i, g, w)
		}
	}
}

// frameAlerts reads alerts back from an alertTableFrame.
func frameAlerts(t *testing.T, fr *data.Frame) []Alert {
	t.Helper()
	out := make([]Alert, fr.Rows())
	for i := range out {
		a := &out[i]
		a.EventTime = fr.Fields[0].At(i).(time.Time)
		a.ReceivedAt = fr.Fields[1].At(i).(time.Time)
		a.HostName, a.Type, a.EventName = fr.Fields[2].At(i).(string), fr.Fields[3].At(i).(string), fr.Fields[4].At(i).(string)
		a.Rule, a.Severity = fr.Fields[5].At(i).(string), fr.Fields[6].At(i).(string)
		a.Seq = fr.Fields[7].At(i).(*int64)
		a.Summary, a.AlertID = fr.Fields[8].At(i).(string), fr.Fields[9].At(i).(string)
	}
	return out
}
