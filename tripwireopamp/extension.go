package tripwireopamp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-telemetry/opamp-go/protobufs"
	opamp "github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/peertls"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// server is the OpAMP server: one WebSocket per agent, keyed by the host of
// its certificate.
type server struct {
	cfg    *Config
	logger *zap.Logger

	policy *peertls.Policy
	signer *pki.Signer // nil: no renewal, no enrollment
	pool   *pgxpool.Pool
	store  *store
	http   *http.Server
	opamp  opamp.OpAMPServer
	addr   net.Addr

	mu     sync.Mutex
	agents map[string]*agent // by host name (certificate CN)

	cancel context.CancelFunc
	done   chan struct{}
}

// agent is one connected agent. Its fields are guarded by its own mutex: the
// connection's callbacks and the pushes after a rule change both use it.
type agent struct {
	host string
	leaf *x509.Certificate
	conn types.Connection

	mu      sync.Mutex
	uid     []byte
	offered offer // what the host should run now
	sent    []byte
	// reported is the hash of the set the agent last reported on (applied
	// or refused).
	reported []byte
}

func newServer(cfg *Config, set extension.Settings) *server {
	return &server{cfg: cfg, logger: set.Logger, agents: map[string]*agent{}}
}

// Start listens at once; PostgreSQL is reached in the background, so an
// agent connecting before it is up keeps its kept rules until it is.
func (s *server) Start(ctx context.Context, _ component.Host) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Shutdown(ctx))
		}
	}()
	s.policy, err = peertls.NewPolicy(s.cfg.TLS, s.logger, func(reason string, leaf *x509.Certificate, err error) {
		s.logger.Warn("refused client certificate", zap.String("reason", reason),
			zap.String("tls.client.subject", leaf.Subject.CommonName), zap.Error(err))
	})
	if err != nil {
		return err
	}
	if s.cfg.CAKeyFile != "" {
		if s.signer, err = pki.LoadSigner(s.cfg.TLS.ClientCAFile, s.cfg.CAKeyFile, s.cfg.CertificateValidity); err != nil {
			return err
		}
	}
	pcfg, err := pgxpool.ParseConfig(string(s.cfg.DSN))
	if err != nil {
		return fmt.Errorf("parsing dsn: %w", err)
	}
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "tripwire-collector-opamp"
	}
	if s.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg); err != nil {
		return fmt.Errorf("creating PostgreSQL pool: %w", err)
	}
	s.store = &store{pool: s.pool}

	s.opamp = opamp.New(nil)
	handler, connContext, err := s.opamp.Attach(opamp.Settings{Callbacks: types.Callbacks{OnConnecting: s.onConnecting}})
	if err != nil {
		return fmt.Errorf("starting OpAMP server: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Endpoint, err)
	}
	s.addr = ln.Addr()
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/opamp", handler)
	s.http = &http.Server{Handler: mux, ConnContext: connContext, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(s.logger)}
	hs := s.http
	go func() {
		tc := s.policy.ServerTLS()
		if s.signer != nil {
			tc = s.policy.ServerTLSWithEnrollment()
		}
		if err := hs.Serve(tls.NewListener(ln, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("OpAMP server stopped", zap.Error(err))
		}
	}()
	bg, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.follow(bg)
	s.logger.Info("OpAMP server listening", zap.String("endpoint", s.addr.String()))
	return nil
}

// Shutdown is safe when Start never ran or failed halfway.
func (s *server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		// The agents' WebSockets are hijacked connections: close them
		// ourselves, Shutdown does not wait for them.
		s.mu.Lock()
		for _, a := range s.agents {
			a.conn.Disconnect()
		}
		s.mu.Unlock()
		errs = append(errs, s.http.Shutdown(ctx))
		s.http = nil
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
	s.policy.Close()
	return errors.Join(errs...)
}

// onConnecting accepts a connection only from a verified, unrevoked client
// certificate with a host name; that host is who the agent is.
func (s *server) onConnecting(r *http.Request) types.ConnectionResponse {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.signer == nil || !ok || !pki.IsToken(token) {
			return types.ConnectionResponse{Accept: false, HTTPStatusCode: http.StatusUnauthorized}
		}
		return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
			OnMessage: func(ctx context.Context, conn types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
				return s.enroll(ctx, conn, token, msg)
			},
		}}
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if err := s.policy.Check(leaf, true); err != nil {
		s.logger.Warn("refused OpAMP connection", zap.Error(err))
		return types.ConnectionResponse{Accept: false, HTTPStatusCode: http.StatusForbidden}
	}
	a := &agent{host: leaf.Subject.CommonName, leaf: leaf}
	return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
		OnConnected: func(_ context.Context, conn types.Connection) {
			a.conn = conn
			s.mu.Lock()
			prev := s.agents[a.host]
			s.agents[a.host] = a
			s.mu.Unlock()
			if prev != nil {
				// The same host twice: the newer connection is the agent
				// now (an old one may be half-dead).
				prev.conn.Disconnect()
			}
		},
		OnMessage: func(ctx context.Context, _ types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
			return s.onMessage(ctx, a, msg)
		},
		OnConnectionClose: func(types.Connection) {
			s.mu.Lock()
			last := s.agents[a.host] == a
			if last {
				delete(s.agents, a.host)
			}
			s.mu.Unlock()
			if last && s.store != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := s.store.disconnected(ctx, a.host); err != nil {
					s.logger.Warn("recording an agent's disconnection", zap.String(event.ResourceHostName, a.host), zap.Error(err))
				}
			}
		},
	}}
}

