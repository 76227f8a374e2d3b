package shipper

import (
	"context"
	"sync"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// heartbeats sends one heartbeat at once, so the host shows up as soon as
// the agent starts, then one per interval. A heartbeat is state, not
// history: it bypasses the spool and a failed one is not retried.
func (s *Shipper) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		s.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.beat:
		}
	}
}

func (s *Shipper) beatSoon() {
	select {
	case s.beat <- struct{}{}:
	default:
	}
}

func (s *Shipper) heartbeat(ctx context.Context) {
	e := s.heartbeatEvent(time.Now())
	hctx, cancel := context.WithTimeout(ctx, min(s.cfg.ExportTimeout, s.cfg.HeartbeatInterval))
	defer cancel()
	out, _ := s.export(hctx, s.currentLink(), s.logs([]*event.Event{e}))
	if out.err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		s.beatFailing.CompareAndSwap(0, time.Now().UnixNano())
		s.log.Debug("heartbeat failed; the next one replaces it", "error", out.err)
		s.metrics.heartbeats.WithLabelValues("failed").Inc()
		return
	}
	s.beatFailing.Store(0)
	s.metrics.heartbeats.WithLabelValues("ok").Inc()
}

func (s *Shipper) heartbeatEvent(now time.Time) *event.Event {
	a := event.Agent{Status: event.StatusOnline}
	if s.cfg.Status != nil {
		a = s.cfg.Status()
		if a.Status == "" {
			a.Status = event.StatusOnline
		}
	}
	a.CertNotAfter = s.creds.leaf().NotAfter
	e := &event.Event{
		Name:         event.AgentHeartbeat,
		AlertID:      event.NewAlertID(),
		Severity:     event.SeverityInfo,
		Time:         now,
		ObservedTime: now,
		Agent:        &a,
	}
	// A heartbeat is not chained: its tripwire.seq and tripwire.audit.hash
	// announce the chain's head instead.
	if s.cfg.Head != nil {
		e.Seq, e.Hash = s.cfg.Head()
	}
	return e
}

// expiryState remembers the last certificate-expiry warning so it is raised
// once a day, not on every check.
type expiryState struct {
	mu       sync.Mutex
	notAfter time.Time // of the certificate last warned about
	warnedAt time.Time
}

func (s *Shipper) watchExpiry(ctx context.Context) {
	t := time.NewTicker(certCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.checkExpiry(now)
		}
	}
}

// checkExpiry emits a WARN tripwire.agent.cert_expiry event through the
// pipeline when the client certificate expires within CertWarning: at once
// for a newly loaded certificate, then once a day until it is renewed.
func (s *Shipper) checkExpiry(now time.Time) {
	notAfter := s.creds.leaf().NotAfter
	left := notAfter.Sub(now)
	if left > s.cfg.CertWarning {
		return
	}
	s.expiry.mu.Lock()
	due := !notAfter.Equal(s.expiry.notAfter) || now.Sub(s.expiry.warnedAt) >= certWarningRepeat
	if due {
		s.expiry.notAfter, s.expiry.warnedAt = notAfter, now
	}
	s.expiry.mu.Unlock()
	if !due {
		return
	}
	s.log.Warn("client certificate expires soon; issue a new one and reload (SIGHUP)",
		event.KeyCertNotAfter, notAfter.UTC(), "days_left", int(left.Hours()/24))
	if s.cfg.Emit == nil {
		return
	}
	s.cfg.Emit(&event.Event{
		Name:         event.AgentCertExpiry,
		AlertID:      event.NewAlertID(),
		Severity:     event.SeverityWarn,
		Time:         now,
		ObservedTime: now,
		Agent:        &event.Agent{CertNotAfter: notAfter},
	})
}
