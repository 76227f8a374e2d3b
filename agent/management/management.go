// Package management is the agent's OpAMP client: it takes the central rule
// set the collector offers, has the agent check and apply it, keeps the last
// applied set on disk, and reports the result, the effective config and the
// agent's health.
//
// Start with [New] and [Client.Start]; [LoadRules] reads the kept set at
// start so that an agent restarted without the server keeps watching it.
package management

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// RulesKey is the name of the central rule set in the remote config map.
const RulesKey = contract.RemoteRulesKey

// Hash is the hash the server and the agent compare a rule set by: SHA-256
// of its body.
func Hash(body []byte) []byte {
	h := sha256.Sum256(body)
	return h[:]
}

// Options configure a Client.
type Options struct {
	Endpoint   string // wss://host:port/v1/opamp
	CA         string // PEM file of the CA that signed the server
	Cert, Key  string // the agent's client certificate, the transport's identity
	ServerName string
	// RulesFile keeps the last applied central rule set (0600).
	RulesFile string

	HostName, HostID, Version string

	// Apply checks body, a central rule set, against the local rules and
	// applies it like a SIGHUP reload. An error refuses it: the running
	// rules stay, and the error is reported to the server.
	Apply func(ctx context.Context, body []byte) error
	// Effective is the effective config reported to the server.
	Effective func() *protobufs.EffectiveConfig

	// RenewBefore asks the server for a new certificate (a CSR for a key
	// made here) when the current one has less than this left; 0 never.
	RenewBefore time.Duration
	// OnRenewed is called once a renewed key and certificate replaced the
	// files Cert and Key.
	OnRenewed func()

	Logger *slog.Logger
}

// Client is one agent's OpAMP connection.
type Client struct {
	opts   Options
	log    *slog.Logger
	opamp  client.OpAMPClient
	mu     sync.Mutex
	status *protobufs.RemoteConfigStatus
	// applying serialises offers: one is checked and applied at a time.
	applying sync.Mutex

	connected     chan struct{} // closed at the first connection
	connectedOnce sync.Once

	renewMu     sync.Mutex
	pendingKey  *ecdsa.PrivateKey // made for the renewal requested at requestedAt
	requestedAt time.Time
	stop        chan struct{}
}

// LoadRules reads the kept central rule set; none kept is (nil, nil).
func LoadRules(path string) ([]byte, error) {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	f, err := safefile.OpenPrivate(path, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("central rule set %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	body := make([]byte, fi.Size())
	if _, err := f.ReadAt(body, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("central rule set %s: %w", path, err)
	}
	return body, nil
}

// saveRules replaces the kept set: a new file, synced, renamed over the old,
// so a crash leaves the old set or the new one, never half of one.
func saveRules(path string, body []byte) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := safefile.OpenPrivate(tmp, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// New prepares a client; applied is the set the agent runs (from
// [LoadRules]), reported to the server as applied so that it is not offered
// again.
func New(opts Options, applied []byte) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, log: opts.Logger, opamp: client.NewWebSocket(nil), connected: make(chan struct{})}
	if applied != nil {
		c.status = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: Hash(applied),
			Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	}
	return c, nil
}

// TLS is the client side of the management connection: TLS 1.3, the
// server checked against the CA, the agent's certificate read at each
// handshake so a renewed one is used without a restart.
func TLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading management CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("management CA %s: no certificate found", caFile)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return nil, fmt.Errorf("loading management client certificate: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("loading management client certificate: %w", err)
			}
			return &c, nil
		},
	}, nil
}

// Start connects in the background; the client reconnects until Stop.
func (c *Client) Start(ctx context.Context) error {
	tc, err := TLS(c.opts.CA, c.opts.Cert, c.opts.Key, c.opts.ServerName)
	if err != nil {
		return err
	}
	if err := c.opamp.SetAgentDescription(Description(c.opts.HostName, c.opts.HostID, c.opts.Version)); err != nil {
		return err
	}
	c.mu.Lock()
	status := c.status
	c.mu.Unlock()
	settings := types.StartSettings{
		OpAMPServerURL: c.opts.Endpoint,
		TLSConfig:      tc,
		InstanceUid:    InstanceUID(c.opts.HostName, c.opts.HostID),
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
			protobufs.AgentCapabilities_AgentCapabilities_AcceptsOpAMPConnectionSettings |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus,
		RemoteConfigStatus: status,
		Callbacks: types.Callbacks{
			OnConnect: func(context.Context) {
				c.log.Info("management connected", "url.full", c.opts.Endpoint)
				c.connectedOnce.Do(func() { close(c.connected) })
				go c.maybeRenew()
			},
			OnOpampConnectionSettings: c.onConnectionSettings,
			OnConnectFailed: func(_ context.Context, err error) {
				c.log.Warn("management connection failed; keeping the running rules", "url.full", c.opts.Endpoint, "error", err)
			},
			OnMessage: c.onMessage,
			GetEffectiveConfig: func(context.Context) (*protobufs.EffectiveConfig, error) {
				return c.opts.Effective(), nil
			},
		},
	}
	if err := c.opamp.Start(ctx, settings); err != nil {
		return err
	}
	c.stop = make(chan struct{})
	go func() {
		t := time.NewTicker(renewCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.maybeRenew()
			}
		}
	}()
	return nil
}

