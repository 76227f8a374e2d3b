package management

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
)

// Enrollment is a first enrollment: the host gets its client certificate
// from the collector with a one-time bootstrap token, for a key made here.
type Enrollment struct {
	Endpoint   string // wss://host:port/v1/opamp
	CA         string // PEM file of the CA that signed the collector
	ServerName string
	Host       string // the certificate's CN, the name the token was issued for
	Token      string
	// Cert and Key are written; neither may exist yet.
	Cert, Key string
}

// Enroll connects without a certificate, sends the token and a CSR, and
// installs the certificate it gets. A refused token (unknown, used,
// expired, for another host) is the server's error, returned.
func Enroll(ctx context.Context, e Enrollment) (*x509.Certificate, error) {
	for _, p := range []string{e.Cert, e.Key} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s exists: this host is enrolled already (renewal is automatic)", p)
		}
	}
	ca, err := os.ReadFile(e.CA)
	if err != nil {
		return nil, fmt.Errorf("reading CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("CA %s: no certificate found", e.CA)
	}
	key, csr, err := newRequest(e.Host)
	if err != nil {
		return nil, err
	}
	type result struct {
		cert *x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	finish := func(r result) {
		select {
		case done <- r:
		default:
		}
	}
	c := client.NewWebSocket(nil)
	if err := c.SetAgentDescription(Description(e.Host, "", "")); err != nil {
		return nil, err
	}
	if err := c.RequestConnectionSettings(&protobufs.ConnectionSettingsRequest{Opamp: &protobufs.OpAMPConnectionSettingsRequest{
		CertificateRequest: &protobufs.CertificateRequest{Csr: csr}}}); err != nil {
		return nil, err
	}
	err = c.Start(ctx, types.StartSettings{
		OpAMPServerURL: e.Endpoint,
		TLSConfig:      &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: e.ServerName},
		Header:         http.Header{"Authorization": []string{"Bearer " + e.Token}},
		InstanceUid:    InstanceUID(e.Host, ""),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings,
		Callbacks: types.Callbacks{
			OnConnectFailed: func(_ context.Context, err error) { finish(result{err: fmt.Errorf("connecting: %w", err)}) },
			OnError: func(_ context.Context, se *protobufs.ServerErrorResponse) {
				finish(result{err: errors.New(se.GetErrorMessage())})
			},
			OnOpampConnectionSettings: func(_ context.Context, s *protobufs.OpAMPConnectionSettings) error {
				offered := s.GetCertificate()
				if offered == nil || len(offered.Cert) == 0 {
					return nil
				}
				cert, err := install(key, offered.Cert, e.Host, e.CA, e.Cert, e.Key)
				finish(result{cert: cert, err: err})
				return err
			},
		},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.Stop(sctx)
	}()
	select {
	case r := <-done:
		return r.cert, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("enrolling: %w", ctx.Err())
	}
}
