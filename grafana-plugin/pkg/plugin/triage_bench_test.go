package plugin

import (
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