// Connected is closed once the client first connected.
func (c *Client) Connected() <-chan struct{} { return c.connected }

// Stop closes the connection.
func (c *Client) Stop(ctx context.Context) error {
	if c.stop != nil {
		close(c.stop)
	}
	return c.opamp.Stop(ctx)
}

// SetHealth reports the agent's health: status is ONLINE or DEGRADED, why
// the reasons when degraded.
func (c *Client) SetHealth(healthy bool, status, why string) {
	if err := c.opamp.SetHealth(&protobufs.ComponentHealth{Healthy: healthy, Status: status, LastError: why}); err != nil {
		c.log.Debug("management health not sent", "error", err)
	}
}

// Refused reports that the agent does not run the set it was last offered,
// e.g. a local reload now clashes with it.
func (c *Client) Refused(err error) {
	c.mu.Lock()
	hash := []byte(nil)
	if c.status != nil {
		hash = c.status.LastRemoteConfigHash
	}
	c.mu.Unlock()
	c.setStatus(hash, err)
}

// EffectiveChanged sends the effective config again (after a local reload).
func (c *Client) EffectiveChanged(ctx context.Context) {
	if err := c.opamp.UpdateEffectiveConfig(ctx); err != nil {
		c.log.Debug("management effective config not sent", "error", err)
	}
}

func (c *Client) onMessage(ctx context.Context, msg *types.MessageData) {
	rc := msg.RemoteConfig
	if rc == nil {
		return
	}
	c.applying.Lock()
	defer c.applying.Unlock()
	c.mu.Lock()
	same := c.status != nil && c.status.Status == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED &&
		string(c.status.LastRemoteConfigHash) == string(rc.ConfigHash)
	c.mu.Unlock()
	if same {
		return
	}
	var body []byte
	if rc.Config != nil {
		if f := rc.Config.ConfigMap[RulesKey]; f != nil {
			body = f.Body
		}
	}
	if string(Hash(body)) != string(rc.ConfigHash) {
		c.setStatus(rc.ConfigHash, errors.New("the offered rule set does not match its hash"))
		return
	}
	c.setApplying(rc.ConfigHash)
	if err := c.opts.Apply(ctx, body); err != nil {
		c.log.Error("central rule set refused; keeping the running rules", "error", err)
		c.setStatus(rc.ConfigHash, err)
		return
	}
	if err := saveRules(c.opts.RulesFile, body); err != nil {
		// Applied but not kept: a restart without the server would run
		// the previous set. Said, not hidden.
		c.log.Error("central rule set applied but not kept on disk", "file.path", c.opts.RulesFile, "error", err)
	}
	c.setStatus(rc.ConfigHash, nil)
	if err := c.opamp.UpdateEffectiveConfig(ctx); err != nil {
		c.log.Debug("management effective config not sent", "error", err)
	}
	c.log.Info("central rule set applied", "tripwire.rules.hash", fmt.Sprintf("%x", rc.ConfigHash))
}

func (c *Client) setApplying(hash []byte) {
	st := &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash,
		Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING}
	if err := c.opamp.SetRemoteConfigStatus(st); err != nil {
		c.log.Debug("management status not sent", "error", err)
	}
}

func (c *Client) setStatus(hash []byte, err error) {
	st := &protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash,
		Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	if err != nil {
		st.Status = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED
		st.ErrorMessage = err.Error()
	}
	c.mu.Lock()
	c.status = st
	c.mu.Unlock()
	if err := c.opamp.SetRemoteConfigStatus(st); err != nil {
		c.log.Debug("management status not sent", "error", err)
	}
}

// Description is what the agent says about itself; the server believes
// only the certificate's CN for who it is.
func Description(host, id, version string) *protobufs.AgentDescription {
	kv := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	return &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{kv(contract.ResourceServiceName, contract.ServiceName),
			kv(contract.ResourceHostName, host), kv(contract.ResourceServiceVersion, version)},
		NonIdentifyingAttributes: []*protobufs.KeyValue{kv(contract.ResourceHostID, id)},
	}
}

// InstanceUID is stable per host: the same agent reconnecting is the same
// instance.
func InstanceUID(host, id string) types.InstanceUid {
	return types.InstanceUid(uuid.NewSHA1(uuid.NameSpaceOID, []byte("tripwire-agent/"+host+"/"+id)))
}
