// Package agent assembles the tripwire agent: watchers → pipeline (coalesce,
// sequence, audit chain) → spool → shipper, with /healthz and /metrics.
//
// Start with [New] on a loaded config, then [Agent.Run] until the context
// ends; send new configs on Run's reload channel (SIGHUP) to restart the
// watchers with new rules while the pipeline, chain and spool carry on.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tripwire-sec/tripwire/agent/config"
	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/agent/management"
	"github.com/tripwire-sec/tripwire/agent/pipeline"
	"github.com/tripwire-sec/tripwire/agent/shipper"
	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// Options are what the agent takes besides its config.
type Options struct {
	Version string
	Logger  *slog.Logger
	// ExtraWatchers are started beside the ones the config asks for, with the
	// same sink; tests and benchmarks use them to generate trips.
	ExtraWatchers []watcher.Watcher
	// DrainTimeout bounds the drain on stop; 0 means 30 s.
	DrainTimeout time.Duration
	// Trace sees trips pass the stages of the commit path (benchmarks).
	Trace *pipeline.Trace
	// MemoryLimit, if set, is the soft Go memory limit while the live heap
	// is small; the agent raises it with the heap (see memoryLimit). 0
	// leaves the runtime's limit (GOMEMLIMIT) alone.
	MemoryLimit int64
}

// Agent is one running tripwire agent.
type Agent struct {
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	chain   *auditchain.Writer
	spool   *spool.Spool
	pipe    *pipeline.Pipeline
	metrics *health.Metrics
	ship    *shipper.Shipper
	health  *health.Server
	// shipping is ship for readers outside the run loop (/healthz, status).
	shipping atomic.Pointer[shipper.Shipper]

	started   time.Time
	lastAlert atomic.Int64 // unix nanos of the last trip chained
	stopping  atomic.Bool
	running   atomic.Bool // Run got past start-up

	mu       sync.Mutex
	watchers []running // one per slot; reload restarts the changed ones
	extras   []running // Options.ExtraWatchers, started once
	unserved []string
	status   agentStatus // as last chained
	recheck  chan struct{}

	// Central management (management: in the config). local is the config
	// as loaded, central the central rule set running beside its rules;
	// a.cfg is the two merged.
	local      *config.Config
	central    []byte
	mgmt       *management.Client
	centralReq chan centralOffer
	runDone    chan struct{}
}

// centralOffer is a central rule set for the run loop to check and apply.
type centralOffer struct {
	body []byte
	done chan error
}

type running struct {
	slot   string // file, process, honeyport, observe
	spec   any    // what the watcher was built from
	w      watcher.Watcher
	rules  []string
	cancel context.CancelFunc
}

// New opens the audit chain and the spool, reconciles them after an unclean
// stop, and binds the health address. Nothing is watched until Run.
func New(cfg *config.Config, opts Options) (_ *Agent, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	// Not the named result: a failed return sets that to nil, and the
	// cleanup below needs what was opened.
	a := &Agent{opts: opts, log: opts.Logger, cfg: cfg, local: cfg, started: time.Now(), recheck: make(chan struct{}, 1),
		status: agentStatus{Status: event.StatusOnline}, centralReq: make(chan centralOffer), runDone: make(chan struct{})}
	defer func() {
		if err != nil {
			a.closeState()
		}
	}()
	// Created and checked without following a symlink: a directory another
	// user could rearrange would let her redirect the agent's files.
	for _, dir := range []string{filepath.Dir(cfg.Audit.Path), filepath.Dir(cfg.Spool.Path)} {
		d, err := safefile.OpenDir(dir, safefile.DirOptions{Owners: []int{0, os.Geteuid()}, Mkdir: true})
		if err != nil {
			return nil, fmt.Errorf("state directory %s: %w", dir, pathErr(err))
		}
		d.Close()
	}
	if a.chain, err = auditchain.Open(cfg.Audit.Path, auditchain.Options{MaxBytes: cfg.Audit.MaxBytes, Keep: cfg.Audit.Keep}); err != nil {
		return nil, fmt.Errorf("audit log %s: %w (keep it for investigation; tripwire audit verify shows where it breaks)", cfg.Audit.Path, pathErr(err))
	}
	if torn := a.chain.TornTail(); torn > 0 {
		a.log.Warn("audit log ended in a torn entry from an unclean stop; cut it off", "tripwire.audit.torn_bytes", torn)
	}
	spoolOpts := spool.Options{
		Path: cfg.Spool.Path, MaxEvents: cfg.Spool.MaxEvents, MaxBytes: cfg.Spool.MaxBytes,
		// a.pipe is set below, before anything is Put, so before any shed.
		OnShed: func(sh spool.Shed) { a.pipe.Shed(sh) },
		Logger: a.log,
	}
	if opts.Trace != nil {
		spoolOpts.OnCommit = opts.Trace.Spooled
	}
	a.spool, err = spool.Open(spoolOpts)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Spool.Path, pathErr(err))
	}
	a.metrics = health.NewMetrics()
	a.metrics.Registry.MustRegister(watcherCounters{a})
	a.pipe, err = pipeline.New(pipeline.Options{
		Chain: a.chain, ChainPath: cfg.Audit.Path, Spool: a.spool,
		OnChained: a.observe, Trace: opts.Trace, Logger: a.log,
	})
	if err != nil {
		return nil, err
	}
	if _, err := a.pipe.Reconcile(context.Background()); err != nil {
		return nil, err
	}
	a.registerGauges()
	a.loadCentral()
	if a.health, err = health.Listen(health.ListenOptions{
		Socket: cfg.Health.Socket, SocketGroup: cfg.Health.SocketGroup,
		Address: cfg.Health.Address, TokenFile: cfg.Health.TokenFile, Logger: a.log,
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// pathErr drops the operation and path of an *os.PathError: the caller's
// message names the file already.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && err.Error() == pe.Error() {
		return pe.Err
	}
	return err
}

