package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/live"
)

func (e *env) query(t *testing.T, model string, from, to time.Time) backend.DataResponse {
	t.Helper()
	resp, err := e.ds.QueryData(t.Context(), &backend.QueryDataRequest{
		PluginContext: backend.PluginContext{DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{UID: "tw"}},
		Queries: []backend.DataQuery{{
			RefID: "A", JSON: json.RawMessage(model), Interval: time.Minute, MaxDataPoints: 1000,
			TimeRange: backend.TimeRange{From: from, To: to},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Responses["A"]
}

func TestQueryAlertsLogsAndTable(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	from, to := e.now.Add(-time.Hour), e.now.Add(time.Second)

	r := e.query(t, `{"queryType":"alerts","host":"web-01","severity":["CRITICAL"]}`, from, to)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	fr := r.Frames[0]
	if fr.Meta.Type != data.FrameTypeLogLines || fr.Meta.PreferredVisualization != data.VisTypeLogs {
		t.Fatalf("meta %+v", fr.Meta)
	}
	want := 0
	for _, a := range seedAlerts() {
		if a.host == "web-01" && a.severity == "CRITICAL" {
			want++
		}
	}
	if n, _ := fr.RowLen(); n != want || want == 0 {
		t.Fatalf("%d rows, want %d", n, want)
	}
	for _, name := range []string{"timestamp", "body", "severity", "id", "labels"} {
		if f, _ := fr.FieldByName(name); f == nil {
			t.Fatalf("logs frame lacks %s", name)
		}
	}
	var labels map[string]string
	if err := json.Unmarshal(fr.Fields[4].At(0).(json.RawMessage), &labels); err != nil || labels["host"] != "web-01" {
		t.Fatalf("labels %v %v", labels, err)
	}

	r = e.query(t, `{"queryType":"alerts","format":"table","text":"#2"}`, from, to)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	// "#2" matches the word 2 of #2, not #20..#29.
	if n, _ := r.Frames[0].RowLen(); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	// The time range from the query applies.
	r = e.query(t, `{"queryType":"alerts"}`, e.now.Add(-30*time.Minute), to)
	if n, _ := r.Frames[0].RowLen(); n != 10 {
		t.Fatalf("%d rows in the last 30 min, want 10", n)
	}

	// A live table names the channel Grafana then subscribes the panel to.
	r = e.query(t, `{"queryType":"alerts","format":"table","live":true,"severity":"CRITICAL","host":"web-01,db-01"}`, from, to)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	if ch := r.Frames[0].Meta.Channel; ch != "ds/tw/alerts/host=db-01/host=web-01/severity=CRITICAL" {
		t.Fatalf("channel %q", ch)
	}
	if _, err := live.ParseChannel(r.Frames[0].Meta.Channel); err != nil {
		t.Fatalf("Grafana Live refuses %q: %v", r.Frames[0].Meta.Channel, err)
	}
	if _, err := e.ds.channels.Filter(strings.TrimPrefix(r.Frames[0].Meta.Channel, "ds/tw/")); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{
		`{"queryType":"alerts","format":"csv"}`, `{"queryType":"alerts","type":"nope"}`,
		`{"queryType":"nope"}`, `{"queryType":"alerts","limit":5000}`, `{"host":5}`,
		`{"queryType":"alerts","host":"x' OR '1'='1"}`, `{"queryType":"alerts","format":"table","live":true,"text":"x"}`,
	} {
		r := e.query(t, bad, from, to)
		if r.Error == nil {
			if n, _ := r.Frames[0].RowLen(); n != 0 {
				t.Errorf("%s: %d rows", bad, n)
			}
			continue
		}
		if r.Status != backend.StatusBadRequest {
			t.Errorf("%s: status %v (%v)", bad, r.Status, r.Error)
		}
	}
}

func TestQueryCountsForPanelsAndAlerting(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	from, to := e.now.Add(-time.Hour), e.now
	for _, groupBy := range []string{"type", "severity", "host", "rule", ""} {
		t.Run("groupBy="+groupBy, func(t *testing.T) {
			r := e.query(t, `{"queryType":"counts","groupBy":"`+groupBy+`"}`, from, to)
			if r.Error != nil {
				t.Fatal(r.Error)
			}
			total := int64(0)
			groups := map[string]bool{}
			for _, fr := range r.Frames {
				if fr.Meta.Type != data.FrameTypeTimeSeriesMulti {
					t.Fatalf("frame type %s", fr.Meta.Type)
				}
				if fr.Fields[0].Type() != data.FieldTypeTime || fr.Fields[1].Type() != data.FieldTypeInt64 {
					t.Fatalf("field types %s %s", fr.Fields[0].Type(), fr.Fields[1].Type())
				}
				// One bucket per minute over the hour: zeros included.
				if n := fr.Fields[0].Len(); n != 60 {
					t.Fatalf("%d buckets, want 60", n)
				}
				if groupBy != "" {
					groups[fr.Fields[1].Labels[groupBy]] = true
				}
				for i := 0; i < fr.Fields[1].Len(); i++ {
					total += fr.Fields[1].At(i).(int64)
				}
			}
			if total != 30 {
				t.Fatalf("counted %d alerts, want 30", total)
			}
			wantGroups := map[string]int{"type": 3, "severity": 3, "host": 3, "rule": 4, "": 0}[groupBy]
			if len(groups) != wantGroups {
				t.Fatalf("groups %v, want %d", groups, wantGroups)
			}
		})
	}
	// Filters apply to counts too; an empty result is a zero series, not an error.
	r := e.query(t, `{"queryType":"counts","type":"audit"}`, from, to)
	if r.Error != nil || len(r.Frames) != 1 || r.Frames[0].Fields[1].Len() != 60 {
		t.Fatalf("empty counts: %v %v", r.Error, r.Frames)
	}
	r = e.query(t, `{"queryType":"counts","groupBy":"host; DROP TABLE alerts"}`, from, to)
	if r.Status != backend.StatusBadRequest || !strings.Contains(r.Error.Error(), "groupBy") {
		t.Fatalf("bad groupBy: %v %v", r.Status, r.Error)
	}
}

func TestQueryHostsAndOffline(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	r := e.query(t, `{"queryType":"hosts"}`, e.now.Add(-time.Hour), e.now)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	if n, _ := r.Frames[0].RowLen(); n != 3 {
		t.Fatalf("%d hosts", n)
	}
	r = e.query(t, `{"queryType":"host_offline"}`, e.now.Add(-time.Hour), e.now)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	offline := map[string]int64{}
	for _, fr := range r.Frames {
		if fr.Meta.Type != data.FrameTypeNumericMulti {
			t.Fatalf("frame type %s", fr.Meta.Type)
		}
		offline[fr.Fields[0].Labels["host"]] = fr.Fields[0].At(0).(int64)
	}
	if len(offline) != 3 || offline["db-01"] != 1 || offline["web-01"] != 0 || offline["mac-01"] != 0 {
		t.Fatalf("offline: %v", offline)
	}
}

func TestCheckHealthConnects(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	res, err := e.ds.CheckHealth(t.Context(), &backend.CheckHealthRequest{})
	if err != nil || res.Status != backend.HealthStatusOk || !strings.Contains(res.Message, "3 hosts") {
		t.Fatalf("health: %+v %v", res, err)
	}
	// A port where nothing listens: the check reports an error, not OK.
	inst, err := NewDatasource(t.Context(), settingsForTest(`{"host":"127.0.0.1","port":1,"user":"postgres","sslMode":"disable"}`))
	if err != nil {
		t.Fatal(err)
	}
	ds := inst.(*Datasource)
	defer ds.Dispose()
	res, err = ds.CheckHealth(t.Context(), &backend.CheckHealthRequest{})
	if err != nil || res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "PostgreSQL") {
		t.Fatalf("health against a closed port: %+v %v", res, err)
	}
	// A database without the TripWire schema is not healthy either.
	inst, err = NewDatasource(t.Context(), settingsForTest(strings.Replace(string(settingsJSON(e.dsn)), `"database":"`, `"database":"postgres","x":"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	ds2 := inst.(*Datasource)
	defer ds2.Dispose()
	res, _ = ds2.CheckHealth(t.Context(), &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "hosts") {
		t.Fatalf("health without schema: %+v", res)
	}
}
