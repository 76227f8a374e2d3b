package tripwireexporter

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// upsertRefusalsSQL keeps one row per certificate name and reason: a
// refusal record adds its count to the row and refreshes what it says.
const upsertRefusalsSQL = `
INSERT INTO refused_hosts AS r (cert_name, reason, claimed_name, detail, cert_serial, cert_not_after,
                                ip_address, first_seen, last_seen, refusals)
SELECT n, rs, NULLIF(c, ''), d, NULLIF(s, ''), NULLIF(na, '')::timestamptz, NULLIF(ip, '')::inet, t, t, k
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::bigint[]) AS u(n, rs, c, d, s, na, ip, t, k)
ORDER BY n, rs
ON CONFLICT (cert_name, reason) DO UPDATE SET
    claimed_name   = COALESCE(EXCLUDED.claimed_name, r.claimed_name),
    detail         = EXCLUDED.detail,
    cert_serial    = COALESCE(EXCLUDED.cert_serial, r.cert_serial),
    cert_not_after = COALESCE(EXCLUDED.cert_not_after, r.cert_not_after),
    ip_address     = COALESCE(EXCLUDED.ip_address, r.ip_address),
    first_seen     = LEAST(r.first_seen, EXCLUDED.first_seen),
    last_seen      = GREATEST(r.last_seen, EXCLUDED.last_seen),
    refusals       = r.refusals + EXCLUDED.refusals`

// decodeRefusals takes the receiver's refusal records from rl, merged by
// certificate name and reason into byKey.
func (e *tripwireExporter) decodeRefusals(ctx context.Context, rl plog.ResourceLogs, byKey map[[2]string]*event.Refusal) {
	rs, err := event.RefusalsFrom(rl)
	if err != nil {
		e.telemetry.ExporterTripwireRecordsRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "invalid")))
		e.logger.Warn("dropping an invalid refusal record", zap.Error(err))
	}
	for _, r := range rs {
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		k := [2]string{text(r.CertName), text(r.Reason)}
		if have := byKey[k]; have != nil {
			r.Count += have.Count
			if have.Time.After(r.Time) {
				r.Time = have.Time
			}
		}
		byKey[k] = &r
	}
}

// storeRefusals records refused identities in refused_hosts. It is its own
// statement, outside the hosts' transaction: a refused identity is not a
// host, and its row is a tally, not evidence.
func (e *tripwireExporter) storeRefusals(ctx context.Context, byKey map[[2]string]*event.Refusal) error {
	keys := make([][2]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	var names, reasons, claimed, details, serials, notAfters, addrs []string
	var times []time.Time
	var counts []int64
	for _, k := range keys {
		r := byKey[k]
		addr := ""
		if a, err := netip.ParseAddr(r.Address); err == nil {
			addr = a.Unmap().String()
		}
		names, reasons = append(names, k[0]), append(reasons, k[1])
		claimed = append(claimed, text(r.ClaimedName))
		details = append(details, text(r.Detail))
		serials = append(serials, text(r.CertSerial))
		notAfters = append(notAfters, rfc3339(r.CertNotAfter))
		addrs = append(addrs, addr)
		times = append(times, r.Time)
		counts = append(counts, r.Count)
	}
	if _, err := e.pool.Exec(ctx, upsertRefusalsSQL, names, reasons, claimed, details, serials, notAfters, addrs, times, counts); err != nil {
		return fmt.Errorf("recording refused identities: %w", err)
	}
	for _, k := range keys {
		e.logger.Warn("identity refused by the receiver", zap.String("tls.client.subject", k[0]), zap.String("reason", k[1]),
			zap.String("claimed", byKey[k].ClaimedName), zap.Int64("refusals", byKey[k].Count))
	}
	return nil
}
