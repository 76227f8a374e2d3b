package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

// pgRun removes the shared PostgreSQL cluster of the central tests after the
// tests; testscript.Main exits itself.
type pgRun struct{ m *testing.M }

func (r pgRun) Run() int { return pgtest.Run(r.m) }

func TestMain(m *testing.M) {
	testscript.Main(pgRun{m}, map[string]func(){
		// The scripts run the real CLI entry point as a program named
		// "tripwire-pki".
		"tripwire-pki": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts pins the CLI: usage text, exit codes, error lines.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

func readCert(t *testing.T, path string) *x509.Certificate {
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

func newPKI(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestIssuedCertsVerify(t *testing.T) {
	dir := newPKI(t)
	ca := readCert(t, filepath.Join(dir, CACertFile))
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Fatalf("CA: IsCA=%v validity %s", ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	srv, err := IssueServer(dir, []string{"collector.example", "127.0.0.1", "::1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := readCert(t, srv.CertFile)
	if _, err := sc.Verify(x509.VerifyOptions{Roots: roots, DNSName: "collector.example",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server cert for DNS name: %v", err)
	}
	if _, err := sc.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server cert for IP: %v", err)
	}
	if len(sc.IPAddresses) != 2 {
		t.Fatalf("server IP SANs: %v", sc.IPAddresses)
	}

	ag, err := IssueAgent(dir, "web-01.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	ac := readCert(t, ag.CertFile)
	if _, err := ac.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("agent cert: %v", err)
	}
	// A client certificate must not be usable as a server certificate.
	if _, err := ac.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("agent cert verified for server auth")
	}
	if ac.Subject.CommonName != "web-01.example" || len(ac.DNSNames) != 1 || ac.DNSNames[0] != "web-01.example" {
		t.Fatalf("agent identity: CN %q SANs %v", ac.Subject.CommonName, ac.DNSNames)
	}
	if got := ac.NotAfter.Sub(ac.NotBefore); got < DefaultValidity || got > DefaultValidity+time.Hour {
		t.Fatalf("default validity %s", got)
	}
	if ac.SerialNumber.Text(16) != ag.Serial {
		t.Fatalf("serial %s, reported %s", ac.SerialNumber.Text(16), ag.Serial)
	}
	certs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[1].Serial != ag.Serial || certs[1].Kind != KindAgent || certs[1].Name != "web-01.example" {
		t.Fatalf("index: %+v", certs)
	}
}

func TestInitRefusesExistingCA(t *testing.T) {
	dir := newPKI(t)
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := Init(dir); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if string(before) != string(after) {
		t.Fatal("second Init changed the CA key")
	}
}

func TestRevokedSerialInCRL(t *testing.T) {
	dir := newPKI(t)
	ca := readCert(t, filepath.Join(dir, CACertFile))
	a1, err := IssueAgent(dir, "db-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := IssueAgent(dir, "db-2", 0)
	if err != nil {
		t.Fatal(err)
	}
	crl0, err := LoadCRL(filepath.Join(dir, CRLFile), ca)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(crl0.RevokedCertificateEntries); n != 0 {
		t.Fatalf("fresh CRL has %d entries", n)
	}

	revoked, err := Revoke(dir, "db-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 1 || revoked[0].Serial != a1.Serial {
		t.Fatalf("revoked %+v, want serial %s", revoked, a1.Serial)
	}
	crl1, err := LoadCRL(filepath.Join(dir, CRLFile), ca)
	if err != nil {
		t.Fatal(err)
	}
	if crl1.Number.Cmp(crl0.Number) <= 0 {
		t.Fatalf("CRL number did not grow: %s then %s", crl0.Number, crl1.Number)
	}
	if !inCRL(crl1, a1.Serial) || inCRL(crl1, a2.Serial) {
		t.Fatalf("CRL after revoking db-1: has db-1 %v, has db-2 %v", inCRL(crl1, a1.Serial), inCRL(crl1, a2.Serial))
	}

	// By serial, in the colon form openssl prints.
	hex := a2.Serial
	if len(hex)%2 == 1 {
		hex = "0" + hex
	}
	colon := hex[:2]
	for i := 2; i < len(hex); i += 2 {
		colon += ":" + strings.ToUpper(hex[i:i+2])
	}
	if _, err := Revoke(dir, colon); err != nil {
		t.Fatalf("revoke by serial %s: %v", colon, err)
	}
	crl2, err := LoadCRL(filepath.Join(dir, CRLFile), ca)
	if err != nil {
		t.Fatal(err)
	}
	if !inCRL(crl2, a1.Serial) || !inCRL(crl2, a2.Serial) {
		t.Fatal("CRL lost an entry or missed the serial")
	}
	if _, err := Revoke(dir, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown host: %v", err)
	}

	// A CRL signed by another CA is refused.
	other := newPKI(t)
	if _, err := LoadCRL(filepath.Join(other, CRLFile), ca); err == nil {
		t.Fatal("CRL from another CA accepted")
	}
}

func inCRL(crl *x509.RevocationList, serialHex string) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Text(16) == serialHex {
			return true
		}
	}
	return false
}

func TestValidityBound(t *testing.T) {
	dir := newPKI(t)
	if _, err := IssueAgent(dir, "h", MaxValidity+time.Hour); !errors.Is(err, ErrValidity) {
		t.Fatalf("over max: %v, want ErrValidity", err)
	}
	if _, err := IssueServer(dir, []string{"c"}, MaxValidity+time.Hour); !errors.Is(err, ErrValidity) {
		t.Fatalf("server over max: %v, want ErrValidity", err)
	}
	is, err := IssueAgent(dir, "h", MaxValidity)
	if err != nil {
		t.Fatalf("exactly max: %v", err)
	}
	c := readCert(t, is.CertFile)
	if got := c.NotAfter.Sub(c.NotBefore); got > MaxValidity+time.Hour {
		t.Fatalf("validity %s beyond max", got)
	}
	for _, s := range []string{"731d", "3y"} {
		d, err := ParseValidity(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := IssueAgent(dir, "h", d); !errors.Is(err, ErrValidity) {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// Nothing was recorded for the refused ones.
	certs, _ := List(dir)
	if len(certs) != 1 {
		t.Fatalf("index has %d entries, want 1", len(certs))
	}
}

func TestParseValidity(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"365d": 365 * 24 * time.Hour, "1y": 365 * 24 * time.Hour, "2y": MaxValidity, "720h": 720 * time.Hour,
	} {
		got, err := ParseValidity(in)
		if err != nil || got != want {
			t.Errorf("ParseValidity(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "0y", "1.5d", "x", "-5h", "1e3d"} {
		if _, err := ParseValidity(in); !errors.Is(err, ErrValidity) {
			t.Errorf("ParseValidity(%q): %v, want ErrValidity", in, err)
		}
	}
}

func TestBadHostNames(t *testing.T) {
	dir := newPKI(t)
	for _, h := range []string{"", "../etc/passwd", "a/b", "-x", ".x", "a..b", "héllo", "a b"} {
		if _, err := IssueAgent(dir, h, 0); !errors.Is(err, ErrBadHost) {
			t.Errorf("IssueAgent(%q): %v, want ErrBadHost", h, err)
		}
	}
	if _, err := IssueServer(dir, nil, 0); !errors.Is(err, ErrNoNames) {
		t.Errorf("IssueServer without names: %v", err)
	}
}

func TestNoCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := IssueAgent(dir, "h", 0); !errors.Is(err, ErrNoCA) {
		t.Fatalf("IssueAgent without CA: %v", err)
	}
	if _, err := Revoke(dir, "h"); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Revoke without CA: %v", err)
	}
}

func TestFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes on windows")
	}
	dir := newPKI(t)
	if _, err := IssueServer(dir, []string{"c"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := IssueAgent(dir, "h", 0); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		".": 0o700, AgentsDir: 0o700,
		CACertFile: 0o644, CAKeyFile: 0o600, ServerCertFile: 0o644, ServerKeyFile: 0o600,
		CRLFile: 0o644, IndexFile: 0o644, ".lock": 0o600,
		"agents/h.crt": 0o644, "agents/h.key": 0o600,
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
	}
	// No temporary files are left behind by the atomic writes.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name()[0] == '.' && e.Name() != ".lock" {
			t.Errorf("leftover %s", e.Name())
		}
	}
	// An existing, too open directory is tightened by Init.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Init(open); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("Init left %s at %o", open, fi.Mode().Perm())
	}
}

// TestConcurrentIssue: parallel issues (an operator script, several
// terminals) lose no index entry.
func TestConcurrentIssue(t *testing.T) {
	dir := newPKI(t)
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := IssueAgent(dir, fmt.Sprintf("host-%02d", i), 0)
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	certs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != n {
		t.Fatalf("index has %d entries after %d concurrent issues", len(certs), n)
	}
}
