package shipper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// link is one gRPC connection to the collector and the OTLP logs client
// over it.
type link struct {
	conn   *grpc.ClientConn
	client plogotlp.GRPCClient
	cancel context.CancelFunc // stops the connectivity watch
	done   chan struct{}
}

// dial makes a link with the current credentials. grpc.NewClient connects
// lazily, so this does not wait for the collector.
func (s *Shipper) dial() (*link, error) {
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    s.creds.pool(),
		ServerName: s.cfg.ServerName,
		// Read at every handshake, so a reloaded certificate is used by the
		// next connection without rebuilding this config.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.creds.cert.Load(), nil
		},
	}
	conn, err := grpc.NewClient(s.cfg.Endpoint,
		grpc.WithTransportCredentials(grpccreds.NewTLS(tlsCfg)),
		// gRPC's own reconnect backoff (1 s growing to 120 s by default)
		// would stack on top of the shipper's; give it the shipper's bounds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  s.cfg.MinBackoff,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   s.cfg.MaxBackoff,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", s.cfg.Endpoint, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{conn: conn, client: plogotlp.NewGRPCClient(conn), cancel: cancel, done: make(chan struct{})}
	go l.watch(ctx, func() {
		// Every connection after the first one is a reconnect, whether gRPC
		// re-established it or the shipper dialled afresh.
		if s.connected.Swap(true) {
			s.metrics.reconnects.Inc()
		}
	})
	return l, nil
}

// broken reports whether the connection is failing and waiting out gRPC's
// own backoff. The shipper then dials afresh on its own schedule rather
// than call ResetConnectBackoff, which races with gRPC's subchannel
// bookkeeping in grpc-go v1.85 (found by the race detector).
func (l *link) broken() bool {
	return l != nil && l.conn.GetState() == connectivity.TransientFailure
}

func (l *link) close() {
	l.cancel()
	<-l.done
	_ = l.conn.Close()
}

// watch reports every transition to READY.
func (l *link) watch(ctx context.Context, ready func()) {
	defer close(l.done)
	l.conn.Connect()
	for {
		st := l.conn.GetState()
		if st == connectivity.Ready {
			ready()
		}
		if !l.conn.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// outcome classifies one export.
type outcome struct {
	err        error         // nil: acknowledged; the batch may be deleted
	split      bool          // refused as malformed or too large: retrying as is cannot succeed
	operator   bool          // refused for a reason only the operator can fix (identity, certificate)
	retryAfter time.Duration // the collector asked to wait at least this long
}

// export sends logs over the current link and says what came of it. The
// shipper retries itself, from the spool, with its own backoff, so nothing
// here retries. Partial success is acknowledged delivery: the rejected
// records are permanently invalid, so they are counted and logged, not
// retried.
func (s *Shipper) export(ctx context.Context, l *link, ld plog.Logs) (out outcome, rejected int64) {
	if l == nil {
		return outcome{err: errors.New("shipper not running")}, 0
	}
	n := ld.LogRecordCount()
	if n == 0 {
		return outcome{}, 0
	}
	req := plogotlp.NewExportRequestFromLogs(ld)
	// A request over the collector's receive limit would be refused whole:
	// refuse it first, so the batch is split.
	if size := (&plog.ProtoMarshaler{}).LogsSize(ld); size > maxRequestBytes {
		return outcome{err: fmt.Errorf("request of %d bytes is too large (limit %d)", size, maxRequestBytes), split: true}, 0
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ExportTimeout)
	defer cancel()
	resp, err := l.client.Export(ctx, req)
	if err == nil {
		ps := resp.PartialSuccess()
		if ps.RejectedLogRecords() > 0 || ps.ErrorMessage() != "" {
			s.log.Warn("collector rejected records of an acknowledged batch", "rejected", ps.RejectedLogRecords(), "count", n, "message", ps.ErrorMessage())
		}
		return outcome{}, ps.RejectedLogRecords()
	}
	st := status.Convert(err)
	out = outcome{err: err}
	switch st.Code() {
	case codes.InvalidArgument:
		out.split = true
	case codes.ResourceExhausted:
		out.split = isTooLarge(err)
	case codes.PermissionDenied, codes.Unauthenticated:
		out.operator = true
	case codes.Unavailable:
		// A refused handshake (unknown CA, expired or revoked certificate)
		// surfaces as Unavailable; say it louder than a collector restart.
		msg := st.Message()
		out.operator = strings.Contains(msg, "certificate") || strings.Contains(msg, "handshake")
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			out.retryAfter = ri.GetRetryDelay().AsDuration()
		}
	}
	return out, 0
}

func isTooLarge(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "too large") || strings.Contains(msg, "larger than max")
}
