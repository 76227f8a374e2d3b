package tripwirereceiver

import (
	"errors"
	"fmt"
	"net"

	"go.opentelemetry.io/collector/component"

	"github.com/tripwire-sec/tripwire/internal/peertls"
)

// Config is the tripwire receiver's configuration. TLS is not optional: the
// client certificate is the only identity an agent has.
type Config struct {
	// Endpoint is the host:port the OTLP/gRPC server listens on.
	Endpoint string `mapstructure:"endpoint"`
	// TLS holds the server certificate, the CA that signs agent
	// certificates and the CRL.
	TLS TLSConfig `mapstructure:"tls"`
	// MaxRecvMsgSize is the largest OTLP request accepted, in bytes.
	MaxRecvMsgSize int `mapstructure:"max_recv_msg_size"`
	// MaxConcurrentStreams bounds the requests one connection has in
	// flight; an agent sends one at a time.
	MaxConcurrentStreams uint32 `mapstructure:"max_concurrent_streams"`
	// MaxRecordsPerRequest bounds the log records of one request; the
	// agent sends at most 512.
	MaxRecordsPerRequest int `mapstructure:"max_records_per_request"`
	// MaxAttributesPerRecord bounds one record's (or resource's or
	// scope's) attributes; the event schema has fewer than 64 keys.
	MaxAttributesPerRecord int `mapstructure:"max_attributes_per_record"`
	// MaxAttributesPerRequest bounds the attributes (and nested values) of
	// a whole request, which is what decoding it costs in memory.
	MaxAttributesPerRequest int `mapstructure:"max_attributes_per_request"`
	// MaxEventBytes bounds an event's canonical form, what the exporter
	// hashes and stores.
	MaxEventBytes int `mapstructure:"max_event_bytes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// TLSConfig names the files the receiver's mutual TLS is built from (shared
// with the OpAMP extension, so both trust the same identity).
type TLSConfig = peertls.Config

const (
	defaultEndpoint       = "localhost:4317"
	defaultMaxRecvMsgSize = 4 << 20
	// An agent sends one request at a time; a few more cover a reconnect
	// overlapping a request in flight.
	defaultMaxConcurrentStreams = 4
	// Eight times the agent's largest batch (512 events).
	defaultMaxRecordsPerRequest = 4096
	// The event schema has fewer than 64 keys.
	defaultMaxAttributesPerRecord = 64
	// About 40 attributes for each of 1,600 records; decoded, about 50 bytes
	// of heap each.
	defaultMaxAttributesPerRequest = 65536
	// A valid event's canonical form stays under about 820 KiB even with
	// every long field of its type full of bytes JSON escapes six-fold.
	defaultMaxEventBytes = 1 << 20
	// maxMaxRecvMsgSize bounds what one agent can make the collector
	// allocate for a single request.
	maxMaxRecvMsgSize = 64 << 20
)

var _ component.Config = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		Endpoint:                defaultEndpoint,
		MaxRecvMsgSize:          defaultMaxRecvMsgSize,
		MaxConcurrentStreams:    defaultMaxConcurrentStreams,
		MaxRecordsPerRequest:    defaultMaxRecordsPerRequest,
		MaxAttributesPerRecord:  defaultMaxAttributesPerRecord,
		MaxAttributesPerRequest: defaultMaxAttributesPerRequest,
		MaxEventBytes:           defaultMaxEventBytes,
	}
}

// Validate checks the configuration; every problem is reported, not just the
// first.
func (c *Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint is required"))
	} else if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("endpoint %q: %w", c.Endpoint, err))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxRecvMsgSize <= 0 || c.MaxRecvMsgSize > maxMaxRecvMsgSize {
		errs = append(errs, fmt.Errorf("max_recv_msg_size %d: must be between 1 and %d bytes", c.MaxRecvMsgSize, maxMaxRecvMsgSize))
	}
	if c.MaxConcurrentStreams == 0 {
		errs = append(errs, errors.New("max_concurrent_streams must be at least 1"))
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"max_records_per_request", c.MaxRecordsPerRequest},
		{"max_attributes_per_record", c.MaxAttributesPerRecord},
		{"max_attributes_per_request", c.MaxAttributesPerRequest},
		{"max_event_bytes", c.MaxEventBytes},
	} {
		if l.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", l.name, l.v))
		}
	}
	return errors.Join(errs...)
}
