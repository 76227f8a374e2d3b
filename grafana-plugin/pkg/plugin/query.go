package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tripwire-sec/tripwire/contract"
)

// Query types a panel or an alert rule can ask for.
const (
	QueryAlerts = "alerts" // alert rows, as logs or as a table
	QueryCounts = "counts" // alert counts over time, one series per group
	QueryHosts  = "hosts"  // the hosts table
	// QueryHostOffline is one numeric series per host, 1 when OFFLINE, for
	// the "host offline" alert rule.
	QueryHostOffline = "host_offline"
	// QueryHostHealth is one numeric series per host of the metric named
	// in the query (health.go), for a SOC's alert rules.
	QueryHostHealth = "host_health"
)

// stringList accepts "a,b", ["a","b"] or null, since template variables and
// hand-written alert rules produce both shapes.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = nil
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" && v != "$__all" {
				*l = append(*l, v)
			}
		}
		return nil
	}
	var vs []string
	if err := json.Unmarshal(b, &vs); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = nil
	for _, v := range vs {
		if v != "" && v != "$__all" {
			*l = append(*l, v)
		}
	}
	return nil
}

// QueryModel is the JSON a TripWire query carries (src/datasource/types.ts).
type QueryModel struct {
	QueryType string     `json:"queryType"`
	Format    string     `json:"format"` // alerts: logs (default) or table
	Host      stringList `json:"host"`
	Type      stringList `json:"type"`
	Severity  stringList `json:"severity"`
	Rule      stringList `json:"rule"`
	State     stringList `json:"state"`    // triage states; the CRITICAL alert rule counts OPEN only
	Assignee  string     `json:"assignee"` // a Grafana login
	Text      string     `json:"text"`
	GroupBy   string     `json:"groupBy"` // counts: type, severity, host, rule or ""
	Limit     int        `json:"limit"`   // alerts: row cap, default 1000
	Metric    string     `json:"metric"`  // host_health: offline, degraded, cert_days_left, ...
	// Live (alerts, table format) makes the panel subscribe to the
	// matching Grafana Live channel after the initial rows.
	Live bool `json:"live"`
}

// QueryData runs each query against PostgreSQL. It serves panels and Grafana
// alert rules alike: counts come back as numeric frames with labels, which is
// what alerting's reduce/threshold expressions consume.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	uid := ""
	if s := req.PluginContext.DataSourceInstanceSettings; s != nil {
		uid = s.UID
	}
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, uid, q)
	}
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, uid string, q backend.DataQuery) backend.DataResponse {
	if err := d.ready(); err != nil {
		return backend.ErrDataResponse(backend.StatusBadRequest, "datasource not configured: "+err.Error())
	}
	var m QueryModel
	if len(q.JSON) > 0 {
		if err := json.Unmarshal(q.JSON, &m); err != nil {
			return backend.ErrDataResponse(backend.StatusBadRequest, "invalid query: "+err.Error())
		}
	}
	if m.QueryType == "" {
		m.QueryType = q.QueryType
	}
	f := Filter{Hosts: m.Host, Types: m.Type, Severities: m.Severity, Rules: m.Rule, Text: m.Text,
		States: m.State, Assignee: m.Assignee, From: q.TimeRange.From, To: q.TimeRange.To}

	var frames data.Frames
	var err error
	switch m.QueryType {
	case QueryAlerts, "":
		frames, err = d.queryAlerts(ctx, &f, &m, uid)
	case QueryCounts:
		frames, err = d.queryCounts(ctx, &f, &m, q)
	case QueryHosts:
		frames, err = d.queryHosts(ctx)
	case QueryHostOffline:
		frames, err = d.queryHostOffline(ctx)
	case QueryHostHealth:
		frames, err = d.queryHostHealth(ctx, m.Metric, q.TimeRange.From, q.TimeRange.To)
	default:
		err = badRequest("unknown queryType %q (want alerts, counts, hosts, host_offline or host_health)", m.QueryType)
	}
	switch {
	case err == nil:
		return backend.DataResponse{Frames: frames}
	case errors.Is(err, ErrBadRequest):
		return backend.ErrDataResponse(backend.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
	case ctx.Err() != nil:
		return backend.ErrDataResponse(backend.StatusTimeout, "query cancelled")
	default:
		log.DefaultLogger.Error("query failed", "queryType", m.QueryType, "error", err)
		return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourceDownstream, "PostgreSQL: "+err.Error())
	}
}

