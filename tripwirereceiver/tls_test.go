package tripwirereceiver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

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

	// Both refused identities are handed on for the central record, each
	// once however often it was refused within refusalInterval.
	require.Eventually(t, func() bool { return len(refused(t, f)) >= 2 }, 10*time.Second, 20*time.Millisecond)
	byName := map[string]int{}
	for _, r := range refused(t, f) {
		require.Equal(t, "revoked", r.Reason)
		require.Contains(t, r.Detail, "revoked")
		require.NotEmpty(t, r.CertSerial)
		byName[r.CertName]++
	}
	require.Equal(t, map[string]int{"lost-laptop": 1, "db-01": 1}, byName)
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
