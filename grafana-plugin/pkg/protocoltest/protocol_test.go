// Package protocoltest starts the built backend binary the way Grafana does
// (hashicorp/go-plugin, gRPC, the Grafana handshake) and talks to it only
// through the plugin protocol: CheckHealth, QueryData, CallResource and the
// stream calls, against a real PostgreSQL.
package protocoltest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pluginBinary is $TRIPWIRE_PLUGIN_BINARY (CI points it at the mage-built
// dist/datasource/gpx_tripwire_linux_amd64), else a binary built now from
// ./pkg with mage's build tag, so `go test ./...` always runs a real,
// current executable rather than a stale dist/.
func pluginBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TRIPWIRE_PLUGIN_BINARY"); p != "" {
		if !filepath.IsAbs(p) {
			// Relative to the module root (grafana-plugin/), where mage runs.
			p = filepath.Join("..", "..", p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("using the built plugin %s", abs)
		return abs
	}
	out := filepath.Join(t.TempDir(), "gpx_tripwire")
	cmd := exec.Command("go", "build", "-tags", "arrow_json_stdlib", "-o", out, "../")
	cmd.Dir = "."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, b)
	}
	return out
}

// grafana is the host side of one plugin process.
type grafana struct {
	client      *goplugin.Client
	data        grpcplugin.DataClient
	resource    grpcplugin.ResourceClient
	stream      grpcplugin.StreamClient
	diagnostics grpcplugin.DiagnosticsClient
	pctx        backend.PluginContext
}

func start(t *testing.T, settings []byte) *grafana {
	t.Helper()
	bin := pluginBinary(t)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			grpcplugin.ProtocolVersion: {
				"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
				"resource":    &grpcplugin.ResourceGRPCPlugin{},
				"data":        &grpcplugin.DataGRPCPlugin{},
				"stream":      &grpcplugin.StreamGRPCPlugin{},
			},
		},
		Cmd:              exec.Command(bin),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: io.Discard}),
		StartTimeout:     60 * time.Second,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("go-plugin handshake with %s: %v", bin, err)
	}
	g := &grafana{client: client}
	dispense := func(name string) any {
		raw, err := rpc.Dispense(name)
		if err != nil {
			t.Fatalf("dispensing %s: %v", name, err)
		}
		return raw
	}
	g.data = dispense("data").(grpcplugin.DataClient)
	g.resource = dispense("resource").(grpcplugin.ResourceClient)
	g.stream = dispense("stream").(grpcplugin.StreamClient)
	g.diagnostics = dispense("diagnostics").(grpcplugin.DiagnosticsClient)
	g.pctx = backend.PluginContext{
		OrgID:    1,
		PluginID: "tripwiresec-tripwire-datasource",
		User:     &backend.User{Login: "analyst", Role: "Viewer"},
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID: 1, UID: "tw", Name: "TripWire", JSONData: settings, Updated: time.Now(),
		},
	}
	return g
}

