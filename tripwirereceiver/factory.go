//go:generate mdatagen metadata.yaml

// Package tripwirereceiver is the tripwire receiver, an OpenTelemetry
// Collector component: a standard OTLP/gRPC logs server that only talks
// mutual TLS 1.3, binds every request to the client certificate's host name,
// and refuses records that fail TripWire's event schema.
//
// Use NewFactory in a collector build (collector/builder-config.yaml); the
// configuration is [Config]. To read it, start with Export in receiver.go;
// binding.go binds and checks each record, limits.go bounds a request before
// it is decoded.
package tripwirereceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/tripwire-sec/tripwire/tripwirereceiver/internal/metadata"
)

// NewFactory returns the factory of the tripwire receiver (type "tripwire").
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return newTripwireReceiver(cfg.(*Config), set, next)
}
