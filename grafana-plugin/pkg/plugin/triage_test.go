package plugin

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// send is call with a user login and a request body.
func (e *env) send(t testing.TB, method, path, role, login, body string) (int, []byte) {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	var user *backend.User
	if role != "" {
		user = &backend.User{Login: login, Role: role}
	}
	req := &backend.CallResourceRequest{
		PluginContext: backend.PluginContext{User: user, DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{UID: "tw"}},
		Path:          strings.TrimPrefix(u.EscapedPath(), "/"),
		URL:           strings.TrimPrefix(path, "/"),
		Method:        method,
		Body:          []byte(body),
	}
	var resp *backend.CallResourceResponse
	err = e.ds.CallResource(context.Background(), req, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error {
		resp = r
		return nil
	}))
	if err != nil || resp == nil {
		t.Fatalf("%s %s: %v (response %v)", method, path, err, resp)
	}
	return resp.Status, resp.Body
}

const triagePath = "/api/v1/alerts/0190a000-0000-7000-8000-000000000001/triage"

// TestTriageRoles: a Viewer reads triage but cannot change it (403); an
// Editor or Admin can; bad bodies are 400s that change nothing.
func TestTriageRoles(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	// The same alert id on two hosts: a change must name the host.
	shared := seedAlerts()[0]
	shared.host = "mac-01"
	e.insertAlert(t, shared)

	ack := `{"state":"ACKNOWLEDGED"}`
	for _, c := range []struct {
		method, path, role, login, body string
		want                            int
		wantBody                        string
	}{
		{"GET", triagePath + "?host=web-01", "Viewer", "vic", "", 200, `"state":"OPEN"`},
		{"GET", triagePath, "Viewer", "vic", "", 409, "host="},
		{"POST", triagePath + "?host=web-01", "Viewer", "vic", ack, 403, "Editor"},
		{"POST", triagePath + "?host=web-01", "None", "nobody", ack, 403, "Editor"},
		{"POST", triagePath + "?host=web-01", "", "", ack, 403, "Editor"},
		{"POST", triagePath + "?host=web-01", "Editor", "", ack, 403, "no Grafana user"},
		{"PUT", triagePath + "?host=web-01", "Admin", "root", ack, 405, ""},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", ``, 400, "body"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{}`, 400, "nothing to change"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{"state":"acknowledged"}`, 400, "state"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{"state":"ACKNOWLEDGED","owner":"x"}`, 400, "owner"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{"note":"   "}`, 400, "note"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{"note":"` + strings.Repeat("x", maxNoteLen+1) + `"}`, 400, "note"},
		{"POST", triagePath + "?host=web-01", "Editor", "ed", `{"assignee":"a\u0000b"}`, 400, "assignee"},
		{"POST", triagePath + "?host=web-01&x=1", "Editor", "ed", ack, 400, "unknown parameter"},
		{"POST", "/api/v1/alerts/not-a-uuid/triage", "Editor", "ed", ack, 400, "UUID"},
		{"POST", "/api/v1/alerts/0190a000-0000-7000-8000-999999999999/triage", "Editor", "ed", ack, 404, ""},
		{"POST", triagePath, "Editor", "ed", ack, 409, "host="},
		{"GET", triagePath + "?host=web-01", "Viewer", "vic", "", 200, `"history":[]`}, // nothing above changed it
		{"POST", triagePath + "?host=web-01", "Editor", "ed", ack, 200, `"updated_by":"ed"`},
		{"POST", triagePath + "?host=mac-01", "Admin", "root", `{"note":"the other host's copy"}`, 200, `"updated_by":"root"`},
	} {
		code, body := e.send(t, c.method, c.path, c.role, c.login, c.body)
		if code != c.want || !strings.Contains(string(body), c.wantBody) {
			t.Errorf("%s %s as %q (%s): %d %.200s, want %d with %q", c.method, c.path, c.role, c.body, code, body, c.want, c.wantBody)
		}
	}
	var n int
	if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM alert_triage_history`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d history rows (%v), want 2: one per accepted change", n, err)
	}
}

// TestTriageAttribution: every change is recorded with the Grafana user of
// its request; a change to the value already there records nothing.
func TestTriageAttribution(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	path := triagePath + "?host=web-01"
	steps := []struct{ role, login, body string }{
		{"Editor", "alice", `{"state":"ACKNOWLEDGED","note":"shadow read by backup job?"}`},
		{"Editor", "alice", `{"state":"ACKNOWLEDGED"}`}, // already acknowledged: nothing recorded
		{"Admin", "bob", `{"assignee":"carol"}`},
		{"Editor", "carol", `{"state":"OPEN","note":"not the backup job"}`},
		{"Editor", "carol", `{"assignee":""}`},
	}
	for _, s := range steps {
		if code, body := e.send(t, "POST", path, s.role, s.login, s.body); code != 200 {
			t.Fatalf("%s %s: %d %s", s.login, s.body, code, body)
		}
	}
	code, body := e.send(t, "GET", path, "Viewer", "vic", "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := decode[AlertTriage](t, body)
	if got.State != TriageOpen || got.Assignee != nil || got.UpdatedBy == nil || *got.UpdatedBy != "carol" {
		t.Errorf("triage %+v", got.Triage)
	}
	type entry struct{ actor, action, value string }
	var history []entry
	for _, h := range got.History {
		v := ""
		for _, p := range []*string{h.State, h.Assignee, h.Note} {
			if p != nil {
				v = *p
			}
		}
		history = append(history, entry{h.Actor, h.Action, v})
		if time.Since(h.At) > time.Minute {
			t.Errorf("entry at %s", h.At)
		}
	}
	want := []entry{
		{"alice", "state", TriageAcknowledged}, {"alice", "note", "shadow read by backup job?"},
		{"bob", "assign", "carol"},
		{"carol", "state", TriageOpen}, {"carol", "note", "not the backup job"},
		{"carol", "assign", ""},
	}
	if len(history) != len(want) {
		t.Fatalf("history %v, want %v", history, want)
	}
	for i := range want {
		if history[i] != want[i] {
			t.Errorf("history[%d] = %v, want %v", i, history[i], want[i])
		}
	}
	// The alert itself, and the list, carry the state.
	_, body = e.send(t, "GET", "/api/v1/alerts/0190a000-0000-7000-8000-000000000001?host=web-01", "Viewer", "vic", "")
	if a := decode[Alert](t, body); a.Triage == nil || a.Triage.State != TriageOpen || a.Triage.UpdatedBy == nil {
		t.Errorf("alert triage %+v", a.Triage)
	}
}

// ack acknowledges the seeded alert number i (1-based) as user.
func (e *env) ack(t *testing.T, i int, user string, extra string) {
	t.Helper()
	a := seedAlerts()[i-1]
	code, body := e.send(t, "POST", "/api/v1/alerts/"+a.id+"/triage?host="+a.host, "Editor", user, `{"state":"ACKNOWLEDGED"`+extra+`}`)
	if code != 200 {
		t.Fatalf("acknowledging %d: %d %s", i, code, body)
	}
}

// TestAlertsFilterByTriage: the list filters by state and assignee, with
// one host or several (the per-host branches), and says each alert's state.
func TestAlertsFilterByTriage(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := seedAlerts()
	acked := map[string]bool{}
	assigned := 0
	for _, i := range []int{1, 2, 5, 9, 30} {
		extra := ""
		if i%2 == 1 {
			extra = `,"assignee":"carol"`
			assigned++
		}
		e.ack(t, i, "alice", extra)
		acked[all[i-1].id] = true
	}
	webOrDB := func(a seedAlert) bool { return a.host != "mac-01" }
	count := func(state string, pred func(seedAlert) bool) int {
		n := 0
		for _, a := range all {
			if pred(a) && (state == "" || acked[a.id] == (state == TriageAcknowledged)) {
				n++
			}
		}
		return n
	}
	anyAlert := func(seedAlert) bool { return true }
	since45 := url.QueryEscape(e.now.Add(-45 * time.Minute).Format(time.RFC3339))
	recent := func(a seedAlert) bool { return a.ago <= 45*time.Minute }
	for _, c := range []struct {
		query string
		want  int
	}{
		{"state=OPEN", count(TriageOpen, anyAlert)},
		{"state=ACKNOWLEDGED", count(TriageAcknowledged, anyAlert)},
		{"state=OPEN,ACKNOWLEDGED", len(all)},
		{"state=OPEN&host=web-01,db-01", count(TriageOpen, webOrDB)},
		{"state=ACKNOWLEDGED&host=web-01,db-01", count(TriageAcknowledged, webOrDB)},
		{"state=ACKNOWLEDGED&severity=CRITICAL", count(TriageAcknowledged, func(a seedAlert) bool { return a.severity == "CRITICAL" })},
		{"state=ACKNOWLEDGED&from=" + since45, count(TriageAcknowledged, recent)},
		{"state=ACKNOWLEDGED&to=" + since45, count(TriageAcknowledged, func(a seedAlert) bool { return !recent(a) })},
		{"state=OPEN&from=" + since45, count(TriageOpen, recent)},
		{"assignee=carol", assigned},
		{"assignee=carol&from=" + since45, 1}, // number 9, 42 minutes ago
		{"assignee=carol&state=OPEN", 0},
		{"assignee=nobody", 0},
	} {
		code, body := e.send(t, "GET", "/api/v1/alerts?"+c.query, "Viewer", "vic", "")
		if code != 200 {
			t.Fatalf("%s: %d %s", c.query, code, body)
		}
		page := decode[AlertPage](t, body)
		if len(page.Alerts) != c.want {
			t.Errorf("%s: %d alerts, want %d", c.query, len(page.Alerts), c.want)
		}
		for _, a := range page.Alerts {
			want := TriageOpen
			if acked[a.AlertID] {
				want = TriageAcknowledged
			}
			if a.Triage == nil || a.Triage.State != want {
				t.Errorf("%s: alert %s triage %+v, want %s", c.query, a.AlertID, a.Triage, want)
			}
		}
	}
	for _, bad := range []string{"state=acked", "state=OPEN&assignee=a&assignee=b"} {
		if code, body := e.send(t, "GET", "/api/v1/alerts?"+bad, "Viewer", "vic", ""); code != 400 {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	// A live table cannot stream acknowledged alerts: new ones are OPEN.
	from, to := e.now.Add(-time.Hour), e.now.Add(time.Second)
	if r := e.query(t, `{"queryType":"alerts","format":"table","live":true,"state":"ACKNOWLEDGED"}`, from, to); r.Error == nil {
		t.Error("a live query of acknowledged alerts was accepted")
	}
	if r := e.query(t, `{"queryType":"alerts","format":"table","live":true,"state":"OPEN"}`, from, to); r.Error != nil || r.Frames[0].Rows() != count(TriageOpen, anyAlert) {
		t.Errorf("live query of open alerts: %v", r.Error)
	}
}

// provisionedModel returns the model of refId in the provisioned alert rule
// uid, as Grafana sends it to the datasource, and the rule's range.
func provisionedModel(t testing.TB, uid, refID string) (json.RawMessage, time.Duration) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "dashboards", "provisioning", "alerting", "tripwire.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				UID  string `yaml:"uid"`
				Data []struct {
					RefID             string             `yaml:"refId"`
					RelativeTimeRange struct{ From int } `yaml:"relativeTimeRange"`
					Model             map[string]any     `yaml:"model"`
				} `yaml:"data"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			for _, d := range r.Data {
				if r.UID == uid && d.RefID == refID {
					m, err := json.Marshal(d.Model)
					if err != nil {
						t.Fatal(err)
					}
					return m, time.Duration(d.RelativeTimeRange.From) * time.Second
				}
			}
		}
	}
	t.Fatalf("no rule %s with refId %s", uid, refID)
	return nil, 0
}

