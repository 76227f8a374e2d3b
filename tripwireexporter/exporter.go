package tripwireexporter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/cenkalti/backoff/v5"

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/migrations"
	"github.com/tripwire-sec/tripwire/tripwireexporter/internal/metadata"
)

// maxEventBytes caps an event's canonical form, as the tripwire receiver's
// default max_event_bytes does: the exporter may sit behind another
// receiver, and one event of megabytes of escaped bytes costs a batch its
// time budget. A valid event of one type stays under about 820 KiB.
const maxEventBytes = 1 << 20

// How often partitions are created ahead and expired ones dropped.
const partitionInterval = time.Hour

type tripwireExporter struct {
	cfg    *Config
	logger *zap.Logger

	telemetry *metadata.TelemetryBuilder // declared in metadata.yaml

	// insertRetries counts batches COPY refused and INSERT then stored.
	insertRetries atomic.Int64

	pool    *pgxpool.Pool
	laneMu  []sync.Mutex // one per pool connection: see lanes
	setupMu sync.Mutex
	ready   atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newTripwireExporter(cfg *Config, set component.TelemetrySettings) (*tripwireExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, fmt.Errorf("creating tripwire exporter metrics: %w", err)
	}
	return &tripwireExporter{cfg: cfg, logger: set.Logger, telemetry: tb}, nil
}

// start opens the pool and prepares the schema. PostgreSQL being away is not
// a start failure: the collector keeps accepting (its queue holds the
// events) and the schema is prepared once the database answers.
func (e *tripwireExporter) start(ctx context.Context, _ component.Host) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, e.shutdown(ctx))
		}
	}()
	pcfg, err := pgxpool.ParseConfig(string(e.cfg.DSN))
	if err != nil {
		return fmt.Errorf("parsing dsn: %w", err)
	}
	if _, set := pcfg.ConnConfig.RuntimeParams["application_name"]; !set {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "tripwire-collector"
	}
	pcfg.AfterConnect = registerWordsCodec
	e.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return fmt.Errorf("creating PostgreSQL pool: %w", err)
	}
	e.laneMu = make([]sync.Mutex, max(pcfg.MaxConns, 1))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	if err := e.ensureReady(sctx); err != nil {
		e.logger.Warn("PostgreSQL not ready at start; events wait in the queue while it is retried", zap.Error(err))
	}
	cancel()
	bg, stop := context.WithCancel(context.Background())
	e.cancel, e.done = stop, make(chan struct{})
	go e.maintain(bg)
	return nil
}

// shutdown is safe when start never ran or failed halfway.
func (e *tripwireExporter) shutdown(context.Context) error {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
	if e.pool != nil {
		e.pool.Close()
		e.pool = nil
	}
	return nil
}

// ensureReady applies the migrations and creates partitions, once.
func (e *tripwireExporter) ensureReady(ctx context.Context) error {
	if e.ready.Load() {
		return nil
	}
	e.setupMu.Lock()
	defer e.setupMu.Unlock()
	if e.ready.Load() {
		return nil
	}
	if err := migrations.Apply(ctx, e.pool); err != nil {
		return err
	}
	if err := e.maintainPartitions(ctx); err != nil {
		return err
	}
	e.ready.Store(true)
	return nil
}

func (e *tripwireExporter) maintainPartitions(ctx context.Context) error {
	now := time.Now()
	created, err := migrations.EnsurePartitions(ctx, e.pool, now, e.cfg.PartitionsAhead)
	if err != nil {
		return err
	}
	if len(created) > 0 {
		e.logger.Info("created alert partitions", zap.Strings("partitions", created))
	}
	dropped, err := migrations.DropExpired(ctx, e.pool, now, e.cfg.Retention)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		e.logger.Info("dropped expired alert partitions", zap.Strings("partitions", dropped), zap.Duration("retention", e.cfg.Retention))
	}
	if e.cfg.Retention > 0 {
		cutoff := auditCutoff(now, e.cfg.Retention)
		purged, err := e.purgeAudit(ctx, cutoff)
		if err != nil {
			return err
		}
		if purged > 0 {
			e.logger.Info("purged expired audit entries, anchoring each chain at its last one",
				zap.Int64("entries", purged), zap.Time("before", cutoff))
		}
	}
	return nil
}

// maintain prepares the schema if start could not, then keeps partitions,
// overdue chain gaps and offline hosts up to date.
func (e *tripwireExporter) maintain(ctx context.Context) {
	defer close(e.done)
	bo := &backoff.ExponentialBackOff{InitialInterval: time.Second, RandomizationFactor: 0.2,
		Multiplier: 2, MaxInterval: time.Minute}
	bo.Reset()
	for wait := bo.NextBackOff(); !e.ready.Load(); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = bo.NextBackOff()
		if err := e.ensureReady(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("PostgreSQL still not ready", zap.Error(err), zap.Duration("retry_in", wait))
		}
	}
	partitions := time.NewTicker(partitionInterval)
	defer partitions.Stop()
	every := 30 * time.Second
	if g := e.cfg.ChainGapGrace / 2; g > 0 && g < every {
		every = max(g, time.Second)
	}
	sweep := time.NewTicker(every)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-partitions.C:
			if err := e.maintainPartitions(ctx); err != nil && ctx.Err() == nil {
				e.logger.Error("maintaining alert partitions", zap.Error(err))
			}
		case <-sweep.C:
			if err := e.sweep(ctx); err != nil && ctx.Err() == nil {
				e.logger.Warn("sweeping chains and hosts", zap.Error(err))
			}
		}
	}
}

