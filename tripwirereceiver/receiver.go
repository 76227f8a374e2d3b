package tripwirereceiver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	// OTLP clients may gzip their requests (the collector's exporters do by default).
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/peertls"
	"github.com/tripwire-sec/tripwire/tripwirereceiver/internal/metadata"
)

// tripwireReceiver serves OTLP/gRPC logs over mutual TLS.
type tripwireReceiver struct {
	plogotlp.UnimplementedGRPCServer

	cfg       *Config
	settings  receiver.Settings
	next      consumer.Logs
	obsrecv   *receiverhelper.ObsReport
	telemetry *metadata.TelemetryBuilder

	server   *grpc.Server
	group    *groupCommit
	refusals *refusalLog
	policy   *peertls.Policy
	addr     net.Addr // where the server listens, once started
	serving  sync.WaitGroup
}

func newTripwireReceiver(cfg *Config, set receiver.Settings, next consumer.Logs) (*tripwireReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "grpc",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &tripwireReceiver{cfg: cfg, settings: set, next: next, obsrecv: obsrecv, telemetry: tb}, nil
}

// Start loads the TLS material and starts serving. The files are read here,
// not at creation, so that `tripwire-collector validate` needs none of them.
func (r *tripwireReceiver) Start(ctx context.Context, host component.Host) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Shutdown(ctx))
		}
	}()
	r.policy, err = peertls.NewPolicy(r.cfg.TLS, r.settings.Logger, r.refuseCertificate)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", r.cfg.Endpoint, err)
	}
	r.addr = ln.Addr()
	r.group = newGroupCommit(r.next)
	r.refusals = newRefusalLog(r.settings.Logger, refusalInterval, func(ld plog.Logs) error { return r.group.consume(context.Background(), ld) })
	r.server = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(r.policy.ServerTLS())),
		grpc.MaxRecvMsgSize(r.cfg.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(r.cfg.MaxConcurrentStreams),
		grpc.ForceServerCodecV2(newLimitedCodec(&requestLimits{
			records:         r.cfg.MaxRecordsPerRequest,
			attrsPerElement: r.cfg.MaxAttributesPerRecord,
			attrsPerRequest: r.cfg.MaxAttributesPerRequest,
			maxValueDepth:   maxValueDepth,
		})),
		// Agents hold one long-lived connection each and may ping it
		// while idle so that a dead link is noticed.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
	)
	plogotlp.RegisterGRPCServer(r.server, r)
	r.settings.Logger.Info("tripwire receiver listening", zap.Stringer("endpoint", r.addr))
	r.serving.Add(1)
	go func() {
		defer r.serving.Done()
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

// Shutdown stops the server, letting requests in flight finish until ctx
// ends. It is safe when Start never ran or failed half-way.
func (r *tripwireReceiver) Shutdown(ctx context.Context) error {
	var err error
	defer r.policy.Close()
	if r.server != nil {
		stopped := make(chan struct{})
		go func() {
			r.server.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			r.server.Stop()
			<-stopped
			err = ctx.Err()
		}
	}
	r.serving.Wait()
	if r.refusals != nil {
		r.refusals.close()
	}
	if r.group != nil {
		// Handlers still running after a forced stop get their group's
		// result; later ones are refused.
		r.group.close()
	}
	if r.telemetry != nil {
		r.telemetry.Shutdown()
	}
	return err
}

// Export is the OTLP logs service. Records that fail the identity binding or
// the schema are dropped and reported as a partial success; the rest go on.
func (r *tripwireReceiver) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	resp := plogotlp.NewExportResponse()
	peerID, err := r.peerIdentity(ctx)
	if err != nil {
		return resp, err
	}
	ld := req.Logs()
	total := ld.LogRecordCount()
	v := bindAndValidate(ld, peerID, r.cfg.MaxEventBytes)
	for reason, n := range v.byReason {
		r.telemetry.TripwireReceiverRejectedLogRecords.Add(ctx, int64(n),
			metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	}
	if v.droppedResourceAttrs > 0 {
		r.settings.Logger.Warn("dropped resource attributes outside the allowlist or not valid short text",
			zap.String(event.ResourceHostName, peerID.host), zap.Int("dropped", v.droppedResourceAttrs))
	}
	if v.claimed != "" {
		r.refusals.note(event.Refusal{Time: time.Now(), CertName: peerID.host, CertSerial: peerID.serial,
			ClaimedName: v.claimed, Reason: reasonHostMismatch, Detail: v.mismatch, Address: peerID.address})
	}
	if v.rejected > 0 {
		r.settings.Logger.Warn("rejected log records",
			zap.String(event.ResourceHostName, peerID.host), zap.String(event.KeyClientAddress, peerID.address),
			zap.Int("rejected", v.rejected), zap.Int("received", total), zap.String("first", v.first))
	}

	accepted := ld.LogRecordCount()
	if accepted == 0 {
		if v.rejected > 0 && v.rejected == v.byReason[reasonHostMismatch] {
			// Nothing this agent sent was its own: refuse outright, so that
			// the agent keeps its events and its operator sees why.
			return resp, status.Error(codes.PermissionDenied, v.message(total))
		}
		if v.rejected > 0 {
			resp.PartialSuccess().SetRejectedLogRecords(int64(v.rejected))
			resp.PartialSuccess().SetErrorMessage(v.message(total))
		}
		return resp, nil
	}

	ctx = r.obsrecv.StartLogsOp(ctx)
	err = r.group.consume(ctx, ld)
	r.obsrecv.EndLogsOp(ctx, "protobuf", accepted, err)
	if err != nil {
		// A permanent error will not go away on retry; anything else (the
		// memory limiter, a full queue) is worth retrying, and the agent
		// keeps the batch until it is accepted.
		if consumererror.IsPermanent(err) {
			return resp, status.Error(codes.InvalidArgument, err.Error())
		}
		return resp, status.Error(codes.Unavailable, err.Error())
	}
	if v.rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(int64(v.rejected))
		resp.PartialSuccess().SetErrorMessage(v.message(total))
	}
	return resp, nil
}

// peerIdentity reads the verified client certificate of the request's
// connection and checks it again: a connection may outlive a revocation or
// the certificate's expiry.
func (r *tripwireReceiver) peerIdentity(ctx context.Context) (identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return identity{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return identity{}, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	leaf := ti.State.VerifiedChains[0][0]
	if err := r.policy.Check(leaf, true); err != nil {
		return identity{}, status.Error(codes.Unauthenticated, err.Error())
	}
	id := identity{host: leaf.Subject.CommonName, notAfter: leaf.NotAfter.UTC().Format(time.RFC3339),
		serial: leaf.SerialNumber.Text(16)}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		id.address = host
	} else {
		id.address = p.Addr.String()
	}
	return id, nil
}

// refuseCertificate counts a certificate the peer policy refused and records
// the refused identity: its chain verified, so its name is one the client CA
// gave out. The handshake does not tell the peer's address.
func (r *tripwireReceiver) refuseCertificate(reason string, leaf *x509.Certificate, err error) {
	r.telemetry.TripwireReceiverRefusedConnections.Add(context.Background(), 1,
		metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	r.settings.Logger.Warn("refused client certificate", zap.String("reason", reason))
	if r.refusals != nil {
		r.refusals.note(event.Refusal{Time: time.Now(), CertName: leaf.Subject.CommonName,
			CertSerial: leaf.SerialNumber.Text(16), CertNotAfter: leaf.NotAfter, Reason: reason, Detail: err.Error()})
	}
}
