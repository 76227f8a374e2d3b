package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// TestForwardPipelineCarriesBoundIdentity runs the built collector with the
// tripwire receiver forwarding through the stock otlp_grpc exporter to a
// plain OTLP server: what arrives there carries the certificate's host name,
// whatever the agent claimed, and the peer address.
func TestForwardPipelineCarriesBoundIdentity(t *testing.T) {
	dir := pkiDir(t)
	if _, err := pki.IssueAgent(dir, "web-01", 0); err != nil {
		t.Fatal(err)
	}
	sink := startSink(t)
	recvPort, healthPort := freePort(t), freePort(t)
	col := startCollector(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  file_storage:
    directory: %s
receivers:
  tripwire:
    endpoint: 127.0.0.1:%d
    tls:
      cert_file: %[4]s/server.crt
      key_file: %[4]s/server.key
      client_ca_file: %[4]s/ca.crt
      crl_file: %[4]s/crl.pem
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 75
    spike_limit_percentage: 20
exporters:
  otlp_grpc/forward:
    endpoint: %s
    tls:
      insecure: true
    sending_queue:
      storage: file_storage
service:
  extensions: [health_check, file_storage]
  telemetry:
    metrics:
      level: none
  pipelines:
    logs/forward:
      receivers: [tripwire]
      processors: [memory_limiter]
      exporters: [otlp_grpc/forward]
`, healthPort, t.TempDir(), recvPort, dir, sink.addr), healthPort)

	c := agentClient(t, dir, "web-01", fmt.Sprintf("127.0.0.1:%d", recvPort))
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(event.ResourceHostName, "WEB-01")
	now := time.Now()
	for i := 1; i <= 3; i++ {
		e := &event.Event{Name: event.FileAccess, AlertID: event.NewAlertID(), Seq: uint64(i), Severity: event.SeverityCritical,
			Rule: "honeyfile", Time: now, ObservedTime: now, File: &event.File{Path: "/srv/decoy"}}
		e.CopyTo(rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if n := resp.PartialSuccess().RejectedLogRecords(); n != 0 {
		t.Fatalf("rejected %d: %s", n, resp.PartialSuccess().ErrorMessage())
	}
	deadline := time.Now().Add(60 * time.Second)
	for sink.records() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("forward sink has %d of 3 records; collector log:\n%s", sink.records(), col.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := sink.records(); n != 3 {
		t.Errorf("forward sink has %d records, want 3", n)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, req := range sink.got {
		rls := req.Logs().ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			attrs := rls.At(i).Resource().Attributes()
			if h, _ := attrs.Get(event.ResourceHostName); h.Str() != "web-01" {
				t.Errorf("forwarded host.name %q, want web-01", h.Str())
			}
			if _, ok := attrs.Get(event.ResourceClientCertNotAfter); !ok {
				t.Errorf("forwarded resource lacks %s", event.ResourceClientCertNotAfter)
			}
			lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
			for j := 0; j < lrs.Len(); j++ {
				if a, _ := lrs.At(j).Attributes().Get(event.KeyClientAddress); a.Str() != "127.0.0.1" {
					t.Errorf("forwarded record's %s %q", event.KeyClientAddress, a.Str())
				}
			}
		}
	}
}