// hostBatch is one host's part of a plog.Logs.
type hostBatch struct {
	name         string
	id           pgtype.UUID // hosts.host_id, once upserted
	extID        string
	osType       string
	arch         string
	version      string
	addr         string
	certNotAfter time.Time
	certSerial   string
	events       []record
	heartbeat    *event.Event
}

// record is a decoded, valid event with its canonical bytes and, if it is
// chained, the hash they give (computed while decoding, outside the
// transaction that holds its host's chain head locked).
type record struct {
	ev     *event.Event
	canon  []byte
	hashed string
}

func (e *tripwireExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	hosts, refusals := e.decode(ctx, ld)
	if len(hosts) == 0 && len(refusals) == 0 {
		return nil
	}
	if err := e.ensureReady(ctx); err != nil {
		return fmt.Errorf("preparing PostgreSQL schema: %w", err)
	}
	if len(refusals) > 0 {
		if err := e.storeRefusals(ctx, refusals); err != nil {
			return classify(err)
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	return e.storeLanes(ctx, e.lanes(hosts))
}

// storeLane stores hosts in one transaction; when PostgreSQL refuses it
// for its data, it narrows down to the bad host or record.
func (e *tripwireExporter) storeLane(ctx context.Context, hosts []*hostBatch) error {
	err := e.store(ctx, hosts)
	if isDataError(err) && len(hosts) > 1 {
		e.logger.Warn("PostgreSQL refused a batch; storing it host by host to find the bad ones", zap.Error(err))
		err = e.storeByHost(ctx, hosts)
	} else if isDataError(err) && len(hosts[0].events) > 1 {
		e.logger.Warn("PostgreSQL refused a batch; storing it record by record to drop only the bad ones", zap.Error(err))
		err = e.storeEach(ctx, hosts)
	}
	return classify(err)
}

// storeByHost stores each host's part of a refused batch in its own
// transaction, and only a part PostgreSQL refuses again goes record by
// record: one host's bad data costs the others one transaction each, not
// one per record.
func (e *tripwireExporter) storeByHost(ctx context.Context, hosts []*hostBatch) error {
	for _, h := range hosts {
		err := e.store(ctx, []*hostBatch{h})
		if isDataError(err) && len(h.events) > 1 {
			e.logger.Warn("PostgreSQL refused a host's records; storing them one by one",
				zap.String(event.ResourceHostName, h.name), zap.Error(err))
			err = e.storeEach(ctx, []*hostBatch{h})
		}
		if isDataError(err) {
			e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, int64(max(len(h.events), 1)), metric.WithAttributes(attribute.String("reason", "refused")))
			e.logger.Error("PostgreSQL refused a host's record; dropped", zap.String(event.ResourceHostName, h.name), zap.Error(err))
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// store stores a batch in one transaction, retrying it on a deadlock or
// serialization failure.
func (e *tripwireExporter) store(ctx context.Context, hosts []*hostBatch) error {
	var err error
	insertOnly := false
	for attempt := 0; attempt < 3; attempt++ {
		err = e.storeBatch(ctx, hosts, insertOnly)
		if isUniqueViolation(err) && !insertOnly {
			// COPY met a row it did not expect (an alert id reused across
			// hosts, say): the INSERT path skips what exists.
			insertOnly = true
			e.insertRetries.Add(1)
			e.logger.Debug("COPY met an existing row; storing the batch with INSERT", zap.Error(err))
			continue
		}
		if !isConflict(err) {
			break
		}
	}
	return err
}

// storeEach stores each record in its own transaction, chained ones in seq
// order, and drops (counting and logging) those PostgreSQL refuses. Records
// already stored by an earlier attempt are replays and change nothing.
func (e *tripwireExporter) storeEach(ctx context.Context, hosts []*hostBatch) error {
	for _, h := range hosts {
		sort.SliceStable(h.events, func(i, j int) bool { return h.events[i].ev.Seq < h.events[j].ev.Seq })
		for i, r := range h.events {
			one := *h
			one.events = []record{r}
			if i < len(h.events)-1 {
				one.heartbeat = nil
			}
			err := e.store(ctx, []*hostBatch{&one})
			if isDataError(err) {
				e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "refused")))
				e.logger.Error("PostgreSQL refused a record; dropped", zap.String(event.ResourceHostName, h.name),
					zap.String(event.KeyAlertID, r.ev.AlertID.String()), zap.Error(err))
				continue
			}
			if err != nil {
				return err
			}
		}
		if len(h.events) == 0 && h.heartbeat != nil {
			if err := e.store(ctx, []*hostBatch{h}); err != nil && !isDataError(err) {
				return err
			}
		}
	}
	return nil
}

// decode groups the records by bound host and drops (counting and logging)
// those that are not valid TripWire events. The receiver's refusal records
// are returned apart.
func (e *tripwireExporter) decode(ctx context.Context, ld plog.Logs) ([]*hostBatch, map[[2]string]*event.Refusal) {
	byName := map[string]*hostBatch{}
	var refusals map[[2]string]*event.Refusal
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		if event.IsRefusal(rl) {
			if refusals == nil {
				refusals = map[[2]string]*event.Refusal{}
			}
			e.decodeRefusals(ctx, rl, refusals)
			continue
		}
		attrs := rl.Resource().Attributes()
		name := strAttr(attrs, event.ResourceHostName)
		if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
			e.reject(ctx, "no_host", rl.ScopeLogs(), zap.String(event.ResourceHostName, name))
			continue
		}
		h := byName[name]
		if h == nil {
			h = &hostBatch{name: name}
		}
		h.merge(attrs)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				h.setAddress(lrs.At(k).Attributes())
				ev, err := event.FromLogRecord(lrs.At(k))
				if err == nil {
					err = ev.Validate()
				}
				if err == nil && ev.Type() == event.TypeAudit {
					err = errors.New("audit events are raised centrally, not by agents")
				}
				if err != nil {
					e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "invalid")))
					e.logger.Warn("dropping invalid TripWire record", zap.String(event.ResourceHostName, name), zap.Error(err))
					continue
				}
				if ev.Name == event.AgentHeartbeat {
					if h.heartbeat == nil || !ev.Time.Before(h.heartbeat.Time) {
						h.heartbeat = ev
					}
					continue
				}
				canon := ev.Canonical()
				if len(canon) > maxEventBytes {
					e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "oversize")))
					e.logger.Warn("dropping oversize TripWire record", zap.String(event.ResourceHostName, name),
						zap.String(event.KeyAlertID, ev.AlertID.String()), zap.Int("bytes", len(canon)))
					continue
				}
				r := record{ev: ev, canon: canon}
				if ev.Chained() {
					r.hashed = event.ChainHash(ev.PrevHash, canon)
				}
				h.events = append(h.events, r)
			}
		}
		if len(h.events) > 0 || h.heartbeat != nil {
			byName[name] = h
		}
	}
	hosts := make([]*hostBatch, 0, len(byName))
	for _, h := range byName {
		hosts = append(hosts, h)
	}
	// One order everywhere, so concurrent transactions lock rows alike.
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].name < hosts[j].name })
	return hosts, refusals
}

