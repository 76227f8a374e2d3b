package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

// Bootstrap tokens refused end to end, and revocation from PostgreSQL
// reaching every collector replica.

// newEnrollStack is a collector with opamp.yaml, signing with the CA key
// (newStackOn sets TRIPWIRE_OPAMP_CA_KEY_FILE), once its schema is in.
func newEnrollStack(t *testing.T) *stack {
	t.Helper()
	s := newStackOn(t, pgtest.NewDB(t), "config.yaml", "opamp.yaml")
	waitUntil(t, "the schema", func() bool {
		var n int
		return dbConn(t, s.db).QueryRow(context.Background(), `SELECT count(*) FROM pki_revocations`).Scan(&n) == nil
	})
	return s
}

func (s *stack) token(t *testing.T, host string, ttl time.Duration) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := pki.Main([]string{"token", host, "--ttl", ttl.String(), "--dsn", s.db}, &out, &errOut); code != pki.ExitOK {
		t.Fatalf("tripwire pki token: exit %d: %s", code, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// enroll runs the real `tripwire enroll` and returns its output and error.
func (s *stack) enroll(t *testing.T, host, token, cert, key string) (string, error) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(agentBinary(t), "enroll", "--endpoint", "wss://"+s.opamp+"/v1/opamp",
		"--ca", filepath.Join(s.pki, pki.CACertFile), "--cert", cert, "--key", key,
		"--host", host, "--server-name", "localhost", "--token-file", tokenFile).CombinedOutput()
	return string(out), err
}

// TestEnrollTokenRefused: a token enrolls its host once; one for another
// host, the same token again, an expired one and an unknown one are refused
// with their reason in the collector's log, and write nothing.
func TestEnrollTokenRefused(t *testing.T) {
	s := newEnrollStack(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")

	tok := s.token(t, "enroll-01", 15*time.Minute)
	out, err := s.enroll(t, "enroll-02", tok, cert, key)
	if err == nil || !strings.Contains(out, "enrollment refused") {
		t.Fatalf("token for enroll-01 used by enroll-02: %v\n%s", err, out)
	}
	if out, err := s.enroll(t, "enroll-01", tok, cert, key); err != nil {
		t.Fatalf("enroll: %v\n%s\ncollector:\n%s", err, out, tail(s.col.log.String(), 4000))
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %04o, want 0600", fi.Mode().Perm())
	}
	c := readPEMCert(t, cert)
	if c.Subject.CommonName != "enroll-01" {
		t.Errorf("enrolled CN %q", c.Subject.CommonName)
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		t.Errorf("certificate and key do not pair: %v", err)
	}
	var how, usedSerial string
	if err := dbConn(t, s.db).QueryRow(context.Background(), `SELECT c.how, t.used_serial FROM pki_certificates c
		JOIN pki_bootstrap_tokens t ON t.used_serial = c.serial WHERE c.host_name = 'enroll-01'`).Scan(&how, &usedSerial); err != nil {
		t.Fatalf("the enrolled certificate is not recorded with its token: %v", err)
	}
	if usedSerial != c.SerialNumber.Text(16) {
		t.Errorf("token bought serial %s, the certificate is %s", usedSerial, c.SerialNumber.Text(16))
	}

	dir2 := t.TempDir()
	cert2, key2 := filepath.Join(dir2, "agent.crt"), filepath.Join(dir2, "agent.key")
	if out, err := s.enroll(t, "enroll-01", tok, cert2, key2); err == nil || !strings.Contains(out, "enrollment refused") {
		t.Errorf("reused token: %v\n%s", err, out)
	}
	expired := s.token(t, "enroll-03", time.Second)
	time.Sleep(1500 * time.Millisecond)
	if out, err := s.enroll(t, "enroll-03", expired, cert2, key2); err == nil || !strings.Contains(out, "enrollment refused") {
		t.Errorf("expired token: %v\n%s", err, out)
	}
	if out, err := s.enroll(t, "enroll-03", "twb_"+strings.Repeat("A", 43), cert2, key2); err == nil {
		t.Errorf("unknown token accepted:\n%s", out)
	}
	for _, f := range []string{cert2, key2} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused enrollment left %s (%v)", f, err)
		}
	}
	log := s.col.log.String()
	for _, why := range []string{pki.ErrTokenHost.Error(), pki.ErrTokenUsed.Error(), pki.ErrTokenExpired.Error(), pki.ErrTokenUnknown.Error()} {
		if !strings.Contains(log, why) {
			t.Errorf("the collector's log does not say %q", why)
		}
	}
	// Without a client certificate, the receiver is not reachable at all.
	if err := handshake(s.endpoint, nil, s.pki); err == nil {
		t.Errorf("the receiver accepted a client without a certificate")
	}
}

