package tripwireexporter

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is the tripwire exporter's configuration.
type Config struct {
	// DSN is the PostgreSQL connection string, URL or key=value form, with
	// any pgx pool setting (pool_max_conns=...). Kept opaque: it usually
	// holds a password.
	DSN configopaque.String `mapstructure:"dsn"`

	// Retention drops daily alert partitions whose whole day ended more
	// than this long ago. Zero keeps everything.
	Retention time.Duration `mapstructure:"retention"`

	// PartitionsAhead is how many daily partitions beyond today's are kept
	// created.
	PartitionsAhead int `mapstructure:"partitions_ahead"`

	// ChainGapGrace is how long an audit entry that follows a gap in its
	// host's chain waits for the missing entries (delivered out of order, or
	// reported shed by a later loss event) before the gap is raised as a
	// CRITICAL chain break. Zero raises a gap as soon as it is seen.
	ChainGapGrace time.Duration `mapstructure:"chain_gap_grace"`

	// HostOfflineAfter marks a host OFFLINE when nothing arrived from it
	// for this long. Zero never marks hosts offline.
	HostOfflineAfter time.Duration `mapstructure:"host_offline_after"`

	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig   configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`
}

var _ component.Config = (*Config)(nil)

// maxPartitionsAhead bounds partitions_ahead: each partition is a table
// with its indexes, and the exporter makes the next one every hour anyway.
const maxPartitionsAhead = 60

// Validate checks the exporter's own settings; the collector validates the
// embedded helper settings itself.
func (c *Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn must be set"))
	} else if _, err := pgxpool.ParseConfig(string(c.DSN)); err != nil {
		// pgx redacts the password in parse errors.
		errs = append(errs, fmt.Errorf("dsn: %w", err))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention must not be negative, got %s", c.Retention))
	}
	if c.PartitionsAhead < 0 || c.PartitionsAhead > maxPartitionsAhead {
		errs = append(errs, fmt.Errorf("partitions_ahead must be between 0 and %d days, got %d", maxPartitionsAhead, c.PartitionsAhead))
	}
	if c.ChainGapGrace < 0 {
		errs = append(errs, fmt.Errorf("chain_gap_grace must not be negative, got %s", c.ChainGapGrace))
	}
	if c.HostOfflineAfter < 0 {
		errs = append(errs, fmt.Errorf("host_offline_after must not be negative, got %s", c.HostOfflineAfter))
	}
	if c.TimeoutConfig.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %s", c.TimeoutConfig.Timeout))
	}
	return errors.Join(errs...)
}
