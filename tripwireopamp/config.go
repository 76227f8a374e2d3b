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
	"github.com/tripwire-sec/tripwire/internal/pki"
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
	// CAKeyFile, when set, is the key of the client CA (tls.client_ca_file),
	// mode 0600: the server then signs agents' CSRs, a renewal for the host
	// of the certificate the agent connected with, or a first enrollment
	// for the host a one-time bootstrap token (`tripwire pki token HOST`)
	// was issued for. Unset, both are refused.
	CAKeyFile string `mapstructure:"ca_key_file"`
	// CertificateValidity is how long a certificate it signs is valid.
	CertificateValidity time.Duration `mapstructure:"certificate_validity"`
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
	return &Config{Endpoint: defaultEndpoint, ResyncInterval: defaultResyncInterval, CertificateValidity: pki.DefaultValidity}
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
	if c.CertificateValidity < time.Hour || c.CertificateValidity > pki.MaxValidity {
		errs = append(errs, fmt.Errorf("certificate_validity %s: between 1h and %s", c.CertificateValidity, pki.MaxValidity))
	}
	if c.ResyncInterval < time.Second {
		errs = append(errs, fmt.Errorf("resync_interval must be at least 1s, got %s", c.ResyncInterval))
	}
	return errors.Join(errs...)
}