// onMessage records what the agent reported and answers with its rule set
// when it does not run it yet.
func (s *server) onMessage(ctx context.Context, a *agent, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	// A WebSocket lives long: the certificate may have been revoked or
	// have expired since the handshake.
	if err := s.policy.Check(a.leaf, true); err != nil {
		s.logger.Warn("closing an OpAMP connection", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		a.conn.Disconnect()
		return nil
	}
	rep := reportOf(msg)
	a.mu.Lock()
	first := a.uid == nil
	a.uid = msg.InstanceUid
	if rep.status != "" {
		a.reported = rep.hash
	}
	a.mu.Unlock()
	if err := s.store.record(ctx, a.host, msg.InstanceUid, rep); err != nil {
		s.logger.Warn("recording an agent's report", zap.String(event.ResourceHostName, a.host), zap.Error(err))
	}
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid}
	if first {
		// After a collector restart the agent may send only what changed.
		resp.Flags = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
	}
	if first {
		if o, err := s.offerFor(ctx, a.host); err != nil {
			s.logger.Warn("computing an agent's rule set; it keeps what it runs", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		} else {
			a.mu.Lock()
			a.offered = o
			a.mu.Unlock()
		}
	}
	resp.RemoteConfig = s.due(ctx, a)
	if csr := msg.GetConnectionSettingsRequest().GetOpamp().GetCertificateRequest().GetCsr(); csr != nil {
		resp.ConnectionSettings = s.renew(ctx, a, csr)
	}
	return resp
}

// enroll answers a client without a certificate, which may only enroll: its
// CSR names the host, the bootstrap token must have been issued for that
// host and not used or expired; then it gets the host's first certificate.
// Nothing else is offered to it and nothing it reports is recorded.
func (s *server) enroll(ctx context.Context, conn types.Connection, token string, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid}
	csrPEM := msg.GetConnectionSettingsRequest().GetOpamp().GetCertificateRequest().GetCsr()
	if csrPEM == nil {
		return resp
	}
	refuse := func(err error) *protobufs.ServerToAgent {
		s.logger.Warn("refused an enrollment", zap.Error(err))
		resp.ErrorResponse = &protobufs.ServerErrorResponse{Type: protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest,
			ErrorMessage: "enrollment refused: " + err.Error()}
		go func() { time.Sleep(time.Second); conn.Disconnect() }()
		return resp
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return refuse(err)
	}
	host := csr.Subject.CommonName
	if err := pki.RedeemToken(ctx, s.pool, token, host); err != nil {
		return refuse(err)
	}
	offer, err := s.sign(ctx, csrPEM, host, pki.HowEnroll)
	if err != nil {
		return refuse(err)
	}
	if err := pki.NoteTokenSerial(ctx, s.pool, token, serialOf(offer)); err != nil {
		s.logger.Warn("recording which certificate a token bought", zap.Error(err))
	}
	resp.ConnectionSettings = offer
	return resp
}

