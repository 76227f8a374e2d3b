package tripwirereceiver

import (
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// fuzzLimits are the receiver's defaults.
var fuzzLimits = requestLimits{
	records:         defaultMaxRecordsPerRequest,
	attrsPerElement: defaultMaxAttributesPerRecord,
	attrsPerRequest: defaultMaxAttributesPerRequest,
	maxValueDepth:   maxValueDepth,
}

// heapBound is what one request may allocate from its wire bytes to the end
// of the binding: the decoded values (a few times the wire size, as strings
// and byte slices are copied) plus a fixed cost per attribute and record,
// which the limits bound.
func heapBound(wire int) uint64 {
	const perElement = 160
	elements := uint64(fuzzLimits.attrsPerRequest + fuzzLimits.records)
	return 2*uint64(wire) + perElement*elements + 256<<10
}

// FuzzRecordDecoding drives the receiver's path from wire bytes to bound
// records (limits check, decoding, binding and validation) with requests of
// varied record counts, attribute counts and value sizes, and with raw
// bytes. It must never panic, and a request must never allocate more than
// heapBound of its size.
func FuzzRecordDecoding(f *testing.F) {
	f.Add(uint16(1), uint16(10), uint16(8), "file.path", []byte(nil))
	f.Add(uint16(500), uint16(20), uint16(64), "process.command_line", []byte(nil))
	f.Add(uint16(4), uint16(60000), uint16(0), "", []byte(nil))
	f.Add(uint16(1), uint16(64), uint16(65535), "tripwire.agent.watchers", []byte(nil))
	f.Add(uint16(0), uint16(0), uint16(0), "", []byte{0x0a, 0x02, 0x12, 0x00})
	var stats runtime.MemStats
	var maxAlloc, maxWire uint64
	f.Cleanup(func() {
		if maxWire > 0 {
			f.Logf("largest allocation per request: %d bytes (for %d wire bytes)", maxAlloc, maxWire)
		}
	})
	f.Fuzz(func(t *testing.T, records, attrs, valueSize uint16, key string, raw []byte) {
		wire := raw
		if len(raw) == 0 {
			if int(records)*(int(attrs)*(int(valueSize)+len(key)+8)) > 4<<20 {
				return // over max_recv_msg_size: gRPC refuses it before us
			}
			wire = buildRequest(t, int(records), int(attrs), int(valueSize), key)
		}
		if len(wire) > 4<<20 {
			return
		}
		runtime.ReadMemStats(&stats)
		before := stats.TotalAlloc
		if err := fuzzLimits.check(wire); err != nil {
			return
		}
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(wire); err != nil {
			return
		}
		bindAndValidate(req.Logs(), identity{host: "web-01", address: "127.0.0.1", notAfter: "2030-01-01T00:00:00Z"}, defaultMaxEventBytes)
		runtime.ReadMemStats(&stats)
		alloc := stats.TotalAlloc - before
		if alloc > maxAlloc {
			maxAlloc, maxWire = alloc, uint64(len(wire))
		}
		if b := heapBound(len(wire)); alloc > b {
			t.Fatalf("%d wire bytes allocated %d bytes, bound %d", len(wire), alloc, b)
		}
	})
}

// buildRequest encodes records file trips, each with attrs extra
// attributes named from key whose values are valueSize bytes.
func buildRequest(t *testing.T, records, attrs, valueSize int, key string) []byte {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(event.ResourceHostName, "web-01")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	value := strings.Repeat("v", valueSize)
	for range records {
		lr := lrs.AppendEmpty()
		trip("/etc/shadow").CopyTo(lr)
		m := lr.Attributes()
		raw := m.AsRaw()
		for i := range attrs {
			k := key
			if i > 0 {
				k = key + "." + itoa(i)
			}
			raw[k] = value
		}
		if err := m.FromRaw(raw); err != nil {
			t.Fatal(err)
		}
	}
	b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
