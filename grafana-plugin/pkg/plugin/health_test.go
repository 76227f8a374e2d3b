package plugin

import (
	"fmt"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// TestHostHealthForAlertRules: each metric the provisioned SOC rules read
// (dashboards/provisioning/alerting) answers one value per host, labelled
// with the host, from what the collector stored.
func TestHostHealthForAlertRules(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	// web-01's certificate expires in 10 days; db-01 never reported one.
	e.exec(t, `UPDATE hosts SET cert_not_after = $1 WHERE host_name = 'web-01'`, e.now.Add(10*24*time.Hour))
	e.exec(t, `UPDATE hosts SET cert_not_after = NULL WHERE host_name = 'db-01'`)
	// mac-01 lost events twice in the last minutes; one loss is older.
	for i, ago := range []time.Duration{2 * time.Minute, 3 * time.Minute, 3 * time.Hour} {
		e.insertAlert(t, seedAlert{id: fmt.Sprintf("0190a000-0000-7000-8000-1000000000%02d", i), host: "mac-01",
			typ: "agent", event: "tripwire.agent.loss", severity: "WARN", ago: ago})
	}
	// web-01 delivered an event 40 minutes late (it waited in the spool).
	e.insertAlert(t, seedAlert{id: "0190a000-0000-7000-8000-200000000001", host: "web-01", typ: "file",
		event: "tripwire.file.access", rule: "shadow-read", severity: "CRITICAL", ago: 41 * time.Minute})
	e.exec(t, `UPDATE alerts SET received_at = event_time + interval '40 minutes' WHERE alert_id = '0190a000-0000-7000-8000-200000000001'`)

	from, to := e.now.Add(-5*time.Minute), e.now.Add(time.Second)
	values := func(metric string) map[string]float64 {
		t.Helper()
		r := e.query(t, `{"queryType":"host_health","metric":"`+metric+`"}`, from, to)
		if r.Error != nil {
			t.Fatalf("%s: %v", metric, r.Error)
		}
		out := map[string]float64{}
		for _, fr := range r.Frames {
			if fr.Meta.Type != data.FrameTypeNumericMulti || len(fr.Fields) != 1 || fr.Fields[0].Len() != 1 {
				t.Fatalf("%s: frame %+v", metric, fr)
			}
			out[fr.Fields[0].Labels["host"]] = fr.Fields[0].At(0).(float64)
		}
		return out
	}
	if v := values(MetricOffline); v["db-01"] != 1 || v["web-01"] != 0 || v["mac-01"] != 0 {
		t.Errorf("offline: %v", v)
	}
	if v := values(MetricDegraded); v["mac-01"] != 1 || v["web-01"] != 0 || v["db-01"] != 0 {
		t.Errorf("degraded: %v", v)
	}
	if v := values(MetricCertDaysLeft); len(v) != 2 || v["web-01"] < 9.9 || v["web-01"] > 10 || v["mac-01"] < 150 {
		t.Errorf("cert days left: %v (db-01 has no certificate date and must be absent)", v)
	}
	if v := values(MetricLossEvents); v["mac-01"] != 2 || v["web-01"] != 0 {
		t.Errorf("loss events in the last 5 minutes: %v", v)
	}
	if v := values(MetricDeliveryLag); v["web-01"] != 40*60 || v["mac-01"] != 0 {
		t.Errorf("delivery lag: %v", v)
	}
	for _, bad := range []string{`{"queryType":"host_health"}`, `{"queryType":"host_health","metric":"cpu"}`} {
		if r := e.query(t, bad, from, to); r.Error == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
