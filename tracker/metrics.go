package tracker

import (
	"github.com/prometheus/client_golang/prometheus"
)

type serverMetrics struct {
	announces   *prometheus.CounterVec
	scrapes     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	returned    *prometheus.CounterVec
	perResponse prometheus.Histogram
	swarms      *storeCollector
}

func newServerMetrics(store PeerStore) *serverMetrics {
	m := &serverMetrics{
		announces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmfs_tracker_announces_total",
			Help: "Announce requests, by result (ok, bad_request, unregistered, error).",
		}, []string{"result"}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmfs_tracker_scrapes_total",
			Help: "Scrape requests, by result (ok, bad_request, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swarmfs_tracker_request_duration_seconds",
			Help:    "Time to answer tracker requests, by endpoint (announce, scrape).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"endpoint"}),
		returned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmfs_tracker_peers_returned_total",
			Help: "Peers handed out in announce responses, by locality tier (rack, zone, other).",
		}, []string{"tier"}),
		perResponse: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "swarmfs_tracker_announce_peers_returned",
			Help:    "Peers per announce response that asked for peers.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200},
		}),
		swarms: &storeCollector{
			store: store,
			swarms: prometheus.NewDesc("swarmfs_tracker_swarms",
				"Swarms with at least one live peer.", nil, nil),
			peers: prometheus.NewDesc("swarmfs_tracker_peers",
				"Live peers of all swarms, by role (seeder, leecher).", []string{"role"}, nil),
			sizes: prometheus.NewDesc("swarmfs_tracker_swarm_size_peers",
				"Distribution of swarm sizes (live peers per swarm), computed at scrape time.", nil, nil),
		},
	}
	for _, r := range []string{resultOK, resultBadRequest, resultUnregistered, resultError} {
		m.announces.WithLabelValues(r)
	}
	for _, t := range []Tier{TierRack, TierZone, TierOther} {
		m.returned.WithLabelValues(t.String())
	}
	return m
}

func (m *serverMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.announces, m.scrapes, m.duration, m.returned, m.perResponse, m.swarms}
}

// storeCollector reports swarm sizes from PeerStore.Stats at scrape time.
type storeCollector struct {
	store                PeerStore
	swarms, peers, sizes *prometheus.Desc
}

var swarmSizeBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.swarms
	ch <- c.peers
	ch <- c.sizes
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.Stats()
	ch <- prometheus.MustNewConstMetric(c.swarms, prometheus.GaugeValue, float64(st.Swarms))
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(st.Seeders), "seeder")
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(st.Leechers), "leecher")
	buckets := make(map[float64]uint64, len(swarmSizeBuckets))
	var sum float64
	for _, n := range st.SwarmSizes {
		sum += float64(n)
		for _, b := range swarmSizeBuckets {
			if float64(n) <= b {
				buckets[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.sizes, uint64(len(st.SwarmSizes)), sum, buckets)
}
