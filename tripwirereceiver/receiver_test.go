package tripwirereceiver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
	"github.com/tripwire-sec/tripwire/tripwirereceiver/internal/metadatatest"
)

// fixture is a PKI, a running receiver on a loopback port and the sink
// behind it.
type fixture struct {
	dir  string
	rcv  *tripwireReceiver
	sink *consumertest.LogsSink
	tt   *componenttest.Telemetry
	ca   *x509.CertPool
}

func newPKI(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	require.NoError(t, pki.Init(dir))
	_, err := pki.IssueServer(dir, []string{"localhost", "127.0.0.1"}, 0)
	require.NoError(t, err)
	return dir
}

func start(t testing.TB, dir string) *fixture {
	t.Helper()
	sink := new(consumertest.LogsSink)
	f := startWith(t, dir, sink)
	f.sink = sink
	return f
}

// startWith starts the receiver with next behind it.
func startWith(t testing.TB, dir string, next consumer.Logs) *fixture {
	t.Helper()
	return startConfiguredWith(t, dir, next, nil)
}

// startConfigured is start with the configuration changed by tweak.
func startConfigured(t testing.TB, dir string, tweak func(*Config)) *fixture {
	t.Helper()
	sink := new(consumertest.LogsSink)
	f := startConfiguredWith(t, dir, sink, tweak)
	f.sink = sink
	return f
}

// startConfiguredWith is startWith with the configuration changed by tweak.
func startConfiguredWith(t testing.TB, dir string, next consumer.Logs, tweak func(*Config)) *fixture {
	t.Helper()
	f := &fixture{dir: dir, tt: componenttest.NewTelemetry()}
	t.Cleanup(func() { require.NoError(t, f.tt.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = "127.0.0.1:0"
	cfg.TLS = TLSConfig{
		CertFile:     filepath.Join(dir, pki.ServerCertFile),
		KeyFile:      filepath.Join(dir, pki.ServerKeyFile),
		ClientCAFile: filepath.Join(dir, pki.CACertFile),
		CRLFile:      filepath.Join(dir, pki.CRLFile),
	}
	if tweak != nil {
		tweak(cfg)
	}
	require.NoError(t, cfg.Validate())
	r, err := newTripwireReceiver(cfg, metadatatest.NewSettings(f.tt), next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	f.rcv = r
	caPEM, err := os.ReadFile(cfg.TLS.ClientCAFile)
	require.NoError(t, err)
	f.ca = x509.NewCertPool()
	require.True(t, f.ca.AppendCertsFromPEM(caPEM))
	return f
}

// agent issues a client certificate for host from the fixture's CA.
func (f *fixture) agent(t testing.TB, host string) tls.Certificate {
	t.Helper()
	is, err := pki.IssueAgent(f.dir, host, 0)
	require.NoError(t, err)
	c, err := tls.LoadX509KeyPair(is.CertFile, is.KeyFile)
	require.NoError(t, err)
	return c
}

// client dials the receiver as an OTLP client with the given certificates
// (none for no client certificate).
func (f *fixture) client(t testing.TB, tweak func(*tls.Config), certs ...tls.Certificate) plogotlp.GRPCClient {
	t.Helper()
	tc := &tls.Config{RootCAs: f.ca, ServerName: "localhost", Certificates: certs, MinVersion: tls.VersionTLS12}
	if tweak != nil {
		tweak(tc)
	}
	conn, err := grpc.NewClient(f.rcv.addr.String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return plogotlp.NewGRPCClient(conn)
}

func export(t testing.TB, c plogotlp.GRPCClient, ld plog.Logs) (plogotlp.ExportResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
}

var seq uint64

// trip is a valid file-access event.
func trip(path string) *event.Event {
	seq++
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &event.Event{
		Name: event.FileAccess, AlertID: event.NewAlertID(), Seq: seq, Severity: event.SeverityWarn,
		Rule: "secrets", Time: now, ObservedTime: now, Mechanism: "fanotify",
		File:    &event.File{Path: path},
		Process: &event.Process{PID: 4242, PPID: 1, UserName: "root", UserID: "0", ExecutablePath: "/usr/bin/cat", CommandLine: "cat " + path},
	}
}

// logs builds one ResourceLogs per resource host name ("" = no host.name),
// each with the given events.
func logs(resources map[string][]*event.Event) plog.Logs {
	ld := plog.NewLogs()
	for host, evs := range resources {
		rl := ld.ResourceLogs().AppendEmpty()
		if host != "" {
			rl.Resource().Attributes().PutStr(event.ResourceHostName, host)
		}
		rl.Resource().Attributes().PutStr(event.ResourceServiceName, event.ServiceName)
		sl := rl.ScopeLogs().AppendEmpty()
		for _, e := range evs {
			e.CopyTo(sl.LogRecords().AppendEmpty())
		}
	}
	return ld
}

// received is what the agents' requests handed on, without the receiver's
// own refusal records.
func received(f *fixture) []plog.Logs {
	var out []plog.Logs
	for _, ld := range f.sink.AllLogs() {
		agents := plog.NewLogs()
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			if rl := ld.ResourceLogs().At(i); !event.IsRefusal(rl) {
				rl.CopyTo(agents.ResourceLogs().AppendEmpty())
			}
		}
		if agents.ResourceLogs().Len() > 0 {
			out = append(out, agents)
		}
	}
	return out
}

// refused is the receiver's refusal records handed on so far.
func refused(t testing.TB, f *fixture) []event.Refusal {
	t.Helper()
	var out []event.Refusal
	for _, ld := range f.sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			if rl := ld.ResourceLogs().At(i); event.IsRefusal(rl) {
				rs, err := event.RefusalsFrom(rl)
				require.NoError(t, err)
				out = append(out, rs...)
			}
		}
	}
	return out
}

// rejectedMetric returns the rejected-records counter by reason.
func rejectedMetric(t *testing.T, f *fixture) map[string]int64 {
	return counterByReason(t, f, "otelcol_tripwire_receiver_rejected_log_records")
}

func counterByReason(t *testing.T, f *fixture, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := f.tt.GetMetric(name)
	if err != nil {
		return out // not recorded yet
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(attribute.Key("reason"))
		out[r.AsString()] += dp.Value
	}
	return out
}

func TestBindsIdentityFromCertificate(t *testing.T) {
	f := start(t, newPKI(t))
	cert := f.agent(t, "web-01")
	c := f.client(t, nil, cert)

	// The agent may omit host.name or spell it in another case: the
	// certificate's CN is what is stored. client.address and the
	// certificate's expiry sent by the agent are overwritten.
	ld := logs(map[string][]*event.Event{"WEB-01": {trip("/etc/shadow")}, "": {trip("/etc/passwd")}})
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.KeyClientAddress, "10.9.9.9")
	resp, err := export(t, c, ld)
	require.NoError(t, err)
	require.Equal(t, int64(0), resp.PartialSuccess().RejectedLogRecords())

	got := received(f)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].LogRecordCount())
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	for i := 0; i < got[0].ResourceLogs().Len(); i++ {
		attrs := got[0].ResourceLogs().At(i).Resource().Attributes()
		h, _ := attrs.Get(event.ResourceHostName)
		require.Equal(t, "web-01", h.Str())
		_, onResource := attrs.Get(event.KeyClientAddress)
		require.False(t, onResource, "client.address belongs on the records")
		na, _ := attrs.Get(event.ResourceClientCertNotAfter)
		require.Equal(t, leaf.NotAfter.UTC().Format(time.RFC3339), na.Str())
		serial, _ := attrs.Get(event.ResourceClientCertSerial)
		require.Equal(t, leaf.SerialNumber.Text(16), serial.Str())
		lr := got[0].ResourceLogs().At(i).ScopeLogs().At(0).LogRecords().At(0)
		a, _ := lr.Attributes().Get(event.KeyClientAddress)
		require.Equal(t, "127.0.0.1", a.Str())
	}
	// The events survive the trip unchanged.
	lr := got[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	e, err := event.FromLogRecord(lr)
	require.NoError(t, err)
	require.NoError(t, e.Validate())
	require.Equal(t, event.FileAccess, e.Name)
	require.Empty(t, rejectedMetric(t, f))
}

