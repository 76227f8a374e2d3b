package tripwireexporter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	id := component.NewID(metadata.Type)
	if name != "" {
		id = component.NewIDWithName(metadata.Type, name)
	}
	sub, err := cm.Sub(id.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshalling %s: %v", id, err)
	}
	return cfg
}

func TestLoadConfig(t *testing.T) {
	def := loadConfig(t, "")
	if err := confmap.Validate(def); err != nil {
		t.Fatalf("minimal config invalid: %v", err)
	}
	want := NewFactory().CreateDefaultConfig().(*Config)
	if def.Retention != want.Retention || def.PartitionsAhead != 2 || def.ChainGapGrace != time.Minute ||
		def.HostOfflineAfter != 5*time.Minute || def.TimeoutConfig.Timeout != 30*time.Second ||
		def.QueueConfig.HasValue() || def.RetryConfig.Enabled {
		t.Errorf("defaults not kept: %+v", def)
	}

	c := loadConfig(t, "custom")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("custom config invalid: %v", err)
	}
	if !strings.Contains(string(c.DSN), "pool_max_conns=20") || c.Retention != 90*24*time.Hour || c.PartitionsAhead != 3 ||
		c.ChainGapGrace != 30*time.Second || c.HostOfflineAfter != 2*time.Minute || c.TimeoutConfig.Timeout != 10*time.Second {
		t.Errorf("custom config = %+v", c)
	}
	q := c.QueueConfig.Get()
	if q == nil || q.NumConsumers != 4 || q.QueueSize != 5000 || q.StorageID == nil || q.StorageID.String() != "file_storage" {
		t.Errorf("sending_queue = %+v", q)
	}
	if c.RetryConfig.InitialInterval != time.Second || c.RetryConfig.MaxInterval != 30*time.Second {
		t.Errorf("retry_on_failure = %+v", c.RetryConfig)
	}
}

func TestValidateJoinsEveryProblem(t *testing.T) {
	err := loadConfig(t, "invalid").Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"dsn must be set", "retention must not be negative", "partitions_ahead must be between 0 and 60 days",
		"chain_gap_grace must not be negative", "host_offline_after must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	bad := NewFactory().CreateDefaultConfig().(*Config)
	bad.DSN = "postgres://tripwire:hunter2@db:notaport/x"
	err = bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "dsn") {
		t.Fatalf("unparsable dsn accepted: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation error shows the password: %v", err)
	}
}

func TestDSNIsOpaque(t *testing.T) {
	c := loadConfig(t, "custom")
	if s := c.DSN.String(); strings.Contains(s, "s3cret") {
		t.Errorf("DSN prints as %q", s)
	}
}
