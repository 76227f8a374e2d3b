package tripwirereceiver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
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

func received(f *fixture) []plog.Logs { return f.sink.AllLogs() }

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

func TestRefusesClientWithoutCertificate(t *testing.T) {
	f := start(t, newPKI(t))
	_, err := export(t, f.client(t, nil), logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Empty(t, received(f))
}

func TestRefusesCertificateFromAnotherCA(t *testing.T) {
	f := start(t, newPKI(t))
	other := newPKI(t)
	is, err := pki.IssueAgent(other, "web-01", 0)
	require.NoError(t, err)
	cert, err := tls.LoadX509KeyPair(is.CertFile, is.KeyFile)
	require.NoError(t, err)
	_, err = export(t, f.client(t, nil, cert), logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Empty(t, received(f))
}

func TestRefusesExpiredCertificate(t *testing.T) {
	f := start(t, newPKI(t))
	// pki refuses to issue an expired certificate, so sign one directly
	// with the CA's key.
	cert := signAgent(t, f.dir, "web-01", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	_, err := export(t, f.client(t, nil, cert), logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Empty(t, received(f))
}

func TestRefusesTLS12(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, func(tc *tls.Config) { tc.MaxVersion = tls.VersionTLS12 }, f.agent(t, "web-01"))
	_, err := export(t, c, logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Error(t, err)
	require.Contains(t, err.Error(), "protocol version")
	require.Empty(t, received(f))
}

func TestRefusesRevokedCertificate(t *testing.T) {
	dir := newPKI(t)
	// Revoked before the collector starts: refused at the handshake.
	early, err := pki.IssueAgent(dir, "lost-laptop", 0)
	require.NoError(t, err)
	_, err = pki.Revoke(dir, "lost-laptop")
	require.NoError(t, err)
	f := start(t, dir)
	earlyCert, err := tls.LoadX509KeyPair(early.CertFile, early.KeyFile)
	require.NoError(t, err)
	_, err = export(t, f.client(t, nil, earlyCert), logs(map[string][]*event.Event{"": {trip("/x")}}))
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Equal(t, int64(1), counterByReason(t, f, "otelcol_tripwire_receiver_refused_connections")["revoked"])

	// Revoked while connected: the CRL file is reloaded, new handshakes are
	// refused and so are further requests on the open connection.
	cert := f.agent(t, "db-01")
	open := f.client(t, nil, cert)
	_, err = export(t, open, logs(map[string][]*event.Event{"": {trip("/a")}}))
	require.NoError(t, err)
	_, err = pki.Revoke(f.dir, "db-01")
	require.NoError(t, err)

	// Until the CRL is reloaded (within a second or so) requests still pass.
	deadline := time.Now().Add(30 * time.Second)
	passed := 1
	for {
		_, err = export(t, open, logs(map[string][]*event.Event{"": {trip("/b")}}))
		if err != nil || time.Now().After(deadline) {
			break
		}
		passed++
		time.Sleep(200 * time.Millisecond)
	}
	require.Error(t, err, "open connection still accepted after revocation")
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "revoked")

	_, err = export(t, f.client(t, nil, cert), logs(map[string][]*event.Event{"": {trip("/c")}}))
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.GreaterOrEqual(t, counterByReason(t, f, "otelcol_tripwire_receiver_refused_connections")["revoked"], int64(3))

	// Nothing got through after the refusal.
	require.Len(t, received(f), passed)
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

// signAgent signs a client certificate with any validity window, which pki
// rightly refuses to do, using the CA's key.
func signAgent(t *testing.T, dir, host string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	require.NoError(t, err)
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	require.NoError(t, err)
	blk, _ = pem.Decode(keyPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// gatedConsumer records every ConsumeLogs call; the first call blocks until
// the gate opens. A call returns err, or a permanent error when it carries
// the path poison; the paths of the calls it accepts are counted.
type gatedConsumer struct {
	mu       sync.Mutex
	calls    []int          // records per call
	accepted map[string]int // file.path → times accepted
	hosts    map[string]string
	entered  chan struct{}
	gate     chan struct{}
	err      error
	poison   string
}

func newGatedConsumer(err error, poison string) *gatedConsumer {
	return &gatedConsumer{accepted: map[string]int{}, hosts: map[string]string{},
		entered: make(chan struct{}), gate: make(chan struct{}), err: err, poison: poison}
}

func (g *gatedConsumer) consumer(t testing.TB) consumer.Logs {
	c, err := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		g.mu.Lock()
		g.calls = append(g.calls, ld.LogRecordCount())
		first := len(g.calls) == 1
		paths := map[string]string{}
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			host, _ := rl.Resource().Attributes().Get(event.ResourceHostName)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					p, _ := lrs.At(k).Attributes().Get("file.path")
					paths[p.Str()] = host.Str()
				}
			}
		}
		err := g.err
		if _, bad := paths[g.poison]; bad && g.poison != "" {
			err = consumererror.NewPermanent(errors.New("poison"))
		}
		if err == nil {
			for p, h := range paths {
				g.accepted[p]++
				g.hosts[p] = h
			}
		}
		g.mu.Unlock()
		if first {
			close(g.entered)
			<-g.gate
		}
		return err
	})
	require.NoError(t, err)
	return c
}

// Requests arriving while a group is being consumed go on together as the
// next group: one ConsumeLogs for all of them, every record once, each still
// under the host its certificate names, and every request answered with the
// group's result. A permanent refusal is found out request by request, so it
// refuses only the request it concerns.
func TestConcurrentRequestsAreConsumedAsOneGroup(t *testing.T) {
	const waiting = 20
	for _, tc := range []struct {
		name   string
		err    error
		poison string
		want   codes.Code
		calls  []int
	}{
		{"accepted", nil, "", codes.OK, []int{1, waiting}},
		{"refused", errors.New("queue full"), "", codes.Unavailable, []int{1, waiting}},
		{"one refused for good", nil, "/p3", codes.OK,
			append([]int{1, waiting}, slices.Repeat([]int{1}, waiting)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGatedConsumer(tc.err, tc.poison)
			f := startWith(t, newPKI(t), g.consumer(t))
			var open sync.Once
			t.Cleanup(func() { open.Do(func() { close(g.gate) }) }) // shutdown waits for the consumer
			// One connection per request, as agents make: a connection
			// carries at most max_concurrent_streams requests at once.
			hosts := []string{"web-01", "web-02", "db-01"}
			certs := map[string]tls.Certificate{}
			for _, h := range hosts {
				certs[h] = f.agent(t, h)
			}
			conns := make([]plogotlp.GRPCClient, waiting+1)
			for i := range conns {
				h := hosts[i%3]
				if i == waiting {
					h = "web-01"
				}
				conns[i] = f.client(t, nil, certs[h])
			}
			first := logs(map[string][]*event.Event{"": {trip("/first")}})
			reqs := make([]plog.Logs, waiting)
			for i := range reqs {
				reqs[i] = logs(map[string][]*event.Event{"": {trip(fmt.Sprintf("/p%d", i))}})
			}
			type result struct {
				path string
				code codes.Code
			}
			results := make(chan result, waiting+1)
			send := func(c plogotlp.GRPCClient, path string, ld plog.Logs) {
				_, err := export(t, c, ld)
				results <- result{path, status.Code(err)}
			}
			go send(conns[waiting], "/first", first)
			<-g.entered // the first request's group is being consumed
			for i := range waiting {
				go send(conns[i], fmt.Sprintf("/p%d", i), reqs[i])
			}
			require.Eventually(t, func() bool {
				f.rcv.group.mu.Lock()
				defer f.rcv.group.mu.Unlock()
				return len(f.rcv.group.pending) == waiting
			}, 20*time.Second, 5*time.Millisecond)
			open.Do(func() { close(g.gate) })
			for range waiting + 1 {
				r := <-results
				want := tc.want
				if r.path == tc.poison {
					want = codes.InvalidArgument
				}
				require.Equal(t, want, r.code, r.path)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			require.Equal(t, tc.calls, g.calls)
			if tc.err != nil {
				return
			}
			for i := range waiting {
				p := fmt.Sprintf("/p%d", i)
				if p == tc.poison {
					require.Zero(t, g.accepted[p], p)
					continue
				}
				require.Equal(t, 1, g.accepted[p], p)
				require.Equal(t, hosts[i%3], g.hosts[p], p)
			}
		})
	}
}

// After Shutdown, a request is refused as retryable instead of waiting for a
// group that will never come.
func TestGroupCommitRefusesAfterClose(t *testing.T) {
	sink := new(consumertest.LogsSink)
	g := newGroupCommit(sink)
	require.NoError(t, g.consume(logs(map[string][]*event.Event{"web-01": {trip("/a")}})))
	g.close()
	g.close() // twice is fine
	require.ErrorIs(t, g.consume(logs(map[string][]*event.Event{"web-01": {trip("/b")}})), errShuttingDown)
	require.Equal(t, 1, sink.LogRecordCount())
}
