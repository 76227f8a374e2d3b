package auditchain

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// BenchmarkVerify reports verification throughput in entries/s.
func BenchmarkVerify(b *testing.B) {
	const n = 200_000
	data, err := os.ReadFile(writeLog(b, n))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Verify(bytes.NewReader(data), nil)
		if err != nil || rep.Break != nil || rep.Entries != n {
			b.Fatal(rep.Break, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppend reports append throughput with the default policy (one fsync
// per Append) for batch sizes the pipeline sees.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64, 512} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			w, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{Sync: SyncBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			events := make([]*event.Event, batch)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range events {
					events[j] = trip(i*batch + j)
				}
				b.StartTimer()
				if err := w.Append(events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
