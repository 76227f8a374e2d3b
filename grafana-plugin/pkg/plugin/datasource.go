// Package plugin is the backend of the TripWire Grafana datasource
// (tripwiresec-tripwire-datasource): it reads the alerts, hosts and audit
// chains that the tripwire collector stores in PostgreSQL. Start with
// [NewDatasource], which Grafana calls per datasource instance; [Store] holds
// every query and [Feed] the LISTEN/NOTIFY live feed.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DatasourceID is the plugin id of the nested datasource.
const DatasourceID = "tripwiresec-tripwire-datasource"

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ backend.StreamHandler         = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Datasource is one configured TripWire datasource.
type Datasource struct {
	settings  Settings
	settingsE error // why the settings are unusable; reported by CheckHealth
	pool      *pgxpool.Pool
	store     *Store
	feed      *Feed
	channels  channelRegistry
	resources backend.CallResourceHandler
}

// NewDatasource builds an instance from its settings. Bad settings do not
// fail here: Grafana would only show a generic error, so the instance is
// created and every call, CheckHealth first, reports what is wrong.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	ds := &Datasource{}
	ds.resources = httpadapter.New(ds.routes())
	ds.settings, ds.settingsE = LoadSettings(s)
	if ds.settingsE != nil {
		return ds, nil
	}
	cfg, err := ds.settings.PoolConfig()
	if err != nil {
		ds.settingsE = err
		return ds, nil
	}
	// NewWithConfig does not connect; the first query does.
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		ds.settingsE = fmt.Errorf("creating connection pool: %w", err)
		return ds, nil
	}
	ds.pool = pool
	ds.store = NewStore(pool, ds.settings.OfflineAfter())
	ds.feed = NewFeed(cfg, ds.store)
	return ds, nil
}

// Dispose closes the pool and the live feed when Grafana replaces the
// instance (settings changed) or shuts down.
func (d *Datasource) Dispose() {
	if d.feed != nil {
		d.feed.Close()
	}
	if d.pool != nil {
		d.pool.Close()
	}
}

func (d *Datasource) ready() error {
	if d.settingsE != nil {
		return d.settingsE
	}
	return nil
}

// CheckHealth connects for real and reads the schema, so "Save & test"
// proves the connection, the credentials and that the collector's tables
// are there.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if err := d.ready(); err != nil {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: err.Error()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hosts, err := d.store.Ping(ctx)
	if err != nil {
		log.DefaultLogger.Warn("health check failed", "error", err)
		return &backend.CheckHealthResult{Status: backend.HealthStatusError,
			Message: "PostgreSQL: " + pgErrorText(err)}, nil
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk,
		Message: fmt.Sprintf("Connected to PostgreSQL; %d hosts known", hosts)}, nil
}

// CallResource serves /api/v1 (see routes).
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	return d.resources.CallResource(ctx, req, sender)
}

// SubscribeStream accepts a Grafana Live subscription to
// ds/<uid>/alerts/... and answers with the frame's schema only. Grafana has
// already checked that the user may query this datasource (it resolves the
// ds/<uid> namespace through its datasource cache, which applies
// datasources:query), so no role is compared here. No rows go with the
// schema: Grafana appends subscribe-time data to a panel's query frame and
// replays it on every reconnect, so rows here would show twice; the Live page
// reads its first rows from /api/v1/alerts instead.
func (d *Datasource) SubscribeStream(_ context.Context, req *backend.SubscribeStreamRequest) (*backend.SubscribeStreamResponse, error) {
	if d.ready() != nil {
		return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusNotFound}, nil
	}
	f, err := d.channels.Filter(req.Path)
	if err != nil {
		return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusNotFound}, nil
	}
	initial, err := backend.NewInitialFrame(alertStreamFrame(nil, f.Triage), data.IncludeSchemaOnly)
	if err != nil {
		return nil, err
	}
	return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusOK, InitialData: initial}, nil
}

// PublishStream is refused: the feed is written only by the collector,
// through PostgreSQL, never by browsers.
func (d *Datasource) PublishStream(context.Context, *backend.PublishStreamRequest) (*backend.PublishStreamResponse, error) {
	return &backend.PublishStreamResponse{Status: backend.PublishStreamStatusPermissionDenied}, nil
}

// RunStream sends each matching alert as a one-row frame as soon as its
// NOTIFY arrives. Grafana runs one RunStream per channel (per filter) and
// cancels ctx when the last subscriber leaves.
func (d *Datasource) RunStream(ctx context.Context, req *backend.RunStreamRequest, sender *backend.StreamSender) error {
	if err := d.ready(); err != nil {
		return err
	}
	f, err := d.channels.Filter(req.Path)
	if err != nil {
		return err
	}
	sub, unsubscribe := d.feed.Subscribe(f)
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case a, ok := <-sub.ch:
			if !ok {
				return nil // instance disposed
			}
			batch := []liveRow{*a}
			// Drain what is already queued into the same frame.
			for len(batch) < 100 {
				select {
				case more, ok := <-sub.ch:
					if !ok {
						return nil
					}
					batch = append(batch, *more)
					continue
				default:
				}
				break
			}
			frame := alertStreamFrame(batch, f.Triage)
			if n := sub.dropped.Swap(0); n > 0 {
				frame.AppendNotices(data.Notice{Severity: data.NoticeSeverityWarning,
					Text: fmt.Sprintf("%d alerts skipped: the viewer fell behind", n)})
			}
			if err := sender.SendFrame(frame, data.IncludeAll); err != nil {
				return fmt.Errorf("sending frame: %w", err)
			}
		}
	}
}

// pgErrorText keeps database errors useful without echoing connection
// strings.
func pgErrorText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// routes is the resource mux; see resources.go.
func (d *Datasource) routes() *http.ServeMux {
	mux := http.NewServeMux()
	d.registerRoutes(mux)
	return mux
}

func reverseAlerts(a []Alert) {
	for i, j := 0, len(a)-1; i < j; i, j = i+1, j-1 {
		a[i], a[j] = a[j], a[i]
	}
}
