package tracker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
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
	base := ts.URL + "/announce?"
	urls := make([]string, benchPeers)
	for i := range urls {
		a := trackertest.Announce{
			InfoHash: trackertest.IH(i % benchSwarms),
			PeerID:   trackertest.PeerID(fmt.Sprintf("-SW0001-%d", i)),
			Port:     10000 + i,
			Left:     int64(i % 3), // a third are seeders
			Zone:     fmt.Sprintf("z%d", i%2),
			Rack:     fmt.Sprintf("r%d", i%8),
		}
		urls[i] = base + a.Query()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	get := func(u string) error {
		resp, err := client.Get(u)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	// Warm up: every peer announces once, so swarms are full.
	for _, u := range urls {
		if err := get(u); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var total atomic.Int64
	var failed atomic.Int64
	var elapsed time.Duration
	for range b.N {
		start := time.Now()
		stop := start.Add(benchWindow)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range benchClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := get(urls[next.Add(1)%benchPeers]); err != nil {
						failed.Add(1)
						continue
					}
					total.Add(1)
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(start)
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Errorf("%d announces failed", n)
	}
	rps := float64(total.Load()) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(float64(elapsed.Microseconds())/float64(max(total.Load(), 1))*benchClients, "mean-µs/req")
	b.Logf("%d announces in %v from %d connections: %.0f req/s (%d peers, %d swarms)", total.Load(), elapsed.Round(time.Millisecond), benchClients, rps, benchPeers, benchSwarms)
	return elapsed
}
