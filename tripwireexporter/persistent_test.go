package tripwireexporter

import (
	"context"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"go.uber.org/zap/zaptest"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

// storageHost is a collector host with one file_storage extension.
type storageHost struct {
	exts map[component.ID]component.Component
}

func (h *storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func startFileStorage(t *testing.T, id component.ID, dir string) (*storageHost, func()) {
	t.Helper()
	ctx := context.Background()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	host := &storageHost{exts: map[component.ID]component.Component{id: ext}}
	if err := ext.Start(ctx, host); err != nil {
		t.Fatal(err)
	}
	return host, func() {
		if err := ext.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}
}

// The collector is restarted while PostgreSQL is down: the batches it
// accepted wait in the file_storage queue on disk, and the next collector
// process stores them once PostgreSQL is back.
func TestPersistentQueueSurvivesRestartDuringOutage(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := c.NewDB(t)
	if _, err := openPool(t, dsn).Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	storageID := component.MustNewID("file_storage")
	dir := t.TempDir()

	cfg := testConfig(dsn)
	cfg.ChainGapGrace = time.Hour
	q := exporterhelper.NewDefaultQueueConfig()
	q.StorageID = &storageID
	cfg.QueueConfig = configoptional.Some(q)
	cfg.RetryConfig.Enabled = true
	cfg.RetryConfig.InitialInterval = 100 * time.Millisecond
	cfg.RetryConfig.MaxInterval = time.Second
	cfg.TimeoutConfig.Timeout = 5 * time.Second
	ctx := context.Background()
	a := newAgent(t, "persist-1")
	set := exportertest.NewNopSettings(metadata.Type)
	set.Logger = zaptest.NewLogger(t)

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	host, stopStorage := startFileStorage(t, storageID, dir)
	first, err := NewFactory().CreateLogs(ctx, set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx, host); err != nil {
		t.Fatalf("Start with PostgreSQL down: %v", err)
	}
	for i := 0; i < 10; i++ {
		if err := first.ConsumeLogs(ctx, a.logs(a.trips(10)...)); err != nil {
			t.Fatalf("ConsumeLogs: %v", err)
		}
	}
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopStorage()

	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	host, stopStorage = startFileStorage(t, storageID, dir)
	defer stopStorage()
	second, err := NewFactory().CreateLogs(ctx, set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx, host); err != nil {
		t.Fatal(err)
	}
	defer second.Shutdown(ctx)
	pool := openPool(t, dsn)
	waitFor(t, "the queued alerts", time.Minute, func() bool {
		return queryInt(t, pool, "SELECT count(*) FROM alerts") >= 100
	})
	if n := queryInt(t, pool, "SELECT count(*) FROM alerts"); n != 100 {
		t.Errorf("%d alerts, want 100", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_breaks"); n != 0 {
		t.Errorf("%d chain breaks, want 0", n)
	}
	if s, _ := head(t, pool, "persist-1"); s != 100 {
		t.Errorf("head %d, want 100", s)
	}
}