func TestRefusesAnotherHostsName(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, nil, f.agent(t, "web-01"))

	// Everything claims another host: refused outright with PermissionDenied,
	// so a misconfigured agent keeps its events and says why.
	_, err := export(t, c, logs(map[string][]*event.Event{"db-02": {trip("/x"), trip("/y")}}))
	require.Error(t, err)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), `resource host.name "db-02" is not the client certificate's host "web-01"`)
	require.Empty(t, received(f))
	require.Equal(t, map[string]int64{"host_mismatch": 2}, rejectedMetric(t, f))

	// Mixed: the foreign resource is dropped whole, the own one lands.
	mine := []*event.Event{trip("/own1"), trip("/own2")}
	resp, err := export(t, c, logs(map[string][]*event.Event{"web-01": mine, "db-02": {trip("/foreign")}}))
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "rejected 1 of 3 log records; first: log record ")
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `permission denied: resource host.name "db-02"`)
	got := received(f)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].LogRecordCount())
	require.Equal(t, []string{"/own1", "/own2"}, paths(t, got[0]))

	// A record-level host.name claim is refused for that record only.
	ld := logs(map[string][]*event.Event{"": {trip("/r1"), trip("/r2")}})
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().PutStr(event.ResourceHostName, "db-02")
	resp, err = export(t, c, ld)
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `log record 1: permission denied: attribute host.name "db-02"`)
	require.Equal(t, map[string]int64{"host_mismatch": 4}, rejectedMetric(t, f))
}

