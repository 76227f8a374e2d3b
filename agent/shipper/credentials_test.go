package shipper

import (
	"context"
	"crypto/tls"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestReloadSwapsCertificateMidStream: a renewed certificate is picked up by
// Reload while events keep coming; nothing is lost or duplicated and the
// collector sees the new certificate.
func TestReloadSwapsCertificateMidStream(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)
	s := runShipper(t, testConfig(p, c), sp, nil)

	ch := newChain()
	var all []*event.Event
	var mu sync.Mutex
	ctx, stop := context.WithCancel(context.Background())
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for ctx.Err() == nil {
			evs := ch.next(5, event.SeverityWarn)
			mu.Lock()
			all = append(all, evs...)
			mu.Unlock()
			if err := sp.Put(context.Background(), evs); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	oldSerial := ""
	waitFor(t, "events under the first certificate", func() bool {
		tr := c.trips()
		if len(tr) < 50 {
			return false
		}
		oldSerial = tr[0].serial
		return true
	})
	newSerial := p.reissue(t, 0)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "events under the new certificate", func() bool {
		tr := c.trips()
		return tr[len(tr)-1].serial == newSerial
	})
	stop()
	<-producerDone
	if err := sp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, sp, c)
	mu.Lock()
	defer mu.Unlock()
	got := c.trips()
	checkDelivered(t, got, all)
	if oldSerial == newSerial {
		t.Fatal("the renewed certificate has the old serial")
	}
	// Once the new certificate is in use, the old one is never used again.
	switched := false
	for _, r := range got {
		switch {
		case r.serial == newSerial:
			switched = true
		case r.serial == oldSerial && switched:
			t.Fatalf("seq %d sent with the old certificate after the switch", r.ev.Seq)
		case r.serial != oldSerial:
			t.Fatalf("seq %d sent with unknown certificate %s", r.ev.Seq, r.serial)
		}
	}
}

// TestReloadPicksUpNewCA: the collector moves to a certificate from a new
// CA; the shipper keeps everything until the operator installs the new CA
// bundle and reloads, then delivers at once.
func TestReloadPicksUpNewCA(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)
	cfg := testConfig(p, c)
	cfg.MaxBackoff = 20 * time.Second // delivery after Reload must not wait for the backoff
	reg := prometheus.NewRegistry()
	s := runShipper(t, cfg, sp, reg)
	ch := newChain()
	first := ch.next(10, event.SeverityWarn)
	put(t, sp, first)
	waitEmpty(t, sp, c)

	other := newTestPKI(t, 0)
	c.stop()
	c.tls.Certificates = []tls.Certificate{other.serverCert}
	c.start()
	second := ch.next(10, event.SeverityWarn)
	put(t, sp, second)
	failed := mustGet(t, reg, "tripwire_shipper_failed_total")
	waitFor(t, "failed handshakes", func() bool { return testutil.ToFloat64(failed) >= 6 })
	if d := spooled(t, sp); d != len(second) {
		t.Fatalf("spool depth %d, want %d", d, len(second))
	}

	bundle := append(readFile(t, p.ca), readFile(t, other.ca)...)
	if err := os.WriteFile(p.ca, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, sp, c)
	checkDelivered(t, c.trips(), append(first, second...))
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReloadKeepsOldCredentialsOnError(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)
	s := runShipper(t, testConfig(p, c), sp, nil)
	if err := os.WriteFile(p.agentCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("Reload accepted a broken certificate file")
	}
	evs := newChain().next(10, event.SeverityInfo)
	put(t, sp, evs)
	waitEmpty(t, sp, c)
	checkDelivered(t, c.trips(), evs)
}

