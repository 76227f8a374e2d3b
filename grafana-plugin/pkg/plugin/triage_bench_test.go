package plugin

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// BenchmarkTriageFilters measures the triage filters of GET /api/v1/alerts
// and the provisioned CRITICAL rule's query over the seeded table (see
// seedBench; TRIPWIRE_BENCH_ALERTS sets its size) after 1 alert in 500 was
// acknowledged, each against the same request without the filter in the
// same run. It reports p50/p95 in ms.
func BenchmarkTriageFilters(b *testing.B) {
	e := seedBench(b)
	e.exec(b, `INSERT INTO alert_triage (alert_id, host_id, event_time, state, assignee, updated_by)
SELECT alert_id, host_id, event_time, 'ACKNOWLEDGED', CASE WHEN seq % 1000 = 0 THEN 'carol' END, 'alice'
FROM alerts WHERE seq % 500 = 0
ON CONFLICT DO NOTHING`)
	e.exec(b, `ANALYZE alert_triage`)
	var triaged int
	if err := e.conn.QueryRow(b.Context(), `SELECT count(*) FROM alert_triage`).Scan(&triaged); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d of %d alerts acknowledged", triaged, benchAlerts())
	day := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
	for _, c := range []struct{ name, query string }{
		{"newest", ""},
		{"newest+open", "state=OPEN"},
		{"newest+acknowledged", "state=ACKNOWLEDGED"},
		{"acknowledged+24h", "state=ACKNOWLEDGED&from=" + day},
		{"assignee", "assignee=carol"},
		{"critical", "severity=CRITICAL"},
		{"critical+open", "severity=CRITICAL&state=OPEN"},
		{"two-hosts+24h", "host=host-001,host-002&from=" + day},
		{"two-hosts+24h+open", "host=host-001,host-002&from=" + day + "&state=OPEN"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := "/api/v1/alerts?limit=100"
			if c.query != "" {
				path += "&" + c.query
			}
			if status, body := e.call(b, "GET", path, "Viewer"); status != 200 {
				b.Fatalf("%s: %d %s", path, status, body)
			}
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				status, _ := e.call(b, "GET", path, "Viewer")
				lat = append(lat, time.Since(t0))
				if status != 200 {
					b.Fatalf("status %d", status)
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
		})
	}
	// The CRITICAL alert rule as provisioned (state OPEN), and without its
	// state filter: Grafana runs it every 30 s.
	model, window := provisionedModel(b, "tripwire-critical-trip", "A")
	withoutState := []byte(`{"refId":"A","queryType":"counts","severity":"CRITICAL","groupBy":"host","intervalMs":10000,"maxDataPoints":43200}`)
	for _, c := range []struct {
		name  string
		model []byte
	}{{"critical-rule", model}, {"critical-rule-without-state", withoutState}} {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				to := time.Now()
				t0 := time.Now()
				resp, err := e.ds.QueryData(b.Context(), &backend.QueryDataRequest{
					PluginContext: backend.PluginContext{DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{UID: "tw"}},
					Queries: []backend.DataQuery{{RefID: "A", JSON: c.model, Interval: 10 * time.Second, MaxDataPoints: 43200,
						TimeRange: backend.TimeRange{From: to.Add(-window), To: to}}},
				})
				lat = append(lat, time.Since(t0))
				if err != nil || resp.Responses["A"].Error != nil {
					b.Fatal(err, resp.Responses["A"].Error)
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
		})
	}
}

// BenchmarkBulkTriage acknowledges, then reopens, 100 alerts at a time
// through POST alerts/triage over the seeded table (seedBench: 90 days in
// daily partitions), each 100 from another day, naming them by id and host
// and by their whole key (with event_time, migration 0022). It reports
// p50/p95 in ms per change of 100.
func BenchmarkBulkTriage(b *testing.B) {
	e := seedBench(b)
	var pages [][]AlertRef
	for d := 1; d <= 20; d++ {
		rows, err := e.conn.Query(b.Context(), `SELECT alert_id::text, host_name, event_time FROM alerts
WHERE event_time >= $1 AND event_time < $2 LIMIT 100`, time.Now().AddDate(0, 0, -4*d), time.Now().AddDate(0, 0, -4*d).Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		var page []AlertRef
		for rows.Next() {
			var r AlertRef
			var at time.Time
			if err := rows.Scan(&r.AlertID, &r.HostName, &at); err != nil {
				b.Fatal(err)
			}
			r.EventTime = &at
			page = append(page, r)
		}
		if rows.Err() != nil || len(page) != 100 {
			b.Fatalf("day -%d: %d alerts, %v", 4*d, len(page), rows.Err())
		}
		pages = append(pages, page)
	}
	for _, byKey := range []bool{false, true} {
		name := "by-id"
		if byKey {
			name = "by-key"
		}
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				refs := make([]AlertRef, 0, 100)
				for _, r := range pages[i%len(pages)] {
					if !byKey {
						r.EventTime = nil
					}
					refs = append(refs, r)
				}
				state := []string{TriageAcknowledged, TriageOpen}[i/len(pages)%2]
				body, err := json.Marshal(BulkTriageChange{Alerts: refs, TriageChange: TriageChange{State: &state}})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				code, resp := e.send(b, "POST", "/api/v1/alerts/triage", "Editor", "bench", string(body))
				lat = append(lat, time.Since(t0))
				if code != 200 {
					b.Fatalf("%d %s", code, resp)
				}
				if res := decode[BulkTriageResult](b, resp); res.Applied != len(refs) {
					b.Fatalf("applied %d of %d", res.Applied, len(refs))
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95_ms")
		})
	}
}
