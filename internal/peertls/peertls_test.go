package peertls

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/pki"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func leafOf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitRefused polls Check until it refuses leaf as revoked.
func waitRefused(t *testing.T, p *Policy, leaf *x509.Certificate, within time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	for !errors.Is(p.Check(leaf, true), ErrRevoked) {
		if time.Since(begin) > within {
			t.Fatalf("%s not refused within %s", leaf.Subject.CommonName, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(begin)
}

// TestRevocationsFromPostgreSQL: the policy refuses the serials of
// pki_revocations soon after they are stored, keeps refusing them while
// PostgreSQL is down, and follows new ones once it is back. A private
// cluster: the test stops it.
func TestRevocationsFromPostgreSQL(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.IssueServer(dir, []string{"localhost"}, 0); err != nil {
		t.Fatal(err)
	}
	var leaves []*x509.Certificate
	var entries []pki.Entry
	for _, h := range []string{"web-1", "web-2"} {
		is, err := pki.IssueAgent(dir, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leafOf(t, is.CertFile))
		entries = append(entries, pki.Entry{Serial: is.Serial, Name: h})
	}
	cluster := pgtest.NewCluster(t)
	dsn := cluster.NewSchemaDB(t)
	p, err := NewPolicy(Config{CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
		ClientCAFile: filepath.Join(dir, pki.CACertFile), RevocationsDSN: configopaque.String(dsn)},
		zap.NewNop(), func(string, *x509.Certificate, error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, l := range leaves {
		if err := p.Check(l, true); err != nil {
			t.Fatalf("%s refused before any revocation: %v", l.Subject.CommonName, err)
		}
	}
	revoke := func(i int) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := pki.RevokeCentral(ctx, conn, entries[i].Name, entries[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}

	revoke(0)
	t.Logf("revoked in PostgreSQL, refused %s later", waitRefused(t, p, leaves[0], 5*time.Second).Round(time.Millisecond))
	if err := p.Check(leaves[1], true); err != nil {
		t.Fatalf("web-2 refused with web-1's revocation: %v", err)
	}

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // past a failed reconnect
	if !errors.Is(p.Check(leaves[0], true), ErrRevoked) {
		t.Fatal("a revocation read before PostgreSQL went down is forgotten while it is down")
	}
	if err := p.Check(leaves[1], true); err != nil {
		t.Fatalf("web-2 refused while PostgreSQL is down: %v", err)
	}

	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	revoke(1)
	t.Logf("after PostgreSQL restarted, a new revocation refused %s later",
		waitRefused(t, p, leaves[1], 15*time.Second).Round(time.Millisecond))
}
