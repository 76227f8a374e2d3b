// Package shipper delivers the agent's spooled events to the TripWire
// collector as OTLP logs over gRPC with mutual TLS, at least once: a batch is
// deleted from the spool only after the collector acknowledged it.
//
// Start with [New] and [Shipper.Run]; call [Shipper.Reload] on SIGHUP to pick
// up a renewed certificate and key without losing queued events. The shipper
// also sends heartbeats (not spooled: a lost heartbeat is replaced by the next)
// and warns through [Config.Emit] when the client certificate nears expiry.
//
// Delivery rules, in order of precedence:
//   - an export the collector acknowledged (gRPC OK) deletes the batch, even
//     with a partial success: the records it rejected are permanently
//     invalid, so they are logged and counted in
//     tripwire_shipper_rejected_total instead of being resent forever;
//   - a batch refused whole with InvalidArgument (or too large) is split until
//     the offending record is alone; that record is then retried with backoff
//     like any failure, never dropped;
//   - any other failure (Unavailable, PermissionDenied, a refused handshake)
//     keeps the batch and retries it with exponential backoff and jitter.
//
// Metrics: tripwire_shipper_sent_total, _failed_total, _reconnects_total,
// _rejected_total{reason}, _heartbeats_total{result}, _queue_age_seconds,
// _cert_not_after_seconds, _batch_size and _export_duration_seconds.
package shipper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// Defaults for the zero values of Config.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultMaxBatch          = 512
	DefaultMaxBatchBytes     = 1 << 20
	DefaultExportTimeout     = 10 * time.Second
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
	DefaultCertWarning       = 30 * 24 * time.Hour

	// certWarningRepeat is how often the expiry warning is repeated while the
	// certificate stays unrenewed.
	certWarningRepeat = 24 * time.Hour
	// certCheckInterval is how often the certificate's expiry is looked at.
	certCheckInterval = time.Hour
	// maxRequestBytes is gRPC's default receive limit on the collector side;
	// a request above it would be refused whole, so the exporter refuses it
	// first and the shipper splits the batch.
	maxRequestBytes = 4 << 20
)

// Config says where and how to ship.
type Config struct {
	// Endpoint is the collector's OTLP/gRPC address, host:port.
	Endpoint string
	// CAFile is the PEM bundle of the CA that signed the collector's certificate.
	CAFile string
	// CertFile and KeyFile are the agent's client certificate and key (PEM).
	CertFile, KeyFile string
	// ServerName overrides the name checked in the collector's certificate;
	// empty means the host part of Endpoint.
	ServerName string
	// HeartbeatInterval is how often a heartbeat is sent; 0 means 15 s.
	HeartbeatInterval time.Duration
	// Resource identifies this host in every record; service.name is always
	// tripwire-agent.
	Resource Resource
	// Status reports the agent's health for heartbeats: Status (ONLINE or
	// DEGRADED), Watchers ("file=fanotify,process=ebpf"), Unserved and
	// Reasons. Nil means ONLINE with nothing else to say.
	Status func() event.Agent
	// Emit hands an agent event (certificate expiry) to the pipeline, which
	// chains and spools it like a trip. Nil drops those events.
	Emit func(*event.Event)
	// Head reports the audit chain's head, the last seq and hash written
	// to the local log, shipped or not. Heartbeats announce it so that the
	// collector sees a log cut or rewritten before its tail was shipped.
	// Nil announces nothing.
	Head func() (seq uint64, hash string)

	// MaxBatch caps the events per export; 0 means 512.
	MaxBatch int
	// MaxBatchBytes caps the approximate encoded size of one export; 0 means 1 MiB.
	MaxBatchBytes int
	// ExportTimeout bounds one export; 0 means 10 s.
	ExportTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed exports
	// (doubling, ±20 % jitter); 0 means 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// CertWarning is how long before expiry the certificate warning starts;
	// 0 means 30 days.
	CertWarning time.Duration
}

// Resource is the OTLP resource of every record this agent sends.
type Resource struct {
	HostName       string // host.name
	HostID         string // host.id
	OSType         string // os.type
	HostArch       string // host.arch
	ServiceVersion string // service.version
}

// source is what the shipper needs of the spool.
type source interface {
	Oldest(ctx context.Context, n int) ([]spool.Item, error)
	Delete(ctx context.Context, ids []int64) error
	Committed() <-chan struct{}
	OldestAge() time.Duration
}