func (d *Datasource) queryAlerts(ctx context.Context, f *Filter, m *QueryModel, uid string) (data.Frames, error) {
	limit := m.Limit
	if limit == 0 {
		limit = MaxLimit
	}
	if limit < 1 || limit > MaxLimit {
		return nil, badRequest("limit: must be 1..%d", MaxLimit)
	}
	page, err := d.store.ListAlerts(ctx, f, limit, nil, false)
	if err != nil {
		return nil, err
	}
	switch m.Format {
	case "", "logs":
		return data.Frames{alertLogsFrame(page.Alerts)}, nil
	case "table":
		fr := alertTableFrame("alerts", page.Alerts)
		fr.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
		if m.Live {
			if m.Text != "" {
				return nil, badRequest("live: free-text search cannot be streamed")
			}
			if err := liveTriageFilter(f); err != nil {
				return nil, err
			}
			// The stream appends oldest-first rows to this frame.
			reverseAlerts(page.Alerts)
			fr = alertTableFrame("alerts", page.Alerts)
			fr.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable,
				Channel: "ds/" + uid + "/" + d.channels.ChannelPath(uid, StreamFilter{Hosts: f.Hosts, Types: f.Types, Severities: f.Severities, Rules: f.Rules})}
		}
		return data.Frames{fr}, nil
	}
	return nil, badRequest("format: unknown value %q (want logs or table)", m.Format)
}

// alertLogsFrame follows the data plane logs contract (log-lines): timestamp,
// body, severity, id, labels.
func alertLogsFrame(alerts []Alert) *data.Frame {
	n := len(alerts)
	ts := make([]time.Time, n)
	body := make([]string, n)
	sev := make([]string, n)
	ids := make([]string, n)
	labels := make([]json.RawMessage, n)
	for i, a := range alerts {
		ts[i], sev[i], ids[i] = a.EventTime, a.Severity, a.AlertID
		body[i] = a.Summary
		if body[i] == "" {
			body[i] = a.EventName + " " + a.Rule
		}
		labels[i], _ = json.Marshal(map[string]string{
			"host": a.HostName, "type": a.Type, "rule": a.Rule, "event": a.EventName,
		})
	}
	fr := data.NewFrame("alerts",
		data.NewField("timestamp", nil, ts),
		data.NewField("body", nil, body),
		data.NewField("severity", nil, sev),
		data.NewField("id", nil, ids),
		data.NewField("labels", nil, labels),
	)
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeLogLines, TypeVersion: data.FrameTypeVersion{0, 0},
		PreferredVisualization: data.VisTypeLogs}
	return fr
}

// alertTableFrame is the row form used by tables and the live stream.
func alertTableFrame(name string, alerts []Alert) *data.Frame {
	n := len(alerts)
	var (
		ts, recv                       = make([]time.Time, n), make([]time.Time, n)
		host, typ, ev, rule, sev, summ = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ids                            = make([]string, n)
		seq                            = make([]*int64, n)
	)
	for i, a := range alerts {
		ts[i], recv[i], host[i], typ[i], ev[i] = a.EventTime, a.ReceivedAt, a.HostName, a.Type, a.EventName
		rule[i], sev[i], summ[i], ids[i], seq[i] = a.Rule, a.Severity, a.Summary, a.AlertID, a.Seq
	}
	return data.NewFrame(name,
		data.NewField("time", nil, ts),
		data.NewField("received_at", nil, recv),
		data.NewField("host", nil, host),
		data.NewField("type", nil, typ),
		data.NewField("event", nil, ev),
		data.NewField("rule", nil, rule),
		data.NewField("severity", nil, sev),
		data.NewField("seq", nil, seq),
		data.NewField("summary", nil, summ),
		data.NewField("alert_id", nil, ids),
	)
}

