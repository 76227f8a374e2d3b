//go:generate mdatagen metadata.yaml

// Package tripwireexporter is the tripwire exporter, an OpenTelemetry
// Collector component that stores TripWire events in PostgreSQL, checks each
// host's audit chain, and NOTIFYs the live feed. Use NewFactory in a
// collector build (OCB); README.md beside this file gives the configuration
// keys, the chain rules and the NOTIFY payload.
//
// To read it, start with pushLogs in exporter.go (decode, then store per
// host); store.go writes the rows, chaincheck.go and chain.go check the
// audit chain, notify.go builds the live feed's payload.
package tripwireexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

// NewFactory returns the factory of the tripwire exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	// No queue and no retries: the exporter returns only once PostgreSQL
	// committed, so the receiver acknowledges an agent only for events that
	// are stored, and a failure goes back to the agent, which keeps the
	// events in its spool and retries (with this collector or another).
	// A queue in front of the database would be a second spool costing
	// the collector more than the storing itself.
	retry := configretry.NewDefaultBackOffConfig()
	retry.Enabled = false
	return &Config{
		Retention:        90 * 24 * time.Hour,
		PartitionsAhead:  2,
		ChainGapGrace:    time.Minute,
		HostOfflineAfter: 5 * time.Minute,
		TimeoutConfig:    exporterhelper.TimeoutConfig{Timeout: 30 * time.Second},
		QueueConfig:      configoptional.None[exporterhelper.QueueBatchConfig](),
		RetryConfig:      retry,
	}
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e, err := newTripwireExporter(c, set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewLogs(ctx, set, cfg, e.pushLogs,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
	)
}
