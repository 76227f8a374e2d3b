package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

func schemaPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := pgtest.NewSchemaDB(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, dsn
}

// TestTokenOnceBeforeExpiry: a token is good once, for its host, before it
// expires; the CLI prints it and stores only its hash.
func TestTokenOnceBeforeExpiry(t *testing.T) {
	pool, dsn := schemaPool(t)
	ctx := context.Background()

	var out, errOut bytes.Buffer
	if code := Main([]string{"token", "web-1", "--dsn", dsn}, &out, &errOut); code != ExitOK {
		t.Fatalf("token: exit %d: %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if !IsToken(tok) {
		t.Fatalf("stdout %q is not a token alone", out.String())
	}
	if !strings.Contains(errOut.String(), "web-1") {
		t.Errorf("stderr %q does not say the host", errOut.String())
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pki_bootstrap_tokens
		WHERE host_name = 'web-1' AND token_hash = sha256($1::bytea)
		AND expires_at BETWEEN now() + interval '14 minutes' AND now() + interval '15 minutes'`, []byte(tok)).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 1 {
		t.Fatalf("%d rows hold the token's hash with a 15m expiry, want 1", stored)
	}
	var plain int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pki_bootstrap_tokens WHERE position($1::bytea in token_hash) > 0`,
		[]byte(tok)).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("the token itself is stored (%d, %v)", plain, err)
	}

	if err := RedeemToken(ctx, pool, tok, "web-2"); !errors.Is(err, ErrTokenHost) {
		t.Fatalf("redeem for another host: %v, want %v", err, ErrTokenHost)
	}
	if err := RedeemToken(ctx, pool, tok, "web-1"); err != nil {
		t.Fatalf("first redeem: %v", err)
	}
	if err := RedeemToken(ctx, pool, tok, "web-1"); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("second redeem: %v, want %v", err, ErrTokenUsed)
	}
	if err := RedeemToken(ctx, pool, tok+"x", "web-1"); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("unknown token: %v, want %v", err, ErrTokenUnknown)
	}
}

func TestTokenExpired(t *testing.T) {
	pool, _ := schemaPool(t)
	ctx := context.Background()
	tok, _, err := NewToken(ctx, pool, "web-1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Expiry is PostgreSQL's clock, the one the collectors check by.
	if _, err := pool.Exec(ctx, `SELECT pg_sleep(1.1)`); err != nil {
		t.Fatal(err)
	}
	if err := RedeemToken(ctx, pool, tok, "web-1"); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v, want %v", err, ErrTokenExpired)
	}
}

// TestTokenRaceOneWinner: two collectors redeeming one token at once; one
// wins.
func TestTokenRaceOneWinner(t *testing.T) {
	pool, _ := schemaPool(t)
	ctx := context.Background()
	tok, _, err := NewToken(ctx, pool, "web-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- RedeemToken(ctx, pool, tok, "web-1") }()
	}
	won := 0
	for range 8 {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrTokenUsed):
			t.Errorf("loser: %v, want %v", err, ErrTokenUsed)
		}
	}
	if won != 1 {
		t.Fatalf("%d redeems succeeded, want 1", won)
	}
}

func TestTokenUsage(t *testing.T) {
	t.Setenv("TRIPWIRE_PG_DSN", "")
	var out, errOut bytes.Buffer
	if code := Main([]string{"token", "web-1"}, &out, &errOut); code != ExitUsage {
		t.Fatalf("token without DSN: exit %d, want %d", code, ExitUsage)
	}
	if code := Main([]string{"token", "web-1", "--dir", "x", "--dsn", "postgres://x"}, &out, &errOut); code != ExitUsage {
		t.Fatalf("token --dir: exit %d, want %d", code, ExitUsage)
	}
}

func newCSR(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"other-host"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestSignerCSR: the CA key must be private; a certificate is signed for the
// given host only, whatever else the CSR asks for; revocation in PostgreSQL
// finds it by host.
func TestSignerCSR(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	caCert, caKey := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := os.Chmod(caKey, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(caCert, caKey, time.Hour); !errors.Is(err, ErrCAKeyMode) {
		t.Fatalf("CA key 0640: %v, want %v", err, ErrCAKeyMode)
	}
	if err := os.Chmod(caKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(caCert, caKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(newCSR(t, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Sign(csr, "web-2"); !errors.Is(err, ErrCSR) {
		t.Fatalf("CSR for web-1 signed as web-2: %v", err)
	}
	cert, _, err := s.Sign(csr, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "web-1" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "web-1" {
		t.Fatalf("signed CN %q SANs %v, want web-1 only", cert.Subject.CommonName, cert.DNSNames)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(s.CA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("signed certificate does not verify as a client: %v", err)
	}
	if _, err := ParseCSR([]byte("not a csr")); !errors.Is(err, ErrCSR) {
		t.Fatalf("garbage CSR: %v", err)
	}

	pool, dsn := schemaPool(t)
	ctx := context.Background()
	if err := RecordIssued(ctx, pool, cert, HowEnroll); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"revoke", "web-1", "--dir", dir, "--dsn", dsn}, &out, &errOut); code != ExitOK {
		t.Fatalf("revoke: exit %d: %s", code, errOut.String())
	}
	revoked, err := RevokedSerials(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !revoked[cert.SerialNumber.Text(16)] || len(revoked) != 1 {
		t.Fatalf("revoked %v, want the collector-signed serial %s", revoked, cert.SerialNumber.Text(16))
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