var _ source = (*spool.Spool)(nil)

// Shipper sends the spool to the collector. Run it once; Reload may be
// called concurrently.
type Shipper struct {
	cfg     Config
	src     source
	log     *slog.Logger
	metrics *metrics
	creds   *credentials

	// shipFailing and beatFailing are the unix nanos of the first failure of
	// the current outage of exports and of heartbeats; 0 while they succeed.
	shipFailing, beatFailing atomic.Int64

	mu   sync.Mutex
	link *link // current connection; swapped between batches on Reload

	connected atomic.Bool   // a connection has been READY once: later ones are reconnects
	reloaded  chan struct{} // signalled by Reload: swap the link
	beat      chan struct{} // signalled to send a heartbeat before the next tick
	expiry    expiryState
}

// New checks the configuration, loads the credentials and registers the
// metrics on reg (nil registers nothing). It does not connect: Run does.
func New(cfg Config, sp *spool.Spool, reg prometheus.Registerer, log *slog.Logger) (*Shipper, error) {
	if sp == nil {
		return nil, errors.New("shipper: nil spool")
	}
	return newShipper(cfg, sp, reg, log)
}

func newShipper(cfg Config, src source, reg prometheus.Registerer, log *slog.Logger) (*Shipper, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds, err := loadCredentials(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	s := &Shipper{
		cfg:      cfg,
		src:      src,
		log:      log.With("component", "shipper"),
		creds:    creds,
		reloaded: make(chan struct{}, 1),
		beat:     make(chan struct{}, 1),
	}
	s.metrics = newMetrics(src.OldestAge)
	s.metrics.setCert(creds.leaf())
	s.checkKeyMode()
	if reg != nil {
		if err := s.metrics.register(reg); err != nil {
			return nil, fmt.Errorf("registering shipper metrics: %w", err)
		}
	}
	return s, nil
}

func (c *Config) setDefaults() error {
	if c.Endpoint == "" {
		return errors.New("shipper: no endpoint")
	}
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
		return fmt.Errorf("shipper: endpoint %q: want host:port: %w", c.Endpoint, err)
	}
	if c.CAFile == "" || c.CertFile == "" || c.KeyFile == "" {
		return errors.New("shipper: ca, cert and key files are all required (mutual TLS)")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.ExportTimeout, DefaultExportTimeout)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.CertWarning, DefaultCertWarning)
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	return nil
}

// Run ships until ctx ends, then closes the connection and returns nil.
// Events not acknowledged by then stay in the spool for the next run.
func (s *Shipper) Run(ctx context.Context) error {
	l, err := s.dial()
	if err != nil {
		return err
	}
	s.setLink(l)
	defer func() { s.setLink(nil) }()

	s.checkExpiry(time.Now())
	var wg sync.WaitGroup
	wg.Go(func() { s.heartbeats(ctx) })
	wg.Go(func() { s.watchExpiry(ctx) })
	defer wg.Wait()

	s.log.Info("shipping", "server.address", s.cfg.Endpoint)
	s.ship(ctx)
	return nil
}

// FailingFor is how long shipping has been failing at now: the older of the
// current outages of exports and of heartbeats, 0 while both succeed.
func (s *Shipper) FailingFor(now time.Time) time.Duration {
	var d time.Duration
	for _, since := range []int64{s.shipFailing.Load(), s.beatFailing.Load()} {
		if since != 0 {
			d = max(d, now.Sub(time.Unix(0, since)))
		}
	}
	return d
}

// BeatSoon sends a heartbeat now, e.g. when the agent's status changed.
func (s *Shipper) BeatSoon() { s.beatSoon() }

// Reload re-reads the CA, certificate and key. On error the old ones stay in
// use. Queued events are untouched: the next batch goes over a new connection
// made with the new certificate.
func (s *Shipper) Reload() error {
	if err := s.creds.reload(); err != nil {
		s.log.Error("reloading credentials; keeping the old ones", "error", err)
		return err
	}
	leaf := s.creds.leaf()
	s.metrics.setCert(leaf)
	s.checkKeyMode()
	s.log.Info("credentials reloaded", event.KeyCertNotAfter, leaf.NotAfter.UTC())
	s.checkExpiry(time.Now())
	select {
	case s.reloaded <- struct{}{}:
	default:
	}
	return nil
}

