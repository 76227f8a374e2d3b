package shipper

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tripwire-sec/tripwire/agent/spool"
	"github.com/tripwire-sec/tripwire/internal/event"
)

const scopeName = "github.com/tripwire-sec/tripwire/agent/shipper"

// logs builds the OTLP request body for events: one resource (this host),
// one scope, one LogRecord per event, in order.
func (s *Shipper) logs(events []*event.Event) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.SetSchemaUrl(semconv.SchemaURL)
	attrs := rl.Resource().Attributes()
	r := s.cfg.Resource
	for _, kv := range [][2]string{
		{event.ResourceHostName, r.HostName}, {event.ResourceHostID, r.HostID}, {event.ResourceOSType, r.OSType},
		{event.ResourceHostArch, r.HostArch}, {event.ResourceServiceName, event.ServiceName},
		{event.ResourceServiceVersion, r.ServiceVersion},
	} {
		if kv[1] != "" {
			attrs.PutStr(kv[0], kv[1])
		}
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.SetSchemaUrl(semconv.SchemaURL)
	sl.Scope().SetName(scopeName)
	sl.Scope().SetVersion(r.ServiceVersion)
	records := sl.LogRecords()
	records.EnsureCapacity(len(events))
	for _, e := range events {
		e.CopyTo(records.AppendEmpty())
	}
	return ld
}

// batch is a prefix of the spool, ready to export.
type batch struct {
	ids     []int64 // every spool row in the batch, deleted together on ack
	logs    plog.Logs
	count   int // records in logs
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
	b.logs, b.count = s.logs(events), len(events)
	return b
}

// send exports one batch and accounts for it.
func (s *Shipper) send(ctx context.Context, b batch) outcome {
	start := time.Now()
	out, rejected := s.export(ctx, s.currentLink(), b.logs)
	if out.err != nil {
		return out
	}
	s.metrics.exportSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(b.count))
	s.metrics.sent.Add(float64(int64(b.count) - rejected))
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
