// Package peertls is the collector's mutual TLS toward agents, shared by the
// tripwire receiver and the OpAMP extension so both trust the same identity:
// a client certificate from the client CA, not revoked, whose CN is the
// host's name. Start with [NewPolicy] and serve [Policy.ServerTLS]; call
// [Policy.Check] again on a request of a connection opened earlier.
package peertls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/internal/pki"
)

// reloadEvery bounds how often a handshake stats the certificate and CRL
// files: often enough that a revocation takes effect within seconds, rarely
// enough that 1,000 reconnecting agents do not hammer the file system.
const reloadEvery = time.Second

// Why a client certificate that verified is still refused.
var (
	ErrRevoked    = errors.New("client certificate is revoked")
	ErrNoHostName = errors.New("client certificate has no usable host name in its CN")
	ErrExpired    = errors.New("client certificate has expired")
)

// Config names the files the mutual TLS is built from. The server
// certificate and the CRL are reloaded when their files change; the client
// CA is read at start.
type Config struct {
	// CertFile is the server certificate (PEM), e.g. from `tripwire pki issue-server`.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the server certificate's private key (PEM).
	KeyFile string `mapstructure:"key_file"`
	// ClientCAFile is the CA (PEM) that signs agent certificates; a client
	// without a certificate from it is refused at the handshake.
	ClientCAFile string `mapstructure:"client_ca_file"`
	// CRLFile is an optional certificate revocation list (PEM or DER) signed
	// by the client CA, e.g. `tripwire pki`'s crl.pem.
	CRLFile string `mapstructure:"crl_file"`
	// RevocationsDSN is an optional PostgreSQL connection string whose
	// pki_revocations table (written by `tripwire pki revoke --dsn`) lists
	// more revoked serials; every collector replica reloads it on NOTIFY and
	// every RevocationsInterval, so one revoke reaches them all.
	RevocationsDSN configopaque.String `mapstructure:"revocations_dsn"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate names each required file that is missing.
func (c Config) Validate() error {
	var errs []error
	if c.CertFile == "" {
		errs = append(errs, errors.New("tls.cert_file is required: only TLS is served"))
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("tls.key_file is required: only TLS is served"))
	}
	if c.ClientCAFile == "" {
		errs = append(errs, errors.New("tls.client_ca_file is required: agents are identified by their client certificate"))
	}
	if c.RevocationsDSN != "" {
		if _, err := pgx.ParseConfig(string(c.RevocationsDSN)); err != nil {
			errs = append(errs, fmt.Errorf("tls.revocations_dsn: %w", err))
		}
	}
	return errors.Join(errs...)
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// Policy is the mutual TLS toward agents: the server certificate, the client
// CA, and the revoked serials, the last two reloaded when their files change.
type Policy struct {
	cfg    Config
	logger *zap.Logger
	// onRefuse reports a refused client certificate, verified as issued by
	// the client CA, with the reason label and the error.
	onRefuse func(reason string, leaf *x509.Certificate, err error)

	clientCAs *x509.CertPool
	caCerts   []*x509.Certificate

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp fileStamp
	revoked   map[string]bool // serial, lowercase hex
	crlStamp  fileStamp
	checkedAt time.Time
	// dbRevoked is the serials of pki_revocations, nil until first read.
	dbRevoked map[string]bool

	stopDB context.CancelFunc
	dbDone chan struct{}
}

// NewPolicy reads the client CA, the server certificate and the CRL;
// onRefuse is told each refused client certificate (verified as issued by
// the client CA) with the reason label and the error.
func NewPolicy(cfg Config, logger *zap.Logger, onRefuse func(string, *x509.Certificate, error)) (*Policy, error) {
	p := &Policy{cfg: cfg, logger: logger, onRefuse: onRefuse}
	pemBytes, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading client CA: %w", err)
	}
	p.clientCAs = x509.NewCertPool()
	for rest := pemBytes; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing client CA %s: %w", cfg.ClientCAFile, err)
		}
		p.caCerts = append(p.caCerts, c)
		p.clientCAs.AddCert(c)
	}
	if len(p.caCerts) == 0 {
		return nil, fmt.Errorf("parsing client CA %s: no certificate found", cfg.ClientCAFile)
	}
	if err := p.loadCert(); err != nil {
		return nil, err
	}
	if cfg.CRLFile != "" {
		if err := p.loadCRL(); err != nil {
			return nil, err
		}
	}
	p.checkedAt = time.Now()
	if cfg.RevocationsDSN != "" {
		ctx, cancel := context.WithCancel(context.Background())
		p.stopDB, p.dbDone = cancel, make(chan struct{})
		go p.followRevocations(ctx)
	}
	return p, nil
}

// Close stops following pki_revocations; safe on a nil or closed policy.
func (p *Policy) Close() {
	if p == nil || p.stopDB == nil {
		return
	}
	p.stopDB()
	<-p.dbDone
	p.stopDB = nil
}

// RevocationsInterval is how often pki_revocations is read again without a
// notification (one lost while the connection was down).
var RevocationsInterval = 30 * time.Second

// followRevocations keeps dbRevoked current: LISTEN, read, then read again
// on each notification and every RevocationsInterval. While PostgreSQL is
// away the last list read stays in force.
func (p *Policy) followRevocations(ctx context.Context) {
	defer close(p.dbDone)
	for ctx.Err() == nil {
		err := p.listenRevocations(ctx)
		if ctx.Err() != nil {
			return
		}
		p.logger.Warn("following pki_revocations; keeping the serials read last", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (p *Policy) listenRevocations(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, string(p.cfg.RevocationsDSN))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pki.RevocationsChannel); err != nil {
		return err
	}
	for {
		revoked, err := pki.RevokedSerials(ctx, conn)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.dbRevoked = revoked
		p.mu.Unlock()
		p.logger.Debug("read pki_revocations", zap.Int("revoked", len(revoked)))
		wait, cancel := context.WithTimeout(ctx, RevocationsInterval)
		_, err = conn.WaitForNotification(wait)
		cancel()
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
	}
}

// ServerTLS is TLS 1.3 only, with a client certificate from the client CA
// required and verified by crypto/tls, then checked against the CRL.
func (p *Policy) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  p.clientCAs,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.refreshLocked()
			return p.cert, nil
		},
		// VerifyConnection runs after the chain verified, so the leaf is
		// from our CA; what is left is revocation and a usable identity.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			return p.Check(cs.PeerCertificates[0], false)
		},
	}
}

// ServerTLSWithEnrollment is ServerTLS for a listener that also takes
// clients without a certificate, for a first enrollment with a bootstrap
// token: a certificate that is given is checked exactly as ServerTLS
// checks it. The caller must refuse everything but enrollment to a client
// without one.
func (p *Policy) ServerTLSWithEnrollment() *tls.Config {
	c := p.ServerTLS()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		return verify(cs)
	}
	return c
}

// Check refuses a revoked certificate, one without a host name and, when
// again is set (a request on a connection opened earlier), one that expired
// since the handshake.
func (p *Policy) Check(leaf *x509.Certificate, again bool) error {
	var reason string
	var err error
	switch {
	case p.isRevoked(leaf):
		reason, err = "revoked", fmt.Errorf("%w: serial %s", ErrRevoked, leaf.SerialNumber.Text(16))
	case again && time.Now().After(leaf.NotAfter):
		reason, err = "expired", fmt.Errorf("%w: not after %s", ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	case pki.CheckHost(leaf.Subject.CommonName) != nil:
		reason, err = "no_host_name", fmt.Errorf("%w: %q", ErrNoHostName, leaf.Subject.CommonName)
	default:
		return nil
	}
	p.onRefuse(reason, leaf, err)
	return err
}

func (p *Policy) isRevoked(leaf *x509.Certificate) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	serial := leaf.SerialNumber.Text(16)
	return p.revoked[serial] || p.dbRevoked[serial]
}

// refreshLocked reloads the server certificate and the CRL when their files
// changed. A file that cannot be read or parsed keeps the previous state: a
// half-written CRL must not un-revoke anyone.
func (p *Policy) refreshLocked() {
	if time.Since(p.checkedAt) < reloadEvery {
		return
	}
	p.checkedAt = time.Now()
	if st, err := stampOf(p.cfg.CertFile); err == nil && st != p.certStamp {
		if err := p.loadCertLocked(); err != nil {
			p.logger.Error("keeping the previous server certificate", zap.Error(err))
		} else {
			p.logger.Info("reloaded server certificate", zap.String("file", p.cfg.CertFile))
		}
	}
	if p.cfg.CRLFile == "" {
		return
	}
	if st, err := stampOf(p.cfg.CRLFile); err == nil && st != p.crlStamp {
		if err := p.loadCRLLocked(); err != nil {
			p.logger.Error("keeping the previous CRL", zap.Error(err))
		}
	}
}

func (p *Policy) loadCert() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loadCertLocked()
}

func (p *Policy) loadCertLocked() error {
	st, err := stampOf(p.cfg.CertFile)
	if err != nil {
		return fmt.Errorf("reading server certificate: %w", err)
	}
	c, err := tls.LoadX509KeyPair(p.cfg.CertFile, p.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("loading server certificate: %w", err)
	}
	p.cert, p.certStamp = &c, st
	return nil
}

func (p *Policy) loadCRL() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loadCRLLocked()
}

func (p *Policy) loadCRLLocked() error {
	st, err := stampOf(p.cfg.CRLFile)
	if err != nil {
		return fmt.Errorf("reading CRL: %w", err)
	}
	var crl *x509.RevocationList
	var errs []error
	for _, ca := range p.caCerts {
		c, err := pki.LoadCRL(p.cfg.CRLFile, ca)
		if err == nil {
			crl = c
			break
		}
		errs = append(errs, err)
	}
	if crl == nil {
		return errors.Join(errs...)
	}
	revoked := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[e.SerialNumber.Text(16)] = true
	}
	// A stale CRL still lists what it lists; refusing every agent because
	// nobody re-signed it would turn a paperwork lapse into an outage.
	if !crl.NextUpdate.IsZero() && time.Now().After(crl.NextUpdate) {
		p.logger.Warn("CRL is past its next update; re-sign it with `tripwire pki crl`",
			zap.String("file", p.cfg.CRLFile), zap.Time("next_update", crl.NextUpdate))
	}
	p.revoked, p.crlStamp = revoked, st
	p.logger.Info("loaded CRL", zap.String("file", p.cfg.CRLFile), zap.Int("revoked", len(revoked)),
		zap.String("number", crl.Number.String()))
	return nil
}
