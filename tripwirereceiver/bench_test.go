package tripwirereceiver

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// BenchmarkExport measures the receiver alone: requests of 500 valid events
// over real mutual TLS on loopback into a sink, reported in events/s.
func BenchmarkExport(b *testing.B) {
	f := start(b, newPKI(b))
	c := f.client(b, nil, f.agent(b, "bench-01"))
	evs := make([]*event.Event, 500)
	for i := range evs {
		evs[i] = trip("/srv/data/file")
	}
	ld := logs(map[string][]*event.Event{"bench-01": evs})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := plog.NewLogs()
		ld.CopyTo(req)
		if _, err := export(b, c, req); err != nil {
			b.Fatal(err)
		}
		f.sink.Reset()
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