// StartError is what Run returns when the agent failed before it was
// watching (a watcher or the shipper could not start): nothing ran.
type StartError struct{ Err error }

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Spool is the agent's spool (benchmarks read it as a shipper would).
func (a *Agent) Spool() *spool.Spool { return a.spool }

// PipelineStats are the pipeline's counters: trips, coalesced, dropped.
func (a *Agent) PipelineStats() pipeline.Stats { return a.pipe.Stats() }

// HealthAddress is where /healthz and /metrics answer without a token: the
// socket's path, or the TCP address when there is no socket.
func (a *Agent) HealthAddress() string { return a.health.Addr() }

// HealthTCPAddress is the opt-in TCP address (bearer token), "" without one.
func (a *Agent) HealthTCPAddress() string { return a.health.TCPAddr() }

func (a *Agent) closeState() {
	if a.health != nil {
		a.health.Close()
	}
	if a.spool != nil {
		if err := a.spool.Close(); err != nil {
			a.log.Error("closing spool", "error", err)
		}
	}
	if a.chain != nil {
		if err := a.chain.Close(); err != nil {
			a.log.Error("closing audit chain", "error", err)
		}
	}
}

// Run watches until ctx ends, then drains: watchers stop, queued events are
// chained and spooled, the shipper stops. Each config received on reload
// replaces the rules (watchers restart; nothing queued is lost).
func (a *Agent) Run(ctx context.Context, reload <-chan *config.Config) (err error) {
	a.pipe.Start()
	defer close(a.runDone)
	defer func() {
		if stopErr := a.stop(); err == nil {
			err = stopErr
		}
	}()
	a.applyRules(ctx, a.cfg)
	for _, w := range a.opts.ExtraWatchers {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.mu.Lock()
		a.extras = append(a.extras, running{w: w, cancel: cancel})
		a.mu.Unlock()
		if err := w.Start(wctx, a.pipe.Sink(w.Mechanism(), w.Missing())); err != nil {
			return &StartError{fmt.Errorf("starting %s watcher (%s): %w", w.Kind(), w.Mechanism(), err)}
		}
	}
	a.pipe.Emit(a.startEvent())
	// Health answers once the watches are in place: ok means watching.
	a.health.Serve(a.Report, a.metrics.Registry, a.log)
	a.log.Info("health listening", "server.address", a.HealthAddress(), "tripwire.health.tcp", a.HealthTCPAddress())

	shipDone := make(chan struct{})
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopShip(); <-shipDone }()
	if err := a.startShipper(shipCtx, shipDone); err != nil {
		return &StartError{err}
	}
	if err := a.startManagement(ctx); err != nil {
		return &StartError{err}
	}
	defer a.stopManagement()
	a.running.Store(true)
	// Loading the watchers used memory an idle agent does not need: give
	// it back now, not minutes later.
	releaseStartupMemory()
	a.log.Info("started", "tripwire.config", a.cfg.File, "tripwire.audit.path", a.cfg.Audit.Path,
		"tripwire.spool.path", a.cfg.Spool.Path, "server.address", a.HealthAddress())

	// After start-up, whose heap is released: the rules themselves may be a
	// live heap near the idle limit (10,000 watched paths are ~8 MB).
	memLimit := newMemoryLimit(a.opts.MemoryLimit)
	memLimit.adjust()
	tick := watcher.NewAlignedTimer(statusCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping: draining queued events")
			return nil
		case err := <-a.pipe.Err():
			return err
		case cfg := <-reload:
			a.reload(ctx, cfg)
		case offer := <-a.centralReq:
			offer.done <- a.applyCentral(ctx, offer.body)
		case <-tick.C:
			tick.Again()
			a.checkStatus()
			memLimit.adjust()
		case <-a.recheck:
			a.checkStatus()
		}
	}
}