// TestRevocationReachesEveryCollector: `tripwire pki revoke HOST --dsn`
// stores the revocation in PostgreSQL only (crl.pem untouched); both
// collector processes, on both their receiver and OpAMP ports, refuse the
// host's certificate soon after.
func TestRevocationReachesEveryCollector(t *testing.T) {
	s := newEnrollStack(t)
	const host = "revoke-01"
	cert, key := pki.AgentFiles(s.pki, host)
	if out, err := s.enroll(t, host, s.token(t, host, time.Minute), cert, key); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	// A second replica on the same database and PKI.
	endpoint2, opamp2 := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	health := freePort(t)
	startCollectorOn(t, s.configs, health,
		"TRIPWIRE_PKI_DIR="+s.pki, "TRIPWIRE_PG_DSN="+s.db, "TRIPWIRE_QUEUE_DIR="+t.TempDir(),
		"TRIPWIRE_ENDPOINT="+endpoint2, "TRIPWIRE_OPAMP_ENDPOINT="+opamp2,
		fmt.Sprintf("TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:%d", health),
		"TRIPWIRE_FORWARD_ENDPOINT="+s.sink.addr, "TRIPWIRE_FORWARD_INSECURE=true",
		fmt.Sprintf("TRIPWIRE_METRICS_PORT=%d", freePort(t)))
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{"collector 1 receiver": s.endpoint, "collector 1 OpAMP": s.opamp,
		"collector 2 receiver": endpoint2, "collector 2 OpAMP": opamp2}
	for name, addr := range ports {
		if err := handshake(addr, &pair, s.pki); err != nil {
			t.Fatalf("%s refuses the certificate before revocation: %v", name, err)
		}
	}
	crlBefore, err := os.ReadFile(filepath.Join(s.pki, pki.CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	revokedAt := time.Now()
	if code := pki.Main([]string{"revoke", host, "--dir", s.pki, "--dsn", s.db}, &out, &errOut); code != pki.ExitOK {
		t.Fatalf("revoke: exit %d: %s", code, errOut.String())
	}
	if crl, _ := os.ReadFile(filepath.Join(s.pki, pki.CRLFile)); !bytes.Equal(crl, crlBefore) {
		t.Fatal("crl.pem changed: the test would not show the PostgreSQL path")
	}
	for name, addr := range ports {
		deadline := time.Now().Add(30 * time.Second)
		for handshake(addr, &pair, s.pki) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s still accepts the revoked certificate after 30s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s refuses the revoked certificate %s after the revoke", name, time.Since(revokedAt).Round(10*time.Millisecond))
	}
}

// handshake opens a TLS connection as a client with cert (nil: none) and
// reports whether the server accepted it: in TLS 1.3 a refused client
// certificate shows as an alert on the first read; an accepted one as
// silence, the server waiting for the client to speak.
func handshake(addr string, cert *tls.Certificate, pkiDir string) error {
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, pki.CACertFile))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return nil // the server spoke first (HTTP/2 settings): accepted
	}
	return err
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
