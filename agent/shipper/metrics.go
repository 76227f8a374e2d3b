package shipper

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for tripwire_shipper_rejected_total.
const (
	reasonPartial = "collector_partial" // the collector accepted the batch but rejected some records
	reasonInvalid = "invalid"           // a spooled event that does not validate locally
)

type metrics struct {
	sent          prometheus.Counter
	failed        prometheus.Counter
	reconnects    prometheus.Counter
	rejected      *prometheus.CounterVec
	heartbeats    *prometheus.CounterVec
	queueAge      prometheus.GaugeFunc
	certNotAfter  prometheus.Gauge
	batchSize     prometheus.Histogram
	exportSeconds prometheus.Histogram
}

func newMetrics(oldestAge func() time.Duration) *metrics {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tripwire_shipper_sent_total",
			Help: "Events acknowledged by the collector and deleted from the spool.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tripwire_shipper_failed_total",
			Help: "Export attempts that failed and will be retried from the spool.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tripwire_shipper_reconnects_total",
			Help: "Times the connection to the collector became ready again after being lost.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tripwire_shipper_rejected_total",
			Help: "Events dropped as permanently invalid, by reason.",
		}, []string{"reason"}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tripwire_shipper_heartbeats_total",
			Help: "Heartbeats sent, by result (ok, failed); a failed one is not retried.",
		}, []string{"result"}),
		queueAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tripwire_shipper_queue_age_seconds",
			Help: "Age of the oldest event waiting in the spool; 0 when it is empty.",
		}, func() float64 { return oldestAge().Seconds() }),
		certNotAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tripwire_shipper_cert_not_after_seconds",
			Help: "Expiry of the agent's client certificate, as a Unix time.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tripwire_shipper_batch_size",
			Help:    "Events per acknowledged export.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		exportSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tripwire_shipper_export_duration_seconds",
			Help:    "Time from sending a batch to the collector's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, r := range []string{reasonPartial, reasonInvalid} {
		m.rejected.WithLabelValues(r)
	}
	m.heartbeats.WithLabelValues("ok")
	m.heartbeats.WithLabelValues("failed")
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.reconnects, m.rejected, m.heartbeats,
		m.queueAge, m.certNotAfter, m.batchSize, m.exportSeconds} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

func (m *metrics) setCert(leaf *x509.Certificate) {
	m.certNotAfter.Set(float64(leaf.NotAfter.Unix()))
}
