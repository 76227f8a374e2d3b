package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignAgentCSR(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := func(cn string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	if _, _, err := SignAgentCSR(dir, csr("db-01"), "web-01", 0); err == nil || !strings.Contains(err.Error(), `for "db-01" from host "web-01"`) {
		t.Errorf("a CSR for another host: %v", err)
	}
	tampered := csr("web-01")
	tampered[len(tampered)/2] ^= 1
	if _, _, err := SignAgentCSR(dir, tampered, "web-01", 0); err == nil {
		t.Error("a damaged CSR was signed")
	}
	certPEM, is, err := SignAgentCSR(dir, csr("web-01"), "web-01", 0)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) || cert.Subject.CommonName != "web-01" || cert.SerialNumber.Text(16) != is.Serial {
		t.Errorf("certificate %v for key %v", cert.Subject, cert.PublicKey)
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Serial != is.Serial || list[0].Name != "web-01" {
		t.Errorf("index %+v: the renewal is not revocable", list)
	}
}