func serialOf(o *protobufs.ConnectionSettingsOffers) string {
	blk, _ := pem.Decode(o.GetOpamp().GetCertificate().GetCert())
	if blk == nil {
		return ""
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// renew signs a's CSR for a's host. A refusal is logged and answered with
// nothing: the agent keeps its certificate and asks again later.
func (s *server) renew(ctx context.Context, a *agent, csrPEM []byte) *protobufs.ConnectionSettingsOffers {
	if s.signer == nil {
		s.logger.Warn("certificate renewal requested; ca_key_file is not set", zap.String(event.ResourceHostName, a.host))
		return nil
	}
	offer, err := s.sign(ctx, csrPEM, a.host, pki.HowRenew)
	if err != nil {
		s.logger.Warn("refused a certificate renewal", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		return nil
	}
	return offer
}

// sign issues host's certificate for the key of csrPEM and records it in
// PostgreSQL (`tripwire pki revoke HOST --dsn` finds it).
func (s *server) sign(ctx context.Context, csrPEM []byte, host, how string) (*protobufs.ConnectionSettingsOffers, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	cert, certPEM, err := s.signer.Sign(csr, host)
	if err != nil {
		return nil, err
	}
	if err := pki.RecordIssued(ctx, s.pool, cert, how); err != nil {
		return nil, err
	}
	s.logger.Info("signed an agent certificate", zap.String(event.ResourceHostName, host), zap.String("how", how),
		zap.String("tls.client.serial_number", cert.SerialNumber.Text(16)), zap.Time(contract.ClientCertNotAfter, cert.NotAfter))
	return &protobufs.ConnectionSettingsOffers{Hash: hashOf(certPEM), Opamp: &protobufs.OpAMPConnectionSettings{
		Certificate: &protobufs.TLSCertificate{Cert: certPEM, CaCert: s.signer.CAPEM()}}}, nil
}

// due is the remote config to send a, or nil when a runs it, has reported
// on it, or was sent it already on this connection.
func (s *server) due(ctx context.Context, a *agent) *protobufs.AgentRemoteConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.offered
	if o.hash == nil || string(o.hash) == string(a.sent) || string(o.hash) == string(a.reported) {
		return nil
	}
	a.sent = o.hash
	if err := s.store.offered(ctx, a.host, o); err != nil {
		s.logger.Warn("recording an offer", zap.String(event.ResourceHostName, a.host), zap.Error(err))
	}
	return o.remoteConfig()
}

// follow keeps the connected agents' rule sets current: at once on each
// change notification, and every resync interval in case one was missed.
func (s *server) follow(ctx context.Context) {
	defer close(s.done)
	changed := make(chan struct{}, 1)
	go s.store.listen(ctx, s.logger, changed)
	tick := time.NewTicker(s.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		s.resync(ctx)
	}
}

// resync recomputes every connected agent's set and pushes the changed ones,
// a few hosts at a time.
func (s *server) resync(ctx context.Context) {
	s.mu.Lock()
	agents := make([]*agent, 0, len(s.agents))
	for _, a := range s.agents {
		agents = append(agents, a)
	}
	s.mu.Unlock()
	work := make(chan *agent)
	var wg sync.WaitGroup
	for range min(8, len(agents)) {
		wg.Go(func() {
			for a := range work {
				s.push(ctx, a)
			}
		})
	}
	for _, a := range agents {
		work <- a
	}
	close(work)
	wg.Wait()
}

func (s *server) push(ctx context.Context, a *agent) {
	if err := s.policy.Check(a.leaf, true); err != nil {
		s.logger.Warn("closing an OpAMP connection", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		a.conn.Disconnect()
		return
	}
	o, err := s.offerFor(ctx, a.host)
	if err != nil {
		s.logger.Warn("computing an agent's rule set; it keeps what it runs", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		return
	}
	a.mu.Lock()
	a.offered = o
	uid := a.uid
	a.mu.Unlock()
	if uid == nil {
		return // not introduced yet: its first message is answered
	}
	rc := s.due(ctx, a)
	if rc == nil {
		return
	}
	if err := a.conn.Send(ctx, &protobufs.ServerToAgent{InstanceUid: uid, RemoteConfig: rc}); err != nil {
		s.logger.Warn("pushing a rule set; sent again when the agent reconnects", zap.String(event.ResourceHostName, a.host), zap.Error(err))
		a.mu.Lock()
		a.sent = nil
		a.mu.Unlock()
	}
}