func TestMalformedRecordRejectedRestAccepted(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, nil, f.agent(t, "web-01"))

	good1, bad, good2 := trip("/g1"), trip("/bad"), trip("/g2")
	ld := logs(map[string][]*event.Event{"web-01": {good1, bad, good2}})
	// The middle record loses its file path.
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().Remove("file.path")
	resp, err := export(t, c, ld)
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	require.Equal(t,
		`rejected 1 of 3 log records; first: log record 1 ("tripwire.file.access", alert_id `+bad.AlertID.String()+`): missing field: file.path`,
		resp.PartialSuccess().ErrorMessage())
	got := received(f)
	require.Len(t, got, 1)
	require.Equal(t, []string{"/g1", "/g2"}, paths(t, got[0]))
	require.Equal(t, map[string]int64{"missing_field": 1}, rejectedMetric(t, f))

	// Each class of malformed record gets its reason.
	cases := []struct {
		reason string
		mutate func(lr plog.LogRecord)
	}{
		{"unknown_event_name", func(lr plog.LogRecord) {
			lr.SetEventName("tripwire.file.teleport")
			lr.Attributes().Remove(event.KeyType)
		}},
		{"wrong_attribute_type", func(lr plog.LogRecord) { lr.Attributes().PutStr("process.pid", "4242") }},
		{"bad_severity", func(lr plog.LogRecord) { lr.SetSeverityText("PANIC") }},
		{"invalid_utf8", func(lr plog.LogRecord) { lr.Attributes().PutStr("file.path", "/etc/\xff") }},
		{"oversize_value", func(lr plog.LogRecord) { lr.Attributes().PutStr("file.path", "/"+strings.Repeat("a", 5000)) }},
		{"bad_value", func(lr plog.LogRecord) { lr.Attributes().PutStr(event.KeyHash, "not-a-hash") }},
		{"forbidden_event", func(lr plog.LogRecord) {
			e := &event.Event{Name: event.AuditChainBreak, AlertID: event.NewAlertID(), Severity: event.SeverityCritical,
				Time: time.Now(), ObservedTime: time.Now(), Audit: &event.AuditBreak{Kind: event.BreakGap}}
			e.CopyTo(lr)
		}},
	}
	for _, tc := range cases {
		ld := logs(map[string][]*event.Event{"": {trip("/ok"), trip("/bad")}})
		tc.mutate(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1))
		resp, err := export(t, c, ld)
		require.NoError(t, err, tc.reason)
		require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords(), tc.reason)
		require.Contains(t, resp.PartialSuccess().ErrorMessage(), "first: log record 1", tc.reason)
		require.Equal(t, int64(1), rejectedMetric(t, f)[tc.reason], "%s: %s", tc.reason, resp.PartialSuccess().ErrorMessage())
	}

	// A request of nothing but malformed records is still a (partial)
	// success: retrying it cannot help, and the agent must not loop on it.
	ld = logs(map[string][]*event.Event{"": {trip("/bad2")}})
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).SetEventName("")
	resp, err = export(t, c, ld)
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `log record 0: unknown event name ""`)
}

func TestConsumerErrorsMapToRetryableStatus(t *testing.T) {
	f := startWith(t, newPKI(t), consumertest.NewErr(errors.New("queue full")))
	c := f.client(t, nil, f.agent(t, "web-01"))
	_, err := export(t, c, logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

func TestConfigValidate(t *testing.T) {
	cfg := &Config{}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"endpoint is required",
		"tls.cert_file is required",
		"tls.key_file is required",
		"tls.client_ca_file is required",
		"max_recv_msg_size 0",
	} {
		require.Contains(t, err.Error(), want)
	}
	cfg = createDefaultConfig().(*Config)
	cfg.Endpoint = "no-port"
	cfg.TLS = TLSConfig{CertFile: "a", KeyFile: "b", ClientCAFile: "c"}
	require.ErrorContains(t, cfg.Validate(), `endpoint "no-port"`)
	cfg.Endpoint = "0.0.0.0:4317"
	require.NoError(t, cfg.Validate())
}

func TestStartFailsCleanlyOnBadFiles(t *testing.T) {
	dir := newPKI(t)
	for name, mutate := range map[string]func(*Config){
		"missing CA":     func(c *Config) { c.TLS.ClientCAFile = filepath.Join(dir, "nope.crt") },
		"CRL of another": func(c *Config) { c.TLS.CRLFile = filepath.Join(newPKI(t), pki.CRLFile) },
		"bad key":        func(c *Config) { c.TLS.KeyFile = filepath.Join(dir, pki.CACertFile) },
		"port in use":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Endpoint = "127.0.0.1:0"
			cfg.TLS = TLSConfig{
				CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
				ClientCAFile: filepath.Join(dir, pki.CACertFile), CRLFile: filepath.Join(dir, pki.CRLFile),
			}
			if mutate != nil {
				mutate(cfg)
			} else {
				f := start(t, dir)
				cfg.Endpoint = f.rcv.addr.String()
			}
			tt := componenttest.NewTelemetry()
			defer tt.Shutdown(context.Background())
			r, err := newTripwireReceiver(cfg, metadatatest.NewSettings(tt), consumertest.NewNop())
			require.NoError(t, err)
			require.Error(t, r.Start(context.Background(), componenttest.NewNopHost()))
			require.NoError(t, r.Shutdown(context.Background()))
		})
	}
}

func paths(t *testing.T, ld plog.Logs) []string {
	t.Helper()
	var out []string
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				v, ok := lrs.At(k).Attributes().Get("file.path")
				require.True(t, ok)
				out = append(out, v.Str())
			}
		}
	}
	return out
}
