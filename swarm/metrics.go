package swarm

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the client's figures at scrape time, so counters are not
// kept twice. No series has a per-object label.
type collector struct {
	c *Client

	received, sent, verified, failed, peers, objects, bytes, fallbacks *prometheus.Desc
}

func newCollector(c *Client) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("swarmfs_swarm_"+name, help, labels, nil)
	}
	return &collector{
		c:         c,
		received:  d("received_bytes_total", "Useful object bytes received, by source (peer or origin).", "source"),
		sent:      d("sent_bytes_total", "Object bytes uploaded to peers."),
		verified:  d("pieces_verified_total", "Pieces whose hash matched."),
		failed:    d("pieces_failed_total", "Pieces whose hash did not match (bad peer data or corrupt storage)."),
		peers:     d("peers", "Active peer connections."),
		objects:   d("objects", "Objects held, by state (complete or incomplete).", "state"),
		bytes:     d("object_bytes", "Bytes of all objects held, by state (verified or missing).", "state"),
		fallbacks: d("origin_fallbacks_total", "Stalls after which missing pieces were read from the origin."),
	}
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.received, m.sent, m.verified, m.failed, m.peers, m.objects, m.bytes, m.fallbacks} {
		ch <- d
	}
	m.c.convDuration.Describe(ch)
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	st := m.c.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(m.received, st.PeerBytes, "peer")
	counter(m.received, st.OriginBytes, "origin")
	counter(m.sent, st.SentBytes)
	counter(m.verified, st.PiecesVerified)
	counter(m.failed, st.PiecesFailed)
	counter(m.fallbacks, st.OriginFallbacks)
	gauge(m.peers, int64(st.Peers))
	gauge(m.objects, int64(st.ObjectsComplete), "complete")
	gauge(m.objects, int64(st.Objects-st.ObjectsComplete), "incomplete")
	gauge(m.bytes, st.BytesCompleted, "verified")
	gauge(m.bytes, st.BytesMissing, "missing")
	m.c.convDuration.Collect(ch)
}

// Stats are client-wide transfer figures. Counters cover the life of the
// process.
type Stats struct {
	PeerBytes       int64 `json:"peer_bytes"`
	OriginBytes     int64 `json:"origin_bytes"`
	SentBytes       int64 `json:"sent_bytes"`
	PiecesVerified  int64 `json:"pieces_verified"`
	PiecesFailed    int64 `json:"pieces_failed"`
	OriginFallbacks int64 `json:"origin_fallbacks"`
	Peers           int   `json:"peers"`
	Objects         int   `json:"objects"`
	ObjectsComplete int   `json:"objects_complete"`
	BytesCompleted  int64 `json:"bytes_completed"`
	BytesMissing    int64 `json:"bytes_missing"`
}

// Stats returns the client-wide figures.
func (c *Client) Stats() Stats {
	cs := c.cl.Stats()
	s := Stats{
		PeerBytes:       cs.PeerConns.BytesReadUsefulData.Int64(),
		OriginBytes:     c.originBytes.Load(),
		SentBytes:       cs.BytesWrittenData.Int64(),
		PiecesVerified:  c.store.completion.verified.Load(),
		PiecesFailed:    c.store.completion.failed.Load(),
		OriginFallbacks: c.fallbacks.Load(),
		Peers:           cs.ActivePeers,
	}
	for _, o := range c.Objects() {
		s.Objects++
		done := o.VerifiedBytes()
		s.BytesCompleted += done
		s.BytesMissing += o.Size() - done
		if o.Complete() {
			s.ObjectsComplete++
		}
	}
	return s
}