func (a *Agent) startShipper(ctx context.Context, done chan struct{}) error {
	t := a.cfg.Transport
	if t.Endpoint == "" {
		a.log.Warn("no transport.endpoint: events stay in the spool", "tripwire.spool.path", a.cfg.Spool.Path)
		close(done)
		return nil
	}
	host, id := a.identity()
	s, err := shipper.New(shipper.Config{
		Endpoint: t.Endpoint, CAFile: t.CA, CertFile: t.Cert, KeyFile: t.Key, ServerName: t.ServerName,
		HeartbeatInterval: a.cfg.HeartbeatInterval,
		Resource: shipper.Resource{HostName: host, HostID: id, OSType: runtime.GOOS, HostArch: runtime.GOARCH,
			ServiceVersion: a.opts.Version},
		Status: func() event.Agent {
			st := a.observedStatus()
			return event.Agent{Status: st.Status, Watchers: st.Watchers, Unserved: strings.Join(st.Unserved, "; "),
				Reasons: strings.Join(st.Reasons, "; ")}
		},
		Emit: a.pipe.Emit,
		Head: a.chain.Head,
	}, a.spool, a.metrics.Registry, a.log)
	if err != nil {
		close(done)
		return fmt.Errorf("starting shipper: %w", err)
	}
	a.ship = s
	a.shipping.Store(s)
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			a.log.Error("shipper stopped; events stay in the spool", "error", err)
		}
	}()
	return nil
}

// identity is the host name and id reported, config overrides first.
func (a *Agent) identity() (string, string) {
	name, id := a.cfg.Host.Name, a.cfg.Host.ID
	if name == "" {
		name, _ = os.Hostname()
	}
	if id == "" {
		if b, err := os.ReadFile("/etc/machine-id"); err == nil {
			id = strings.TrimSpace(string(b))
		}
	}
	return name, id
}

// stop drains in order: watchers (no new trips), pipeline (chain + spool),
// then the state files.
func (a *Agent) stop() error {
	a.stopping.Store(true)
	a.stopWatchers()
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	defer cancel()
	err := a.pipe.Close(ctx)
	if err != nil {
		a.log.Error("draining", "error", err)
	} else if a.running.Load() {
		st := a.spool.Stats()
		a.log.Info("drained", "tripwire.seq", st.SpooledThrough, "tripwire.spool.depth", st.Depth)
	}
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	a.health.Shutdown(shutCtx)
	a.closeState()
	return err
}

// Close releases the state of an agent that was built but never Run.
func (a *Agent) Close() error {
	a.closeState()
	return nil
}

// reload applies a new config's rules. State paths, the health address, the
// host identity and the transport endpoint need a restart; the shipper
// reloads its certificate and key (same paths, new contents).
func (a *Agent) reload(ctx context.Context, cfg *config.Config) {
	a.log.Info("reloading rules", "tripwire.config", cfg.File)
	if cfg.Spool != a.cfg.Spool || cfg.Audit != a.cfg.Audit || cfg.Health != a.cfg.Health || cfg.Host != a.cfg.Host ||
		cfg.Transport.Endpoint != a.cfg.Transport.Endpoint || cfg.HeartbeatInterval != a.cfg.HeartbeatInterval ||
		cfg.Management != a.cfg.Management {
		a.log.Warn("host, spool, audit, health, heartbeat_interval, transport.endpoint and management changes take effect at the next restart")
	}
	a.mu.Lock()
	a.local = cfg
	a.mu.Unlock()
	if a.central != nil {
		merged, err := cfg.WithCentralRules(a.central)
		if err != nil {
			a.log.Error("the central rule set does not fit the reloaded local rules; running the local rules only", "error", err)
			if a.mgmt != nil {
				a.mgmt.Refused(err)
			}
		} else {
			cfg = merged
		}
	}
	a.applyRules(ctx, cfg)
	a.mu.Lock()
	kept := *a.cfg
	kept.Rules, kept.Watchers, kept.Central = cfg.Rules, cfg.Watchers, cfg.Central
	kept.Transport.DegradedAfter = cfg.Transport.DegradedAfter
	a.cfg = &kept
	a.mu.Unlock()
	if a.ship != nil {
		if err := a.ship.Reload(); err != nil {
			a.log.Error("reloading transport credentials", "error", err)
		}
	}
	a.log.Info("rules reloaded", "tripwire.watcher.mechanism", a.watcherModes())
	if a.mgmt != nil {
		a.mgmt.EffectiveChanged(ctx)
		go a.mgmt.CheckRenewal()
	}
}

func (a *Agent) startEvent() *event.Event {
	st := a.currentStatus()
	return &event.Event{
		Name: event.AgentStart, Severity: event.SeverityInfo, Time: time.Now().UTC(),
		Agent: &event.Agent{Watchers: st.Watchers, Status: st.Status, Unserved: strings.Join(st.Unserved, "; "),
			Reasons: strings.Join(st.Reasons, "; ")},
	}
}
