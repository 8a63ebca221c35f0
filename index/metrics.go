package index

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	latency *prometheus.HistogramVec
	relists prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swarmfs_index_etcd_request_duration_seconds",
			Help:    "Latency of etcd requests made by the index, by operation and result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op", "result"}),
		relists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmfs_index_cache_relists_total",
			Help: "Times the namespace cache re-listed etcd after a watch error or compaction.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.latency, m.relists} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(op string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.latency.WithLabelValues(op, result).Observe(d.Seconds())
}