// alertStreamFrame is a stream's frame: alertTableFrame, whose schema a
// dashboard panel's query frame has (Grafana appends stream rows to it).
// withTriage (the Live page's channel) adds, on a triage change's row
// (triage_changed), the alert's stored triage; a new alert's row leaves the
// triage fields null (nobody triaged it yet: OPEN).
func alertStreamFrame(rows []liveRow, withTriage bool) *data.Frame {
	n := len(rows)
	alerts := make([]Alert, n)
	for i, r := range rows {
		alerts[i] = r.Alert
	}
	fr := alertTableFrame("alerts", alerts)
	if !withTriage {
		return fr
	}
	changed := make([]bool, n)
	state, assignee, by := make([]*string, n), make([]*string, n), make([]*string, n)
	at := make([]*time.Time, n)
	for i, r := range rows {
		changed[i] = r.Triaged
		if t := r.Triage; r.Triaged && t != nil {
			state[i], assignee[i], by[i], at[i] = &t.State, t.Assignee, t.UpdatedBy, t.UpdatedAt
		}
	}
	fr.Fields = append(fr.Fields,
		data.NewField("triage_changed", nil, changed),
		data.NewField("triage_state", nil, state),
		data.NewField("triage_assignee", nil, assignee),
		data.NewField("triage_updated_by", nil, by),
		data.NewField("triage_updated_at", nil, at),
	)
	return fr
}

func (d *Datasource) queryCounts(ctx context.Context, f *Filter, m *QueryModel, q backend.DataQuery) (data.Frames, error) {
	interval := q.Interval
	if q.MaxDataPoints > 0 {
		if byPoints := q.TimeRange.Duration() / time.Duration(q.MaxDataPoints); byPoints > interval {
			interval = byPoints
		}
	}
	// Whole seconds keep bucket edges readable and date_bin exact.
	interval = max(interval.Round(time.Second), time.Second)
	series, err := d.store.CountSeries(ctx, f, m.GroupBy, interval)
	if err != nil {
		return nil, err
	}
	frames := make(data.Frames, 0, len(series))
	for _, s := range series {
		var labels data.Labels
		if m.GroupBy != "" {
			labels = data.Labels{m.GroupBy: s.Group}
		}
		fr := data.NewFrame("trips",
			data.NewField("time", nil, s.Times),
			data.NewField("count", labels, s.Counts),
		)
		if s.Group != "" {
			fr.Fields[1].Config = &data.FieldConfig{DisplayNameFromDS: s.Group}
		}
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	if len(frames) == 0 {
		// No group had any alert: an empty multi series is "no data" for
		// alerting, which rules can map to OK.
		fr := data.NewFrame("trips", data.NewField("time", nil, []time.Time{}), data.NewField("count", nil, []int64{}))
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	return frames, nil
}

func (d *Datasource) queryHosts(ctx context.Context) (data.Frames, error) {
	hosts, err := d.store.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	n := len(hosts)
	var (
		name, status, platform, version, watchers = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		lastSeen                                  = make([]time.Time, n)
		lastAlert, certExp                        = make([]*time.Time, n), make([]*time.Time, n)
		alerts24                                  = make([]int64, n)
		offline                                   = make([]int64, n)
	)
	for i, h := range hosts {
		name[i], status[i], lastSeen[i] = h.HostName, h.Status, h.LastSeen
		platform[i], version[i], watchers[i] = deref(h.Platform), deref(h.AgentVersion), deref(h.Watchers)
		lastAlert[i], certExp[i], alerts24[i] = h.LastAlertAt, h.CertNotAfter, h.Alerts24h
		if h.Status == contract.StatusOffline {
			offline[i] = 1
		}
	}
	fr := data.NewFrame("hosts",
		data.NewField("host", nil, name),
		data.NewField("status", nil, status),
		data.NewField("offline", nil, offline),
		data.NewField("last_seen", nil, lastSeen),
		data.NewField("last_alert_at", nil, lastAlert),
		data.NewField("agent_version", nil, version),
		data.NewField("platform", nil, platform),
		data.NewField("watchers", nil, watchers),
		data.NewField("cert_not_after", nil, certExp),
		data.NewField("alerts_24h", nil, alerts24),
	)
	fr.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return data.Frames{fr}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// queryHostOffline answers with the numeric-multi data plane type: one frame
// per host, one value with a host label. Alerting turns each into its own
// alert instance, so the notification names the host.
func (d *Datasource) queryHostOffline(ctx context.Context) (data.Frames, error) {
	hosts, err := d.store.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	frames := make(data.Frames, 0, len(hosts))
	for _, h := range hosts {
		v := int64(0)
		if h.Status == contract.StatusOffline {
			v = 1
		}
		fr := data.NewFrame("offline", data.NewField("offline", data.Labels{"host": h.HostName}, []int64{v}))
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	if len(frames) == 0 {
		fr := data.NewFrame("offline", data.NewField("offline", nil, []int64{}))
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	return frames, nil
}
