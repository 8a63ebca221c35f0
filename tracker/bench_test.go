package tracker_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"swarmfs/index/indextest"
	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

// Load shape for the announce benchmarks: benchPeers peers spread over
// benchSwarms swarms re-announce from benchClients concurrent keep-alive
// connections, for benchWindow per benchmark iteration.
const (
	benchSwarms  = 100
	benchPeers   = 5000
	benchClients = 32
	benchWindow  = 2 * time.Second
)

// BenchmarkAnnounceEtcd measures the announce throughput of one replica
// with the etcd peer store and the etcd registry (private mode), against a
// one-member etcd on loopback, from a loopback load generator in the same
// process. It reports req/s; each iteration is a fixed benchWindow, so
// "make bench" (-benchtime 3x) is bounded.
func BenchmarkAnnounceEtcd(b *testing.B) {
	c := indextest.NewCluster(b, 1)
	cli := c.Client()
	prefix := "/bench/"
	ctx := context.Background()
	for i := range benchSwarms {
		if _, err := cli.Put(ctx, prefix+"info/"+trackertest.IH(i).HexString(), "x"); err != nil {
			b.Fatal(err)
		}
	}
	ecfg := tracker.EtcdConfig{Prefix: prefix}
	metrics := prometheus.NewRegistry()
	store, err := tracker.NewEtcdStore(ctx, cli, ecfg, 3*time.Minute, tracker.WithRegisterer(metrics))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	reg, err := tracker.NewEtcdRegistry(cli, ecfg)
	if err != nil {
		b.Fatal(err)
	}
	txns0, ops0 := histogramCount(b, metrics, "swarmfs_tracker_etcd_batch_ops")
	elapsed := benchAnnounce(b, store, reg)
	txns, ops := histogramCount(b, metrics, "swarmfs_tracker_etcd_batch_ops")
	b.ReportMetric(float64(txns-txns0)/elapsed.Seconds(), "etcd-txn/s")
	b.Logf("etcd: %d transactions carrying %.0f peer writes", txns-txns0, ops-ops0)
}

// BenchmarkAnnounceMemory is the same load on the in-memory store, for
// comparison.
func BenchmarkAnnounceMemory(b *testing.B) {
	store := tracker.NewMemoryStore(3 * time.Minute)
	defer store.Close()
	reg := tracker.StaticRegistry{}
	for i := range benchSwarms {
		reg[trackertest.IH(i)] = true
	}
	benchAnnounce(b, store, reg)
}

// benchAnnounce runs the load and returns the time spent under load.
func benchAnnounce(b *testing.B, store tracker.PeerStore, reg tracker.Registry) time.Duration {
	srv, err := tracker.New(tracker.Config{}, store, reg)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	var elapsed time.Duration
	var total int64
	b.ResetTimer()
	for range b.N {
		r, err := trackertest.AnnounceLoad(context.Background(), ts.URL+"/announce",
			trackertest.LoadShape{Swarms: benchSwarms, Peers: benchPeers, Clients: benchClients, Window: benchWindow})
		if err != nil {
			b.Fatal(err)
		}
		if r.Failed > 0 {
			b.Errorf("%d announces failed", r.Failed)
		}
		elapsed += r.Elapsed
		total += r.Requests
		b.Logf("p50 %v, p99 %v", r.P50, r.P99)
	}
	b.StopTimer()
	rps := float64(total) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(float64(elapsed.Microseconds())/float64(max(total, 1))*benchClients, "mean-µs/req")
	b.Logf("%d announces in %v from %d connections: %.0f req/s (%d peers, %d swarms)", total, elapsed.Round(time.Millisecond), benchClients, rps, benchPeers, benchSwarms)
	return elapsed
}
