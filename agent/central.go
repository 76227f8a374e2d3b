package agent

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/tripwire-sec/tripwire/agent/management"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// loadCentral adds the central rule set kept from the last run, so that an
// agent restarted without the server watches what it watched before. A kept
// set that no longer fits the local rules is left out, said, and reported
// once the server answers.
func (a *Agent) loadCentral() {
	m := a.local.Management
	if m.Endpoint == "" {
		return
	}
	body, err := management.LoadRules(m.RulesFile)
	if err != nil {
		a.log.Error("central rule set unreadable; running the local rules only", "error", err)
		return
	}
	if body == nil {
		return
	}
	merged, err := a.local.WithCentralRules(body)
	if err != nil {
		a.log.Error("the kept central rule set does not fit the local rules; running the local rules only", "error", err)
		return
	}
	a.cfg, a.central = merged, body
	a.log.Info("central rule set loaded", "file.path", m.RulesFile, event.KeyRule, merged.Central)
}

func (a *Agent) startManagement(ctx context.Context) error {
	m := a.local.Management
	if m.Endpoint == "" {
		return nil
	}
	host, id := a.identity()
	c, err := management.New(management.Options{
		Endpoint: m.Endpoint, CA: m.CA, Cert: m.Cert, Key: m.Key, ServerName: m.ServerName, RulesFile: m.RulesFile,
		HostName: host, HostID: id, Version: a.opts.Version,
		Apply:       a.offerCentral,
		Effective:   a.effectiveConfig,
		RenewBefore: m.RenewBefore,
		// The shipper's next request uses the renewed certificate; the one
		// in flight finishes on its connection, so nothing is sent twice.
		OnRenewed: func() {
			if sh := a.shipping.Load(); sh != nil {
				if err := sh.Reload(); err != nil {
					a.log.Error("reloading the renewed certificate", "error", err)
				}
			}
		},
		Logger: a.log,
	}, a.central)
	if err != nil {
		return err
	}
	st := a.currentStatus()
	c.SetHealth(st.Status == event.StatusOnline, st.Status, strings.Join(st.Reasons, "; "))
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	a.mgmt = c
	// The first connection (TLS, the first offer) touches memory and code
	// an idle agent does not need again: give it back once it settled, as
	// after start-up. Measured here idle: 30.5-31.4 MB with management
	// without this, 19.8-25.0 MB with it, 26.8-29.8 MB without management.
	go func() {
		select {
		case <-c.Connected():
			time.Sleep(5 * time.Second)
		case <-time.After(time.Minute):
		case <-a.runDone:
			return
		}
		releaseStartupMemory()
	}()
	return nil
}

func (a *Agent) stopManagement() {
	if a.mgmt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.mgmt.Stop(ctx); err != nil {
		a.log.Warn("closing the management connection", "error", err)
	}
}

var errStopping = errors.New("the agent is stopping")

// offerCentral hands a central rule set to the run loop, which applies it
// between reloads, and waits for its verdict.
func (a *Agent) offerCentral(ctx context.Context, body []byte) error {
	done := make(chan error, 1)
	select {
	case a.centralReq <- centralOffer{body: body, done: done}:
	case <-a.runDone:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-done
}

// applyCentral checks body beside the local rules and applies the two
// together exactly as a SIGHUP reload does: changed watchers start before
// the old ones stop. A set that does not check is refused whole; the
// running rules stay.
func (a *Agent) applyCentral(ctx context.Context, body []byte) error {
	merged, err := a.local.WithCentralRules(body)
	if err != nil {
		return err
	}
	a.log.Info("applying central rule set", event.KeyRule, merged.Central)
	a.applyRules(ctx, merged)
	a.mu.Lock()
	kept := *a.cfg
	kept.Rules, kept.Central = merged.Rules, merged.Central
	a.cfg = &kept
	a.central = body
	a.mu.Unlock()
	return nil
}

// effectiveConfig is what the agent runs: the central set as applied and
// the local rules as written.
func (a *Agent) effectiveConfig() *protobufs.EffectiveConfig {
	a.mu.Lock()
	central, local := a.central, a.local
	a.mu.Unlock()
	return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		management.RulesKey: {Body: central, ContentType: "text/yaml"},
		LocalRulesKey:       {Body: local.LocalRulesYAML(), ContentType: "text/yaml"},
	}}}
}

// LocalRulesKey names the local rules in the reported effective config.
const LocalRulesKey = "local-rules.yaml"
