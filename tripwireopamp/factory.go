//go:generate mdatagen metadata.yaml

// Package tripwireopamp is the collector's OpAMP server, an OpenTelemetry
// Collector extension: agents connect over mutual TLS with the same
// certificates as the tripwire receiver, and each is offered the central
// rule sets that apply to its host (from PostgreSQL, pushed again on every
// change), and its reports (the applied set's hash or why it refused it,
// its effective config and health) are recorded in agent_management.
//
// Use NewFactory in a collector build (collector/builder-config.yaml); the
// configuration is [Config]. To read it, start with Start in extension.go;
// offer.go composes a host's rule set.
package tripwireopamp

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/tripwire-sec/tripwire/tripwireopamp/internal/metadata"
)

// NewFactory returns the factory of the OpAMP server (type "tripwire_opamp").
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newServer(cfg.(*Config), set), nil
}