// TestCriticalRuleCountsOnlyUnacknowledged runs the provisioned CRITICAL
// rule's query (dashboards/provisioning/alerting/tripwire.yaml) against the
// database: acknowledged CRITICAL trips do not count, so a host whose trips
// are all acknowledged stops firing.
func TestCriticalRuleCountsOnlyUnacknowledged(t *testing.T) {
	e := newEnv(t)
	e.seed(t) // the newest seeded alert is 21 minutes old: outside the rule's minute
	model, window := provisionedModel(t, "tripwire-critical-trip", "A")
	ids := map[string][]string{}
	for i, host := range []string{"web-01", "web-01", "web-01", "mac-01", "mac-01", "db-01"} {
		a := seedAlert{id: "0190b000-0000-7000-8000-00000000000" + string(rune('1'+i)), host: host, typ: "file",
			event: "tripwire.file.access", rule: "shadow-read", severity: "CRITICAL", ago: time.Duration(10+i) * time.Second}
		e.insertAlert(t, a)
		ids[host] = append(ids[host], a.id)
	}
	// A WARN in the window never counts.
	e.insertAlert(t, seedAlert{id: "0190b000-0000-7000-8000-000000000099", host: "db-01", typ: "file",
		event: "tripwire.file.access", rule: "shadow-read", severity: "WARN", ago: 5 * time.Second})
	// Grafana asks for the rule's relative range ending now.
	counts := func() map[string]int64 {
		t.Helper()
		to := time.Now().UTC()
		r := e.query(t, string(model), to.Add(-window), to)
		if r.Error != nil {
			t.Fatalf("%s: %v", model, r.Error)
		}
		out := map[string]int64{}
		for _, fr := range r.Frames {
			if len(fr.Fields) != 2 {
				t.Fatalf("frame %+v", fr)
			}
			for i := range fr.Fields[1].Len() {
				out[fr.Fields[1].Labels["host"]] += fr.Fields[1].At(i).(int64)
			}
		}
		delete(out, "")
		for h, n := range out {
			if n == 0 {
				delete(out, h)
			}
		}
		return out
	}
	if got := counts(); got["web-01"] != 3 || got["mac-01"] != 2 || got["db-01"] != 1 || len(got) != 3 {
		t.Fatalf("before triage: %v", got)
	}
	for _, c := range []struct{ host, id string }{{"web-01", ids["web-01"][0]}, {"web-01", ids["web-01"][1]},
		{"mac-01", ids["mac-01"][0]}, {"mac-01", ids["mac-01"][1]}} {
		if code, body := e.send(t, "POST", "/api/v1/alerts/"+c.id+"/triage?host="+c.host, "Editor", "alice", `{"state":"ACKNOWLEDGED"}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	// Assigned but not acknowledged still counts.
	if code, body := e.send(t, "POST", "/api/v1/alerts/"+ids["db-01"][0]+"/triage?host=db-01", "Editor", "alice", `{"assignee":"bob"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got := counts(); got["web-01"] != 1 || got["db-01"] != 1 || len(got) != 2 {
		t.Fatalf("after acknowledging 2 of web-01's and all of mac-01's: %v (want web-01:1 db-01:1)", got)
	}
	// Reopened, it counts again.
	if code, body := e.send(t, "POST", "/api/v1/alerts/"+ids["mac-01"][0]+"/triage?host=mac-01", "Editor", "bob", `{"state":"OPEN"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got := counts(); got["mac-01"] != 1 {
		t.Fatalf("after reopening one of mac-01's: %v", got)
	}
}

// TestTriageBulk: one change for many alerts, each named with its host, in
// one request; alerts that do not exist are reported, not fatal.
func TestTriageBulk(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := seedAlerts()
	ref := func(a seedAlert) string { return `{"alert_id":"` + a.id + `","host_name":"` + a.host + `"}` }
	three := ref(all[0]) + "," + ref(all[1]) + "," + ref(all[2])
	gone := `{"alert_id":"0190a000-0000-7000-8000-999999999999","host_name":"web-01"}`
	wrongHost := `{"alert_id":"` + all[3].id + `","host_name":"nope"}`
	many := strings.Repeat(ref(all[0])+",", maxBulk) + ref(all[1])
	for _, c := range []struct {
		role, body string
		want       int
		wantBody   string
	}{
		{"Viewer", `{"alerts":[` + three + `],"state":"ACKNOWLEDGED"}`, 403, "Editor"},
		{"Editor", `{"alerts":[],"state":"ACKNOWLEDGED"}`, 400, "alerts"},
		{"Editor", `{"alerts":[` + many + `],"state":"ACKNOWLEDGED"}`, 400, "alerts"},
		{"Editor", `{"alerts":[{"alert_id":"x","host_name":"web-01"}],"state":"ACKNOWLEDGED"}`, 400, "UUID"},
		{"Editor", `{"alerts":[{"alert_id":"` + all[0].id + `"}],"state":"ACKNOWLEDGED"}`, 400, "host_name"},
		{"Editor", `{"alerts":[` + three + `]}`, 400, "nothing to change"},
		{"Editor", `{"alerts":[` + three + `],"state":"ACKNOWLEDGED","x":1}`, 400, "x"},
		{"Editor", `{"alerts":[` + three + `],"state":"ACKNOWLEDGED"} {}`, 400, "one JSON object"},
		{"Editor", `{"alerts":[` + three + `,` + gone + `,` + wrongHost + `],"state":"ACKNOWLEDGED","note":"scanner sweep"}`, 200,
			`"applied":3,"missing":[` + gone + `,` + wrongHost + `]`},
	} {
		code, body := e.send(t, "POST", "/api/v1/alerts/triage", c.role, "eve", c.body)
		if code != c.want || !strings.Contains(string(body), c.wantBody) {
			t.Errorf("%s %.120s: %d %.300s, want %d with %q", c.role, c.body, code, body, c.want, c.wantBody)
		}
	}
	_, body := e.send(t, "GET", "/api/v1/alerts?state=ACKNOWLEDGED", "Viewer", "vic", "")
	page := decode[AlertPage](t, body)
	if len(page.Alerts) != 3 {
		t.Fatalf("%d acknowledged alerts, want 3", len(page.Alerts))
	}
	for _, a := range page.Alerts {
		if a.Triage.UpdatedBy == nil || *a.Triage.UpdatedBy != "eve" {
			t.Errorf("alert %s triage %+v", a.AlertID, a.Triage)
		}
	}
	var n int
	if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM alert_triage_history WHERE actor = 'eve'`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("%d history rows by eve (%v), want 6: a state change and a note for each of 3", n, err)
	}
}

// TestTriageConcurrent: an Editor's change waits for a concurrent one to
// the same alert and then sees its result, so acknowledging an alert
// another analyst is acknowledging records one state change, not two.
func TestTriageConcurrent(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	// The alert has a triage row already (assigned, OPEN): the race is on
	// an update, not on the first insert.
	if code, body := e.send(t, "POST", triagePath+"?host=web-01", "Editor", "lead", `{"assignee":"carol"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	// The first analyst's change has the alert's row and is still running.
	// (On a connection of its own: e.conn watches pg_stat_activity, which a
	// transaction reads once.)
	first, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	tx, err := first.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM alert_triage WHERE alert_id = '0190a000-0000-7000-8000-000000000001' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		code, _ := e.send(t, "POST", triagePath+"?host=web-01", "Editor", "second", `{"state":"ACKNOWLEDGED","note":"on it"}`)
		done <- code
	}()
	// Wait until the second change waits for the first's lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := e.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%tripwire_triage%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second change never waited for the first")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT tripwire_triage('0190a000-0000-7000-8000-000000000001', 'web-01', 'first', 'ACKNOWLEDGED', false, NULL, NULL)`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("first change: %d %v", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 200 {
		t.Fatalf("second change: %d", code)
	}
	rows, err := e.conn.Query(ctx, `SELECT actor || ' ' || action FROM alert_triage_history ORDER BY entry_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if want := "lead assign, first state, second note"; strings.Join(got, ", ") != want {
		t.Fatalf("history %q, want %q", strings.Join(got, ", "), want)
	}
}

// Bulk triage names alerts by their whole key when the client has it: the
// event_time as listed finds the alert in its day's partition (migration
// 0022); one a microsecond off finds nothing, so the time is used, not
// ignored.
func TestTriageBulkByKey(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	_, body := e.send(t, "GET", "/api/v1/alerts?limit=3", "Viewer", "vic", "")
	page := decode[AlertPage](t, body)
	if len(page.Alerts) != 3 {
		t.Fatalf("%d alerts listed, want 3", len(page.Alerts))
	}
	var refs []AlertRef
	for _, a := range page.Alerts {
		refs = append(refs, AlertRef{AlertID: a.AlertID, HostName: a.HostName, EventTime: &a.EventTime})
	}
	off := refs[2].EventTime.Add(time.Microsecond)
	refs[2].EventTime = &off
	req, err := json.Marshal(BulkTriageChange{Alerts: refs, TriageChange: TriageChange{State: ptr(TriageAcknowledged)}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := e.send(t, "POST", "/api/v1/alerts/triage", "Editor", "eve", string(req))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	res := decode[BulkTriageResult](t, body)
	if res.Applied != 2 || len(res.Missing) != 1 || res.Missing[0].AlertID != refs[2].AlertID {
		t.Fatalf("applied %d, missing %+v; want 2 applied and %s missing", res.Applied, res.Missing, refs[2].AlertID)
	}
	code, body = e.send(t, "POST", "/api/v1/alerts/triage", "Editor", "eve",
		`{"alerts":[{"alert_id":"`+refs[0].AlertID+`","host_name":"`+refs[0].HostName+`","event_time":"yesterday"}],"state":"OPEN"}`)
	if code != 400 || !strings.Contains(string(body), `parsing time \"yesterday\"`) {
		t.Errorf("a bad event_time: %d %s", code, body)
	}
}
