package plugin

import (
	"context"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"slices"

	"github.com/tripwire-sec/tripwire/contract"
)

// Host health metrics for a SOC's alert rules (queryType host_health): one
// numeric value per host, so Grafana alerting fires one instance per host
// and the notification names it.
const (
	// MetricOffline is 1 when no heartbeat arrived for three intervals.
	MetricOffline = "offline"
	// MetricDegraded is 1 when the agent reports DEGRADED (a watcher on a
	// fallback mechanism, or a rule it cannot serve) and is not offline.
	MetricDegraded = "degraded"
	// MetricCertDaysLeft is the days until the agent certificate expires
	// (hosts that never reported one are left out).
	MetricCertDaysLeft = "cert_days_left"
	// MetricDeliveryLag is the longest wait, in seconds, between an event
	// happening and the collector committing it, over events committed in
	// the query's range. A growing agent spool shows centrally this way: its
	// events arrive late (the spool depth itself is the agent's
	// tripwire_agent_spool_depth metric).
	MetricDeliveryLag = "delivery_lag_seconds"
	// MetricLossEvents counts tripwire.agent.loss events in the range: the
	// agent lost events (kernel queue overflow, ring buffer, spool shed).
	MetricLossEvents = "loss_events"
)

var hostMetrics = []string{MetricOffline, MetricDegraded, MetricCertDaysLeft, MetricDeliveryLag, MetricLossEvents}

// hostHealth is one host's row for the metrics above.
type hostHealth struct {
	host         string
	status       string
	certNotAfter *time.Time
	lagSeconds   float64
	lossEvents   int64
}

// lagLookback bounds how old a late event may be and still be found: the
// index is (host_id, event_time), so the scan needs a lower event_time.
const lagLookback = 24 * time.Hour

func (s *Store) hostHealth(ctx context.Context, from, to time.Time) ([]hostHealth, error) {
	rows, err := s.pool.Query(ctx, `
SELECT h.host_name,
       CASE WHEN h.status = '`+contract.StatusRetired+`' THEN h.status WHEN h.last_seen < now() - make_interval(secs => $1) THEN '`+contract.StatusOffline+`' ELSE h.status END,
       h.cert_not_after,
       COALESCE((SELECT max(extract(epoch FROM a.received_at - a.event_time))::float8 FROM alerts a
                  WHERE a.host_id = h.host_id AND a.event_time >= $4
                    AND a.event_time < $3 AND a.received_at >= $2 AND a.received_at < $3), 0),
       (SELECT count(*) FROM alerts a
         WHERE a.host_id = h.host_id AND a.event_name = 'tripwire.agent.loss'
           AND a.event_time >= $2 AND a.event_time < $3)
FROM hosts h ORDER BY h.host_name`, s.offlineAfter.Seconds(), from, to, from.Add(-lagLookback))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hostHealth
	for rows.Next() {
		var h hostHealth
		if err := rows.Scan(&h.host, &h.status, &h.certNotAfter, &h.lagSeconds, &h.lossEvents); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (d *Datasource) queryHostHealth(ctx context.Context, metric string, from, to time.Time) (data.Frames, error) {
	if !slices.Contains(hostMetrics, metric) {
		return nil, badRequest("metric: unknown value %q (want one of offline, degraded, cert_days_left, delivery_lag_seconds, loss_events)", metric)
	}
	if to.IsZero() {
		to = time.Now()
	}
	if from.IsZero() || !from.Before(to) {
		return nil, badRequest("host_health needs a time range")
	}
	hosts, err := d.store.hostHealth(ctx, from, to)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var frames data.Frames
	for _, h := range hosts {
		var v float64
		switch metric {
		case MetricOffline:
			v = b2f(h.status == contract.StatusOffline)
		case MetricDegraded:
			v = b2f(h.status == contract.StatusDegraded)
		case MetricCertDaysLeft:
			if h.certNotAfter == nil {
				continue
			}
			v = h.certNotAfter.Sub(now).Hours() / 24
		case MetricDeliveryLag:
			v = h.lagSeconds
		case MetricLossEvents:
			v = float64(h.lossEvents)
		}
		fr := data.NewFrame(metric, data.NewField(metric, data.Labels{"host": h.host}, []float64{v}))
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	if len(frames) == 0 {
		// No host: "no data", which the rules map to OK.
		fr := data.NewFrame(metric, data.NewField(metric, nil, []float64{}))
		fr.Meta = &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, fr)
	}
	return frames, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
