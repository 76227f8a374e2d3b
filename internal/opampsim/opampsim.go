// Package opampsim is a simulated managed agent for tests and benchmarks: an
// opamp-go client with a host's certificate that takes the central rule set
// it is offered, refuses it when Refuse says so, and reports like the real
// agent (applied or failed, by the offered hash). It runs no watcher; the
// end-to-end tests pair many of these with one real agent.
//
// Start with [Start]; read [Agent.Applied] for what it runs.
package opampsim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/tripwire-sec/tripwire/contract"
)

// Options of one simulated agent.
type Options struct {
	URL           string // wss://host:port/v1/opamp
	CA, Cert, Key string // PEM files
	Host          string // for the instance id; the server takes the CN
	// Refuse, when set, says why the agent refuses a set (nil: applies it).
	Refuse func(body []byte) error
	// OnApplied is called with each set the agent applies.
	OnApplied func(body []byte, at time.Time)
	// Running is a set it runs from before (reported as applied).
	Running []byte
}

// Agent is one simulated agent.
type Agent struct {
	opts   Options
	client client.OpAMPClient

	mu      sync.Mutex
	applied []byte
	hash    []byte
	failed  string
	changed chan struct{}

	stopOnce sync.Once
}

// Start connects; the client reconnects by itself until Stop.
func Start(ctx context.Context, opts Options) (*Agent, error) {
	ca, err := os.ReadFile(opts.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(opts.Cert, opts.Key)
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, client: client.NewWebSocket(nil), changed: make(chan struct{})}
	var status *protobufs.RemoteConfigStatus
	if opts.Running != nil {
		a.applied, a.hash = opts.Running, hash(opts.Running)
		status = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: a.hash,
			Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	}
	if err := a.client.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{
		{Key: contract.ResourceServiceName, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "opampsim"}}}}}); err != nil {
		return nil, err
	}
	err = a.client.Start(ctx, types.StartSettings{
		OpAMPServerURL: opts.URL,
		TLSConfig:      &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}},
		InstanceUid:    types.InstanceUid(uuid.NewSHA1(uuid.NameSpaceOID, []byte("opampsim/"+opts.Host))),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig,
		RemoteConfigStatus: status,
		Callbacks: types.Callbacks{
			OnMessage: a.onMessage,
			GetEffectiveConfig: func(context.Context) (*protobufs.EffectiveConfig, error) {
				a.mu.Lock()
				defer a.mu.Unlock()
				return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
					contract.RemoteRulesKey: {Body: a.applied}}}}, nil
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("starting simulated agent %s: %w", opts.Host, err)
	}
	return a, nil
}

func hash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func (a *Agent) onMessage(ctx context.Context, msg *types.MessageData) {
	rc := msg.RemoteConfig
	if rc == nil {
		return
	}
	var body []byte
	if f := rc.GetConfig().GetConfigMap()[contract.RemoteRulesKey]; f != nil {
		body = f.Body
	}
	st := &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.ConfigHash,
		Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	var refused error
	if a.opts.Refuse != nil {
		refused = a.opts.Refuse(body)
	}
	a.mu.Lock()
	if refused != nil {
		st.Status, st.ErrorMessage = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, refused.Error()
		a.failed = refused.Error()
	} else {
		a.applied, a.hash, a.failed = body, rc.ConfigHash, ""
	}
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	if refused == nil && a.opts.OnApplied != nil {
		a.opts.OnApplied(body, time.Now())
	}
	_ = a.client.SetRemoteConfigStatus(st)
	if refused == nil {
		_ = a.client.UpdateEffectiveConfig(ctx)
	}
}

// Applied is the set the agent runs and why it refused the last one offered
// ("" when it did not).
func (a *Agent) Applied() (body []byte, failed string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied, a.failed
}

// Changed is closed at the agent's next apply or refusal.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// Stop disconnects; stopping again does nothing (the client's own Stop
// would wait forever).
func (a *Agent) Stop(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() { err = a.client.Stop(ctx) })
	return err
}
