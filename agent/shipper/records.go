package shipper

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/event"
)

const scopeName = "github.com/tripwire-sec/tripwire/agent/shipper"

// recordBuilder turns events into SDK records that carry the agent's
// Resource. The exporter only takes sdklog.Record, which only the SDK can
// make, so each event is emitted through a LoggerProvider whose processor
// hands the record back to the caller through the context.
type recordBuilder struct {
	logger otellog.Logger
}

type collectKey struct{}

type collected struct{ records []sdklog.Record }

// collector is the provider's only processor: it keeps a copy of each record
// for the emitting call and exports nothing itself.
type collector struct{}

func (collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (collector) Shutdown(context.Context) error                         { return nil }
func (collector) ForceFlush(context.Context) error                       { return nil }

func (collector) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if c, ok := ctx.Value(collectKey{}).(*collected); ok {
		c.records = append(c.records, r.Clone())
	}
	return nil
}

func newRecordBuilder(r Resource) *recordBuilder {
	var kvs []attribute.KeyValue
	add := func(k, v string) {
		if v != "" {
			kvs = append(kvs, attribute.String(k, v))
		}
	}
	add(event.ResourceHostName, r.HostName)
	add(event.ResourceHostID, r.HostID)
	add(event.ResourceOSType, r.OSType)
	add(event.ResourceHostArch, r.HostArch)
	add(event.ResourceServiceName, event.ServiceName)
	add(event.ResourceServiceVersion, r.ServiceVersion)
	p := sdklog.NewLoggerProvider(
		sdklog.WithResource(resource.NewSchemaless(kvs...)),
		sdklog.WithProcessor(collector{}),
		// No limits: a truncated value would no longer match the hash the
		// collector recomputes (OTEL_* environment variables could set some).
		sdklog.WithAttributeCountLimit(-1),
		sdklog.WithAttributeValueLengthLimit(-1),
		// Event attributes are unique by construction; skip the dedup pass.
		sdklog.WithAllowKeyDuplication(),
	)
	return &recordBuilder{logger: p.Logger(scopeName, otellog.WithInstrumentationVersion(r.ServiceVersion))}
}

func (b *recordBuilder) build(events []*event.Event) []sdklog.Record {
	c := &collected{records: make([]sdklog.Record, 0, len(events))}
	ctx := context.WithValue(context.Background(), collectKey{}, c)
	for _, e := range events {
		b.logger.Emit(ctx, e.Record())
	}
	return c.records
}

// batch is a prefix of the spool, ready to export.
type batch struct {
	ids     []int64 // every spool row in the batch, deleted together on ack
	records []sdklog.Record
	first   *event.Event
	invalid []invalidItem // rows that cannot be sent; deleted with the batch
}

type invalidItem struct {
	id  int64
	err error
}

// cut takes the oldest items that fit in one request.
func (s *Shipper) cut(items []spool.Item) batch {
	var b batch
	events := make([]*event.Event, 0, len(items))
	bytes := 0
	for _, it := range items {
		if len(b.ids) > 0 && bytes+approxSize(it.Event) > s.cfg.MaxBatchBytes {
			break
		}
		b.ids = append(b.ids, it.ID)
		if it.Event == nil {
			b.invalid = append(b.invalid, invalidItem{it.ID, errNilEvent})
			continue
		}
		if err := it.Event.Validate(); err != nil {
			b.invalid = append(b.invalid, invalidItem{it.ID, err})
			continue
		}
		bytes += approxSize(it.Event)
		events = append(events, it.Event)
	}
	if len(events) > 0 {
		b.first = events[0]
	} else {
		b.first = &event.Event{}
	}
	b.records = s.records.build(events)
	return b
}

// send exports one batch and accounts for it.
func (s *Shipper) send(ctx context.Context, b batch) outcome {
	start := time.Now()
	out, rejected := s.export(ctx, s.currentLink(), b.records)
	if out.err != nil {
		return out
	}
	s.metrics.exportSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(len(b.records)))
	s.metrics.sent.Add(float64(int64(len(b.records)) - rejected))
	if rejected > 0 {
		s.metrics.rejected.WithLabelValues(reasonPartial).Add(float64(rejected))
	}
	for _, inv := range b.invalid {
		s.metrics.rejected.WithLabelValues(reasonInvalid).Inc()
		s.log.Error("dropping a spooled event that is not valid", "spool.id", inv.id, "error", inv.err)
	}
	return out
}

// approxSize estimates an event's encoded size, to keep a request well
// under the collector's receive limit without encoding it twice.
func approxSize(e *event.Event) int {
	if e == nil {
		return 0
	}
	n := 600 + len(e.Rule) + len(e.Mechanism)
	for _, m := range e.Missing {
		n += len(m) + 1
	}
	if p := e.Process; p != nil {
		n += len(p.ExecutablePath) + len(p.CommandLine) + len(p.UserName) + len(p.UserID) + len(p.Ancestry)
	}
	if f := e.File; f != nil {
		n += len(f.Path) + len(f.RenameTo)
	}
	if w := e.Network; w != nil {
		n += len(w.SourceAddress) + len(w.DestinationAddress) + len(w.FirstBytes)
	}
	if a := e.Agent; a != nil {
		n += len(a.Watchers) + len(a.Unserved) + len(a.LossReason)
	}
	return n
}
