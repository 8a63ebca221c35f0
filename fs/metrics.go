package fs

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	latency    *prometheus.HistogramVec
	hit, miss  prometheus.Observer // latency children, resolved once
	blocked    prometheus.Gauge
	blockedNow atomic.Int64 // same as blocked, readable
	lastRead   atomic.Int64 // unix nanoseconds of the last read request
	bytes      prometheus.Counter
	pinned     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swarmfs_fuse_read_duration_seconds",
			Help:    "FUSE read latency, by result: hit (data was local) or miss (waited for the swarm).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 18),
		}, []string{"result"}),
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmfs_fuse_blocked_reads",
			Help: "FUSE reads waiting for pieces now.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmfs_fuse_read_bytes_total",
			Help: "Bytes returned to FUSE reads (passthrough reads bypass the daemon and are not counted).",
		}),
		pinned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmfs_fuse_pinned_bytes",
			Help: "Bytes of objects pinned in memory.",
		}),
	}
	m.hit, m.miss = m.latency.WithLabelValues("hit"), m.latency.WithLabelValues("miss")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.latency, m.blocked, m.bytes, m.pinned} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observeRead(hit bool, d time.Duration, n int) {
	o := m.miss
	if hit {
		o = m.hit
	}
	o.Observe(d.Seconds())
	m.bytes.Add(float64(n))
}