func settingsFor(dsn string) []byte {
	u, _ := url.Parse(dsn)
	return fmt.Appendf(nil, `{"host":%q,"port":%q,"database":%q,"user":"postgres","sslMode":"disable"}`,
		u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"))
}

func seed(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	_, err = conn.Exec(ctx, `INSERT INTO hosts (host_name, status, last_seen) VALUES ('web-01', '`+contract.StatusOnline+`', now());
INSERT INTO alerts (alert_id, event_time, host_id, host_name, event_name, tripwire_type, rule_name, severity, seq, summary, event_detail)
SELECT ('0190d000-0000-7000-8000-00000000000' || g)::uuid, now() - g * interval '1 minute', host_id, host_name,
       'tripwire.file.access', 'file', 'shadow-read', CASE WHEN g % 2 = 0 THEN 'CRITICAL' ELSE 'WARN' END, g,
       'read of /etc/shadow #' || g, '{"file.path":"/etc/shadow"}'
FROM hosts, generate_series(1, 6) g`)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestPluginProtocol(t *testing.T) {
	dsn := pgtest.NewSchemaDB(t)
	conn := seed(t, dsn)
	g := start(t, settingsFor(dsn))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	to := backend.ToProto()
	from := backend.FromProto()

	// CheckHealth really connects.
	health, err := g.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: to.PluginContext(g.pctx)})
	if err != nil {
		t.Fatal(err)
	}
	if h := from.CheckHealthResponse(health); h.Status != backend.HealthStatusOk || !strings.Contains(h.Message, "1 hosts") {
		t.Fatalf("health: %+v", h)
	}

	// QueryData: counts by severity as labelled numeric frames, and logs.
	now := time.Now()
	qreq := &backend.QueryDataRequest{PluginContext: g.pctx, Queries: []backend.DataQuery{
		{RefID: "counts", JSON: []byte(`{"queryType":"counts","groupBy":"severity"}`), Interval: time.Minute,
			MaxDataPoints: 100, TimeRange: backend.TimeRange{From: now.Add(-time.Hour), To: now}},
		{RefID: "logs", JSON: []byte(`{"queryType":"alerts","severity":"CRITICAL"}`),
			TimeRange: backend.TimeRange{From: now.Add(-time.Hour), To: now}},
		{RefID: "bad", JSON: []byte(`{"queryType":"alerts","type":"x"}`),
			TimeRange: backend.TimeRange{From: now.Add(-time.Hour), To: now}},
	}}
	presp, err := g.data.QueryData(ctx, to.QueryDataRequest(qreq))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := from.QueryDataResponse(presp)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	labels := map[string]bool{}
	for _, fr := range resp.Responses["counts"].Frames {
		labels[fr.Fields[1].Labels["severity"]] = true
		for i := 0; i < fr.Fields[1].Len(); i++ {
			total += fr.Fields[1].At(i).(int64)
		}
	}
	if total != 6 || !labels["CRITICAL"] || !labels["WARN"] {
		t.Fatalf("counts: total %d, labels %v", total, labels)
	}
	logs := resp.Responses["logs"].Frames[0]
	if n, _ := logs.RowLen(); n != 3 || logs.Meta.Type != data.FrameTypeLogLines {
		t.Fatalf("logs frame: %d rows, meta %+v", n, logs.Meta)
	}
	if r := resp.Responses["bad"]; r.Error == nil || r.Status != backend.StatusBadRequest {
		t.Fatalf("bad query: %v %v", r.Status, r.Error)
	}

	// CallResource: a route, a 400 and a 405, over gRPC.
	call := func(method, path, role string) (int, string) {
		pctx := g.pctx
		pctx.User = &backend.User{Role: role}
		u, _ := url.Parse(path)
		st, err := g.resource.CallResource(ctx, to.CallResourceRequest(&backend.CallResourceRequest{
			PluginContext: pctx, Path: strings.TrimPrefix(u.Path, "/"), URL: strings.TrimPrefix(path, "/"), Method: method,
		}))
		if err != nil {
			t.Fatal(err)
		}
		var status int
		var body []byte
		for {
			r, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rr := from.CallResourceResponse(r)
			if rr.Status != 0 {
				status = rr.Status
			}
			body = append(body, rr.Body...)
		}
		return status, string(body)
	}
	if status, body := call("GET", "/api/v1/alerts?severity=WARN&limit=2", "Viewer"); status != 200 || strings.Count(body, `"alert_id"`) != 2 || !strings.Contains(body, "next_cursor") {
		t.Fatalf("GET alerts: %d %s", status, body)
	}
	if status, body := call("GET", "/api/v1/alerts?limit=0", "Viewer"); status != 400 || !strings.Contains(body, "limit") {
		t.Fatalf("bad limit: %d %s", status, body)
	}
	if status, _ := call("DELETE", "/api/v1/hosts", "Admin"); status != 405 {
		t.Fatalf("DELETE hosts: %d", status)
	}
	// Grafana checks datasources:query before the call reaches the
	// plugin; a user granted it through RBAC may have no org role.
	if status, _ := call("GET", "/api/v1/hosts", "None"); status != 200 {
		t.Fatalf("RBAC-only user: %d", status)
	}

	// Streams: subscribe, run, and receive a frame for an INSERT + NOTIFY.
	sub, err := g.stream.SubscribeStream(ctx, to.SubscribeStreamRequest(&backend.SubscribeStreamRequest{
		PluginContext: g.pctx, Path: "alerts/severity=CRITICAL"}))
	if err != nil || sub.Status != pluginv2.SubscribeStreamResponse_OK || len(sub.Data) == 0 {
		t.Fatalf("subscribe: %v %v", sub, err)
	}
	if pub, err := g.stream.PublishStream(ctx, to.PublishStreamRequest(&backend.PublishStreamRequest{
		PluginContext: g.pctx, Path: "alerts", Data: []byte(`{}`)})); err != nil || pub.Status != pluginv2.PublishStreamResponse_PERMISSION_DENIED {
		t.Fatalf("publish: %v %v", pub, err)
	}
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	run, err := g.stream.RunStream(streamCtx, to.RunStreamRequest(&backend.RunStreamRequest{
		PluginContext: g.pctx, Path: "alerts/severity=CRITICAL"}))
	if err != nil {
		t.Fatal(err)
	}
	packets := make(chan *pluginv2.StreamPacket, 16)
	go func() {
		defer close(packets)
		for {
			p, err := run.Recv()
			if err != nil {
				return
			}
			packets <- p
		}
	}()
	// RunStream starts listening asynchronously; NOTIFY until the frame
	// arrives (each NOTIFY carries a new alert), without assuming a delay.
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case p, ok := <-packets:
			if !ok {
				t.Fatal("stream ended")
			}
			var fr data.Frame
			if err := json.Unmarshal(p.Data, &fr); err != nil {
				t.Fatal(err)
			}
			sev, _ := fr.FieldByName("severity")
			if sev == nil || sev.At(0) != "CRITICAL" {
				t.Fatalf("stream frame: %v", p.Data)
			}
			return
		case <-tick.C:
			id := fmt.Sprintf("0190d000-0000-7000-8000-1000000%05d", i)
			now, seq := time.Now().UTC().Format(contract.NotifyTimeLayout), int64(100+i)
			payload, _ := json.Marshal([]contract.Notification{{AlertID: id, EventTime: now, ReceivedAt: now, HostName: "web-01",
				EventName: "tripwire.file.access", TripwireType: "file", RuleName: "shadow-read", Severity: "CRITICAL", Seq: &seq, Summary: "streamed"}})
			// The feed delivers only stored rows: insert, then notify.
			if _, err := conn.Exec(ctx, `INSERT INTO alerts (alert_id, event_time, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail)
SELECT $1, $2, host_id, host_name, 'tripwire.file.access', 'file', 'shadow-read', 'CRITICAL', $3, 'streamed', '{}'
FROM hosts WHERE host_name = 'web-01'`, id, now, seq); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `SELECT pg_notify($1, $2)`, contract.NotifyChannel, string(payload)); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("no stream frame within 60 s")
		}
	}
}