func (e *tripwireExporter) reject(ctx context.Context, reason string, sls plog.ScopeLogsSlice, fields ...zap.Field) {
	n := 0
	for j := 0; j < sls.Len(); j++ {
		n += sls.At(j).LogRecords().Len()
	}
	if n == 0 {
		return
	}
	e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
	e.logger.Warn("dropping records without a bound host identity", append(fields, zap.Int("records", n))...)
}

// maxDescriptive bounds a descriptive resource attribute stored in hosts.
const maxDescriptive = 256

// merge takes the resource's descriptive attributes; the last non-empty
// value wins. A value that is not short valid text is ignored: the receiver
// drops such values, but the exporter may sit behind another receiver, and
// one host's bad os.type must not fail the hosts upsert of a whole batch.
func (h *hostBatch) merge(attrs pcommon.Map) {
	set := func(dst *string, key string) {
		if v := strAttr(attrs, key); v != "" && len(v) <= maxDescriptive && utf8.ValidString(v) && !strings.ContainsRune(v, 0) {
			*dst = v
		}
	}
	set(&h.extID, event.ResourceHostID)
	set(&h.osType, event.ResourceOSType)
	set(&h.arch, event.ResourceHostArch)
	set(&h.version, event.ResourceServiceVersion)
	set(&h.certSerial, event.ResourceClientCertSerial)
	if v := strAttr(attrs, event.ResourceClientCertNotAfter); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			h.certNotAfter = t
		}
	}
}

// setAddress takes the client.address the receiver put on a record.
func (h *hostBatch) setAddress(attrs pcommon.Map) {
	v := strAttr(attrs, event.KeyClientAddress)
	if ap, err := netip.ParseAddrPort(v); err == nil {
		h.addr = ap.Addr().Unmap().String()
	} else if a, err := netip.ParseAddr(v); err == nil {
		h.addr = a.Unmap().String()
	}
}

func strAttr(attrs pcommon.Map, key string) string {
	v, ok := attrs.Get(key)
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return ""
	}
	return v.Str()
}

// isConflict reports a deadlock or serialization failure, which a fresh
// attempt of the same transaction resolves.
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// isDataError reports an error PostgreSQL raised because of the data sent
// (SQLSTATE classes 22 data exception, 23 integrity, 42 syntax or access),
// which sending the same data again cannot fix.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "42":
		return true
	}
	return false
}

// classify marks errors that retrying cannot fix as permanent, so the
// exporterhelper drops the batch instead of retrying it forever. Everything
// else (connection loss, shutdown, timeouts) is retried.
func classify(err error) error {
	if isDataError(err) {
		return consumererror.NewPermanent(err)
	}
	return err
}
