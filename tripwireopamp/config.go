package tripwireopamp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/tripwire-sec/tripwire/internal/peertls"
)

// Config is the OpAMP server's configuration.
type Config struct {
	// Endpoint is the host:port the OpAMP WebSocket server listens on; the
	// agents connect to wss://ENDPOINT/v1/opamp.
	Endpoint string `mapstructure:"endpoint"`
	// TLS is the same mutual TLS as the tripwire receiver's (the same files):
	// an agent is the host named by its certificate's CN, nothing else.
	TLS peertls.Config `mapstructure:"tls"`
	// DSN is the PostgreSQL connection string the rule sets are read from
	// and the agents' reports written to. Kept opaque: it usually holds a
	// password.
	DSN configopaque.String `mapstructure:"dsn"`
	// RenewalPKIDir, when set, is the `tripwire pki` directory (with the CA's
	// key) whose CA signs agents' certificate renewals: an agent sends a
	// CSR for a new key of its own and gets a certificate for the host of
	// the certificate it connected with, nothing else. Unset, renewal
	// requests are refused.
	RenewalPKIDir string `mapstructure:"renewal_pki_dir"`
	// ResyncInterval recomputes every connected agent's rule set even
	// without a change notification (one lost while PostgreSQL was away).
	ResyncInterval time.Duration `mapstructure:"resync_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

const (
	defaultEndpoint       = "localhost:4320"
	defaultResyncInterval = time.Minute
)

func createDefaultConfig() component.Config {
	return &Config{Endpoint: defaultEndpoint, ResyncInterval: defaultResyncInterval}
}

// Validate reports every problem, not just the first.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("endpoint %q: %w", c.Endpoint, err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn must be set: rule sets are read from PostgreSQL"))
	} else if _, err := pgxpool.ParseConfig(string(c.DSN)); err != nil {
		errs = append(errs, fmt.Errorf("dsn: %w", err))
	}
	if c.ResyncInterval < time.Second {
		errs = append(errs, fmt.Errorf("resync_interval must be at least 1s, got %s", c.ResyncInterval))
	}
	return errors.Join(errs...)
}
