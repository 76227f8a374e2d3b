package tripwireexporter

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

// PostgreSQL goes away mid-stream: the collector's queue holds the batches,
// the retry sender replays them once PostgreSQL is back, and every event is
// stored exactly once with the chain intact.
func TestOutageLosesNothing(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := c.NewDB(t)
	cfg := testConfig(dsn)
	cfg.ChainGapGrace = time.Hour // two queue consumers may reorder batches
	q := exporterhelper.NewDefaultQueueConfig()
	q.NumConsumers = 2
	cfg.QueueConfig = configoptional.Some(q)
	cfg.RetryConfig.Enabled = true
	cfg.RetryConfig.InitialInterval = 100 * time.Millisecond
	cfg.RetryConfig.MaxInterval = time.Second
	cfg.TimeoutConfig.Timeout = 5 * time.Second

	ctx := context.Background()
	exp, err := NewFactory().CreateLogs(ctx, exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			exp.Shutdown(ctx)
		}
	}()
	pool := openPool(t, dsn)
	a := newAgent(t, "outage-2")
	send := func(n int) {
		for i := 0; i < n; i++ {
			if err := exp.ConsumeLogs(ctx, a.logs(a.trips(20)...)); err != nil {
				t.Fatalf("ConsumeLogs: %v", err)
			}
		}
	}
	count := func() int64 { return queryInt(t, pool, "SELECT count(*) FROM alerts") }

	send(5)
	waitFor(t, "the first 100 alerts", time.Minute, func() bool { return count() == 100 })
	pool.Reset()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	send(5)
	// Give the exporter time to fail against the stopped server; the test
	// asserts on what is stored in the end, not on when.
	time.Sleep(2 * time.Second)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	send(5)
	waitFor(t, "all 300 alerts after the outage", 2*time.Minute, func() bool { return count() >= 300 })
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if n := count(); n != 300 {
		t.Errorf("%d alerts, want 300", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM audit_entries"); n != 300 {
		t.Errorf("%d audit entries, want 300", n)
	}
	if n := queryInt(t, pool, "SELECT count(*) FROM chain_breaks"); n != 0 {
		t.Errorf("%d chain breaks, want 0", n)
	}
	last, hash := a.chain.Head()
	if s, h := head(t, pool, "outage-2"); s != int64(last) || h != hash {
		t.Errorf("head %d, want %d", s, last)
	}
}
