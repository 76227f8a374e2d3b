package management

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
	"os"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// renewCheckEvery is how often the certificate's remaining life is looked at.
const renewCheckEvery = time.Hour

// CheckRenewal asks for a new certificate now if one is due (a SIGHUP's
// look at the certificate files).
func (c *Client) CheckRenewal() { c.maybeRenew() }

// maybeRenew asks for a new certificate when the current one has less than
// RenewBefore left: a fresh key is made here and only its CSR is sent; the
// key is kept in memory until the certificate for it arrives.
func (c *Client) maybeRenew() {
	if c.opts.RenewBefore <= 0 {
		return
	}
	leaf, err := loadLeaf(c.opts.Cert, c.opts.Key)
	if err != nil {
		c.log.Error("certificate renewal: reading the current certificate", "error", err)
		return
	}
	if time.Until(leaf.NotAfter) > c.opts.RenewBefore {
		return
	}
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	if c.pendingKey != nil && time.Since(c.requestedAt) < 5*time.Minute {
		return // asked already; the answer may still come
	}
	key, csr, err := newRequest(leaf.Subject.CommonName)
	if err != nil {
		c.log.Error("certificate renewal", "error", err)
		return
	}
	c.pendingKey, c.requestedAt = key, time.Now()
	req := &protobufs.ConnectionSettingsRequest{Opamp: &protobufs.OpAMPConnectionSettingsRequest{
		CertificateRequest: &protobufs.CertificateRequest{Csr: csr}}}
	if err := c.opamp.RequestConnectionSettings(req); err != nil {
		c.log.Error("certificate renewal: sending the request", "error", err)
		return
	}
	c.log.Info("certificate renewal requested", contract.ClientCertNotAfter, leaf.NotAfter.UTC())
}

func loadLeaf(certFile, keyFile string) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// onConnectionSettings takes the certificate offered for the pending key:
// it must be for that key and the same host, from the CA the agent trusts.
// The key and the certificate are written beside the old ones and renamed
// over them, the key first, then the transport reloads them.
func (c *Client) onConnectionSettings(_ context.Context, s *protobufs.OpAMPConnectionSettings) error {
	offered := s.GetCertificate()
	if offered == nil || len(offered.Cert) == 0 {
		return nil
	}
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	if c.pendingKey == nil {
		return errors.New("a certificate was offered but none was requested")
	}
	old, err := loadLeaf(c.opts.Cert, c.opts.Key)
	if err != nil {
		return err
	}
	cert, err := install(c.pendingKey, offered.Cert, old.Subject.CommonName, c.opts.CA, c.opts.Cert, c.opts.Key)
	if err != nil {
		return err
	}
	c.pendingKey = nil
	c.log.Info("certificate renewed", contract.ClientCertNotAfter, cert.NotAfter.UTC(),
		"tls.client.serial_number", cert.SerialNumber.Text(16))
	if c.opts.OnRenewed != nil {
		c.opts.OnRenewed()
	}
	return nil
}

func writePrivate(path string, b []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := safefile.OpenPrivate(path, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// install checks an offered certificate against the key it was requested
// for, the host and the CA, then writes key and certificate beside certFile
// and keyFile and renames them over them, the key first.
func install(key *ecdsa.PrivateKey, certPEM []byte, host, caFile, certFile, keyFile string) (*x509.Certificate, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return nil, errors.New("offered certificate: not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("offered certificate: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("offered certificate is not for the requested key")
	}
	if cert.Subject.CommonName != host {
		return nil, fmt.Errorf("offered certificate is for %q, not %q", cert.Subject.CommonName, host)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots.AppendCertsFromPEM(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("offered certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writePrivate(keyFile+".new", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	if err := writePrivate(certFile+".new", certPEM); err != nil {
		return nil, err
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		return nil, err
	}
	if err := os.Rename(certFile+".new", certFile); err != nil {
		return nil, err
	}
	return cert, nil
}

// newRequest makes a key and a CSR for host, PEM.
func newRequest(host string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("making the certificate request: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