// checkKeyMode warns when the private key is readable by others: it still
// works, but anyone who can read it can send as this host.
func (s *Shipper) checkKeyMode() {
	if runtime.GOOS == "windows" {
		return // no Unix permission bits
	}
	if fi, err := os.Stat(s.cfg.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("client key is readable by group or others; chmod 600 it", "file.path", s.cfg.KeyFile, "mode", fi.Mode().Perm().String())
	}
}

// ship is the delivery loop: oldest events first, deleted only once
// acknowledged; idle until the spool commits something new.
func (s *Shipper) ship(ctx context.Context) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     s.cfg.MinBackoff,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         s.cfg.MaxBackoff,
	}
	bo.Reset()
	limit := s.cfg.MaxBatch // shrinks while isolating a record the collector refuses
	var downSince time.Time // first failure of the current outage
	failures := 0

	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-s.reloaded:
			// New credentials may be the fix: try them now.
			s.swapLink()
			bo.Reset()
			return true
		}
	}

	for ctx.Err() == nil {
		select {
		case <-s.reloaded:
			s.swapLink()
		default:
		}
		items, err := s.src.Oldest(ctx, limit)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("reading the spool", "error", err)
			if !wait(bo.NextBackOff()) {
				return
			}
			continue
		}
		if len(items) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.src.Committed():
			case <-s.reloaded:
				s.swapLink()
			}
			continue
		}
		batch := s.cut(items)
		out := s.send(ctx, batch)
		switch {
		case out.err == nil:
			s.shipFailing.Store(0)
			if failures > 0 {
				s.log.Info("delivery restored", "failed_attempts", failures, "down_for", time.Since(downSince).Round(time.Millisecond).String())
				failures = 0
				s.beatSoon() // let the collector mark the host online again now
			}
			bo.Reset()
			if err := s.src.Delete(ctx, batch.ids); err != nil {
				// The batch will be sent again: at-least-once, and the
				// collector is idempotent on alert_id.
				if ctx.Err() != nil {
					return
				}
				s.log.Error("deleting acknowledged events from the spool", "error", err, "count", len(batch.ids))
				if !wait(bo.NextBackOff()) {
					return
				}
				continue
			}
			if limit < s.cfg.MaxBatch {
				limit = min(limit*2, s.cfg.MaxBatch)
			}
		case out.split && len(batch.ids) > 1:
			// Refused whole (malformed or too large): halve until the
			// offending record is alone, so the records before it still
			// land. A record refused alone is retried with backoff, not
			// dropped: it validated here, so the refusal more likely says
			// something about the collector than about the record.
			limit = max(1, len(batch.ids)/2)
			s.metrics.failed.Inc()
			s.log.Warn("collector refused a batch; splitting it", "count", len(batch.ids), "error", out.err)
		default:
			if ctx.Err() != nil {
				return
			}
			if failures == 0 {
				downSince = time.Now()
				s.shipFailing.CompareAndSwap(0, downSince.UnixNano())
			}
			failures++
			s.metrics.failed.Inc()
			d := max(bo.NextBackOff(), out.retryAfter)
			level := slog.LevelWarn
			if out.operator {
				level = slog.LevelError
			}
			s.log.Log(ctx, level, "export failed; retrying", "error", out.err, "attempt", failures,
				"retry_in", d.Round(time.Millisecond).String(), "count", len(batch.ids),
				event.KeySeq, batch.first.Seq, event.KeyAlertID, batch.first.AlertID.String())
			if !wait(d) {
				return
			}
			if s.currentLink().broken() {
				s.redial()
			}
		}
	}
}

func (s *Shipper) currentLink() *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

func (s *Shipper) setLink(l *link) {
	s.mu.Lock()
	old := s.link
	s.link = l
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
}

// redial replaces a failing connection with a fresh one.
func (s *Shipper) redial() {
	l, err := s.dial()
	if err != nil {
		s.log.Error("reconnecting", "error", err)
		return
	}
	s.setLink(l)
}

// swapLink replaces the connection with one using the reloaded
// credentials. It runs between batches, so nothing is in flight on the
// shipping side; a heartbeat in flight finishes before the old link closes.
func (s *Shipper) swapLink() {
	l, err := s.dial()
	if err != nil {
		s.log.Error("reconnecting with reloaded credentials; keeping the old connection", "error", err)
		return
	}
	s.setLink(l)
	s.beatSoon() // carries the new certificate's expiry
}
