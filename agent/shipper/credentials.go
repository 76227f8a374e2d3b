package shipper

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

var errNilEvent = errors.New("spool item has no event")

// credentials hold the agent's client certificate and the CA pool. The
// certificate is swapped atomically so a handshake never sees half a reload.
type credentials struct {
	caFile, certFile, keyFile string

	cert atomic.Pointer[tls.Certificate] // Leaf is set

	mu  sync.Mutex
	cas *x509.CertPool
}

func loadCredentials(caFile, certFile, keyFile string) (*credentials, error) {
	c := &credentials{caFile: caFile, certFile: certFile, keyFile: keyFile}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads all three files and installs them only if all are good.
func (c *credentials) reload() error {
	pemCAs, err := os.ReadFile(c.caFile)
	if err != nil {
		return fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCAs) {
		return fmt.Errorf("reading CA file %s: no PEM certificate in it", c.caFile)
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("loading client certificate: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("parsing client certificate: %w", err)
		}
	}
	c.mu.Lock()
	c.cas = pool
	c.mu.Unlock()
	c.cert.Store(&cert)
	return nil
}

func (c *credentials) pool() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cas
}

func (c *credentials) leaf() *x509.Certificate { return c.cert.Load().Leaf }