func TestCertExpiryWarning(t *testing.T) {
	p := newTestPKI(t, 10*24*time.Hour)
	c := startCollector(t, p)
	sp := openSpool(t)
	var mu sync.Mutex
	var emitted []*event.Event
	cfg := testConfig(p, c)
	cfg.Emit = func(e *event.Event) {
		mu.Lock()
		emitted = append(emitted, e)
		mu.Unlock()
	}
	s := runShipper(t, cfg, sp, nil)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(emitted)
	}
	waitFor(t, "a cert_expiry event", func() bool { return count() >= 1 })

	mu.Lock()
	e := emitted[0]
	mu.Unlock()
	notAfter := s.creds.leaf().NotAfter
	if e.Name != event.AgentCertExpiry || e.Severity != event.SeverityWarn {
		t.Fatalf("emitted %s %s, want %s WARN", e.Name, e.Severity, event.AgentCertExpiry)
	}
	if e.Agent == nil || !e.Agent.CertNotAfter.Equal(notAfter) {
		t.Fatalf("%s = %v, want %v", event.KeyCertNotAfter, e.Agent, notAfter)
	}
	if left := time.Until(e.Agent.CertNotAfter); left < 9*24*time.Hour || left > 10*24*time.Hour {
		t.Fatalf("certificate expires in %v, want about 10 days", left)
	}
	// The pipeline assigns seq and hashes; with them the event must validate.
	e.Seq = 1
	if err := e.Validate(); err != nil {
		t.Fatalf("cert_expiry event does not validate: %v", err)
	}

	// Once a day, not on every check.
	now := time.Now()
	s.checkExpiry(now.Add(time.Hour))
	if n := count(); n != 1 {
		t.Fatalf("%d cert_expiry events within a day, want 1", n)
	}
	s.checkExpiry(now.Add(25 * time.Hour))
	if n := count(); n != 2 {
		t.Fatalf("%d cert_expiry events after a day, want 2", n)
	}

	// A renewed certificate far from expiry stops the warnings.
	p.reissue(t, 0)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	s.checkExpiry(now.Add(50 * time.Hour))
	if n := count(); n != 2 {
		t.Fatalf("%d cert_expiry events after renewal, want still 2", n)
	}
}

func TestNoCertExpiryWarningForFreshCertificate(t *testing.T) {
	p := newTestPKI(t, 0) // one year
	c := startCollector(t, p)
	var emitted int
	cfg := testConfig(p, c)
	cfg.Emit = func(*event.Event) { emitted++ }
	s, err := New(cfg, openSpool(t), nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s.checkExpiry(time.Now())
	s.checkExpiry(time.Now().Add(300 * 24 * time.Hour)) // 65 days left
	if emitted != 0 {
		t.Fatalf("%d warnings for a certificate with more than 30 days left", emitted)
	}
	s.checkExpiry(time.Now().Add(340 * 24 * time.Hour)) // 25 days left
	if emitted != 1 {
		t.Fatalf("%d warnings 25 days before expiry, want 1", emitted)
	}
}

// TestRefusesUntrustedCollector: the shipper sends nothing to a collector
// whose certificate its CA did not sign, nor over anything below TLS 1.3,
// and keeps every event for a collector it trusts.
func TestRefusesUntrustedCollector(t *testing.T) {
	p := newTestPKI(t, 0)
	other := newTestPKI(t, 0)
	for name, mutate := range map[string]func(*tls.Config){
		"another CA": func(c *tls.Config) { c.Certificates = []tls.Certificate{other.serverCert} },
		"TLS 1.2":    func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 },
	} {
		t.Run(name, func(t *testing.T) {
			c := &testCollector{t: t, tls: p.serverTLS(t), addr: "127.0.0.1:0"}
			mutate(c.tls)
			c.start()
			t.Cleanup(c.stop)
			sp := openSpool(t)
			evs := newChain().next(5, event.SeverityCritical)
			put(t, sp, evs)
			reg := prometheus.NewRegistry()
			runShipper(t, testConfig(p, c), sp, reg)
			failed := mustGet(t, reg, "tripwire_shipper_failed_total")
			waitFor(t, "failed exports", func() bool { return testutil.ToFloat64(failed) >= 3 })
			c.mu.Lock()
			calls := c.calls
			c.mu.Unlock()
			if calls != 0 || spooled(t, sp) != len(evs) {
				t.Fatalf("%d requests reached the collector, spool depth %d", calls, spooled(t, sp))
			}
		})
	}
}
