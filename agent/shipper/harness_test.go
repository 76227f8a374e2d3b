package shipper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and an agent
// certificate, made with internal/pki as an operator would.
type testPKI struct {
	dir              string
	ca               string
	serverCert       tls.Certificate
	agentCert, agent string // paths of the agent's cert and key
}

func newTestPKI(t testing.TB, agentValidity time.Duration) *testPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	srv, err := pki.IssueServer(dir, []string{"127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := pki.IssueAgent(dir, "host-a", agentValidity)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: dir, ca: filepath.Join(dir, pki.CACertFile), serverCert: sc,
		agentCert: ag.CertFile, agent: ag.KeyFile}
}

// reissue writes a new agent certificate over the old files, as an operator
// renewing it would, and returns its serial.
func (p *testPKI) reissue(t testing.TB, validity time.Duration) string {
	t.Helper()
	is, err := pki.IssueAgent(p.dir, "host-a", validity)
	if err != nil {
		t.Fatal(err)
	}
	return is.Serial
}

func (p *testPKI) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(p.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// received is one log record as the test collector decoded it.
type received struct {
	ev       *event.Event
	resource map[string]string
	serial   string // the client certificate's serial, lowercase hex
	at       time.Time
}

// testCollector is a real OTLP/gRPC logs server with mutual TLS. Its
// verdict hooks let a test make it refuse or partially reject requests.
type testCollector struct {
	plogotlp.UnimplementedGRPCServer
	t    testing.TB
	tls  *tls.Config
	addr string

	mu       sync.Mutex
	srv      *grpc.Server
	logs     []received
	calls    int
	refuse   func(evs []*event.Event) error // non-nil error: refuse the whole request with it
	reject   func(e *event.Event) bool      // true: reject this record (partial success)
	onExport func(n int, serial string)     // called for every request, after the verdict
	seen     map[string]map[string]struct{} // event name → serials seen
}

func startCollector(t testing.TB, p *testPKI) *testCollector {
	t.Helper()
	c := &testCollector{t: t, tls: p.serverTLS(t), addr: "127.0.0.1:0"}
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *testCollector) start() {
	c.t.Helper()
	lis, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatalf("listening: %v", err)
	}
	srv := grpc.NewServer(grpc.Creds(grpccreds.NewTLS(c.tls)))
	plogotlp.RegisterGRPCServer(srv, c)
	c.mu.Lock()
	c.addr = lis.Addr().String()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(lis)
}

// stop closes the server and every connection, like a collector going down.
func (c *testCollector) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (c *testCollector) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	serial := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(grpccreds.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			serial = fmt.Sprintf("%x", ti.State.PeerCertificates[0].SerialNumber)
		}
	}
	now := time.Now()
	var got []received
	rls := req.Logs().ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := map[string]string{}
		rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			res[k] = v.AsString()
			return true
		})
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				ev, err := event.FromLogRecord(lrs.At(k))
				if err != nil {
					c.t.Errorf("test collector: decoding a record: %v", err)
					continue
				}
				got = append(got, received{ev: ev, resource: res, serial: serial, at: now})
			}
		}
	}
	evs := make([]*event.Event, len(got))
	for i := range got {
		evs[i] = got[i].ev
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.onExport != nil {
		defer c.onExport(len(got), serial)
	}
	if c.refuse != nil {
		if err := c.refuse(evs); err != nil {
			return plogotlp.NewExportResponse(), err
		}
	}
	resp := plogotlp.NewExportResponse()
	var rejected int64
	for _, r := range got {
		if c.reject != nil && c.reject(r.ev) {
			rejected++
			continue
		}
		c.logs = append(c.logs, r)
	}
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(fmt.Sprintf("%d records failed validation", rejected))
	}
	return resp, nil
}

func (c *testCollector) setRefuse(f func([]*event.Event) error) {
	c.mu.Lock()
	c.refuse = f
	c.mu.Unlock()
}

// trips returns the chained events received so far, in arrival order
// (heartbeats are left out).
func (c *testCollector) trips() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []received
	for _, r := range c.logs {
		if r.ev.Name != event.AgentHeartbeat {
			out = append(out, r)
		}
	}
	return out
}

func (c *testCollector) heartbeats() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []received
	for _, r := range c.logs {
		if r.ev.Name == event.AgentHeartbeat {
			out = append(out, r)
		}
	}
	return out
}

// chain makes n file trips continuing a chain after seq/prev, hashed as the
// audit chain does, so they are what the spool holds in production.
type chain struct {
	seq  uint64
	prev string
}

func newChain() *chain { return &chain{prev: event.GenesisHash} }

func (c *chain) next(n int, sev event.Severity) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		c.seq++
		now := time.Now().UTC()
		e := &event.Event{
			Name:         event.FileAccess,
			AlertID:      event.NewAlertID(),
			Seq:          c.seq,
			Severity:     sev,
			Rule:         "ssh-keys",
			Time:         now,
			ObservedTime: now,
			Mechanism:    "fanotify",
			Process: &event.Process{PID: 4242, PPID: 1, ExecutablePath: "/usr/bin/cat",
				CommandLine: fmt.Sprintf("cat /root/.ssh/id_ed25519 #%d", c.seq), UserName: "root", UserID: "0"},
			File: &event.File{Path: "/root/.ssh/id_ed25519"},
		}
		e.PrevHash = c.prev
		e.Hash = event.ChainHash(c.prev, e.Canonical())
		c.prev = e.Hash
		out[i] = e
	}
	return out
}

func openSpool(t testing.TB) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(spool.Options{Path: filepath.Join(t.TempDir(), "spool.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func put(t testing.TB, sp *spool.Spool, evs []*event.Event) {
	t.Helper()
	ctx := context.Background()
	if err := sp.Put(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

var testResource = Resource{HostName: "host-a", HostID: "4f1c0e2a", OSType: "linux", HostArch: "amd64", ServiceVersion: "0.1.0-test"}

func testConfig(p *testPKI, c *testCollector) Config {
	return Config{
		Endpoint:          c.addr,
		CAFile:            p.ca,
		CertFile:          p.agentCert,
		KeyFile:           p.agent,
		HeartbeatInterval: time.Hour, // tests that want heartbeats shorten it
		Resource:          testResource,
		MaxBackoff:        500 * time.Millisecond,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runShipper starts a shipper and stops it at cleanup.
func runShipper(t testing.TB, cfg Config, sp *spool.Spool, reg prometheus.Registerer) *Shipper {
	t.Helper()
	s, err := New(cfg, sp, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// testWait bounds every wait: generous, for a loaded two-core machine and
// the race detector.
const testWait = 2 * time.Minute

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spooled counts the events in the spool by reading them, not from the
// spool's own counter, so the tests check what is really left.
func spooled(t testing.TB, sp *spool.Spool) int {
	t.Helper()
	items, err := sp.Oldest(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// waitEmpty waits until the spool holds nothing, and says what is left if
// it never does.
func waitEmpty(t testing.TB, sp *spool.Spool, c *testCollector) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		items, err := sp.Oldest(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the spool to empty: %d events left from seq %d; collector has %d trips",
				spooled(t, sp), items[0].ID, len(c.trips()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
