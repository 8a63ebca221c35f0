package tracker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"swarmfs/index/indextest"
	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

func TestMemoryStore(t *testing.T) {
	trackertest.TestPeerStore(t, func(t *testing.T, ttl time.Duration) tracker.PeerStore {
		s := tracker.NewMemoryStore(ttl)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

var prefixSeq atomic.Int64

// uniquePrefix returns an etcd prefix no other store in this test binary uses.
func uniquePrefix() string { return fmt.Sprintf("/t%d/", prefixSeq.Add(1)) }

func newEtcdStore(t *testing.T, cli *clientv3.Client, prefix string, ttl time.Duration, opts ...tracker.Option) *tracker.EtcdStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := tracker.NewEtcdStore(ctx, cli, tracker.EtcdConfig{Prefix: prefix, FlushInterval: 20 * time.Millisecond, RequestTimeout: 2 * time.Second}, ttl, opts...)
	if err != nil {
		t.Fatalf("NewEtcdStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestEtcdStore(t *testing.T) {
	cli := indextest.NewCluster(t, 1).Client()
	trackertest.TestPeerStore(t, func(t *testing.T, ttl time.Duration) tracker.PeerStore {
		return newEtcdStore(t, cli, uniquePrefix(), ttl)
	})
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two replicas on one etcd: writes through one are read through the other,
// a replica started later loads them, and after the writer is gone its
// peers expire from etcd by their lease alone.
func TestEtcdStoreReplicasShare(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	prefix := uniquePrefix()
	const ttl = 2 * time.Second
	a := newEtcdStore(t, c.Client(), prefix, ttl)
	b := newEtcdStore(t, c.Client(), prefix, ttl)
	ih := trackertest.IH(1)
	ctx := context.Background()

	p1, p2 := trackertest.PeerAt("10.0.0.1:6881"), trackertest.PeerAt("10.0.0.2:6881")
	p1.Rack, p1.Zone, p1.Seeder = "r1", "z1", true
	for _, p := range []tracker.Peer{p1, p2} {
		if err := a.PutPeer(ctx, ih, p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "replica B sees A's peers", func() bool {
		return slices.Equal(trackertest.Peers(t, b, ih, false), []tracker.Peer{p1, p2})
	})
	if err := a.DeletePeer(ctx, ih, p2.Addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "replica B sees A's delete", func() bool {
		return slices.Equal(trackertest.Peers(t, b, ih, false), []tracker.Peer{p1})
	})

	// The key layout the index and operators rely on.
	cli := c.Client()
	resp, err := cli.Get(ctx, prefix+"peers/"+ih.HexString()+"/10.0.0.1:6881")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get peer key = %v, %v; want one key", resp, err)
	}
	var v map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil || v["rack"] != "r1" || v["zone"] != "z1" || v["seed"] != true {
		t.Errorf("peer value %s (%v); want rack r1, zone z1, seed true", resp.Kvs[0].Value, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	ttlResp, err := cli.TimeToLive(ctx, lease)
	if err != nil || ttlResp.GrantedTTL < 2 || ttlResp.GrantedTTL > 4 {
		t.Errorf("peer lease granted TTL = %v (%v); want between the TTL (2s) and 1.25×TTL+1s", ttlResp.GrantedTTL, err)
	}

	// A replica started now loads the swarm from etcd.
	late := newEtcdStore(t, c.Client(), prefix, ttl)
	if got := trackertest.Peers(t, late, ih, false); !slices.Equal(got, []tracker.Peer{p1}) {
		t.Errorf("late replica RangePeers = %+v; want %+v", got, p1)
	}

	// The writer goes away; nobody refreshes p1, and its lease (not a
	// keepalive of A) removes it from etcd and from B's view.
	a.Close()
	start := time.Now()
	waitFor(t, 10*time.Second, "p1 expires from etcd", func() bool {
		r, err := cli.Get(ctx, prefix+"peers/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 0
	})
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("p1 left etcd %v after its writer closed; want within ~1.25×TTL+1s", el)
	}
	waitFor(t, 5*time.Second, "B forgets p1", func() bool { return len(trackertest.Peers(t, b, ih, false)) == 0 })
}

// Many announces become few etcd transactions.
func TestEtcdStoreBatchesWrites(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	prefix := uniquePrefix()
	reg := prometheus.NewRegistry()
	s := newEtcdStore(t, c.Client(), prefix, time.Minute, tracker.WithRegisterer(reg))
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if err := s.PutPeer(ctx, trackertest.IH(i%10), trackertest.PeerAt(fmt.Sprintf("10.0.%d.%d:6881", i/250, i%250+1))); err != nil {
			t.Fatal(err)
		}
	}
	cli := c.Client()
	waitFor(t, 10*time.Second, "all peer keys in etcd", func() bool {
		r, err := cli.Get(ctx, prefix+"peers/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == n
	})
	// The batch metric is observed right after each commit: the last one
	// may land a moment after its keys are visible.
	waitFor(t, 5*time.Second, "batch metrics count every write", func() bool {
		_, ops := histogramCount(t, reg, "swarmfs_tracker_etcd_batch_ops")
		return int(ops) == n
	})
	txns, ops := histogramCount(t, reg, "swarmfs_tracker_etcd_batch_ops")
	if int(ops) != n || txns > n/10 {
		t.Errorf("%d peer writes took %d transactions carrying %v ops; want all %d ops in at most %d transactions", n, txns, ops, n, n/10)
	}
	t.Logf("%d writes in %d etcd transactions", n, txns)
}

func histogramCount(t testing.TB, reg *prometheus.Registry, name string) (count uint64, sum float64) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				count += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return count, sum
}

// With etcd down the store keeps answering from its view, reports itself
// unhealthy, and writes what it accepted once etcd is back.
func TestEtcdStoreRidesOutEtcdOutage(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	prefix := uniquePrefix()
	s := newEtcdStore(t, c.Client(), prefix, time.Minute)
	ctx := context.Background()
	ih := trackertest.IH(1)
	before := trackertest.PeerAt("10.0.0.1:6881")
	if err := s.PutPeer(ctx, ih, before); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	during := trackertest.PeerAt("10.0.0.2:6881")
	if err := s.PutPeer(ctx, ih, during); err != nil {
		t.Fatalf("PutPeer with etcd down = %v; want nil (queued)", err)
	}
	if got := trackertest.Peers(t, s, ih, false); !slices.Equal(got, []tracker.Peer{before, during}) {
		t.Errorf("RangePeers with etcd down = %+v; want both peers", got)
	}
	waitFor(t, 20*time.Second, "store reports etcd trouble", func() bool { return s.Healthy() != nil })
	t.Logf("while etcd is down: %v", s.Healthy())
	c.Restart(0)
	cli := c.Client()
	waitFor(t, 30*time.Second, "queued write reaches etcd", func() bool {
		r, err := cli.Get(ctx, prefix+"peers/"+ih.HexString()+"/10.0.0.2:6881", clientv3.WithCountOnly())
		return err == nil && r.Count == 1
	})
	waitFor(t, 30*time.Second, "store healthy again", func() bool { return s.Healthy() == nil })
	// The watch resumed: a write by another replica arrives.
	other := newEtcdStore(t, c.Client(), prefix, time.Minute)
	third := trackertest.PeerAt("10.0.0.3:6881")
	if err := other.PutPeer(ctx, ih, third); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "resumed watch delivers another replica's write", func() bool {
		return len(trackertest.Peers(t, s, ih, false)) == 3
	})
}

func TestEtcdRegistry(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	cli := c.Client()
	prefix := uniquePrefix()
	ctx := context.Background()
	known, unknown, later := trackertest.IH(1), trackertest.IH(2), trackertest.IH(3)
	if _, err := cli.Put(ctx, prefix+"info/"+known.HexString(), "d4:name1:xe"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, err := tracker.NewEtcdRegistry(cli, tracker.EtcdConfig{Prefix: prefix, UnknownTTL: 300 * time.Millisecond, LookupRate: 3}, tracker.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ih   [20]byte
		want bool
	}{{known, true}, {unknown, false}, {later, false}} {
		if got, err := r.Known(ctx, tc.ih); err != nil || got != tc.want {
			t.Errorf("Known(%x) = %v, %v; want %v", tc.ih, got, err, tc.want)
		}
	}
	// Positives are cached: deleting the key does not change the answer.
	if _, err := cli.Delete(ctx, prefix+"info/"+known.HexString()); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Known(ctx, known); err != nil || !got {
		t.Errorf("Known(cached positive) = %v, %v; want true", got, err)
	}
	// Negatives are cached briefly: a newly indexed infohash is known soon.
	if _, err := cli.Put(ctx, prefix+"info/"+later.HexString(), "d4:name1:ye"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if got, err := r.Known(ctx, later); err != nil || !got {
		t.Errorf("Known(newly indexed, after the negative TTL) = %v, %v; want true", got, err)
	}
	// Lookups that miss the cache are rate limited (3/s, burst 3: all used).
	var throttled error
	for i := range 5 {
		if _, err := r.Known(ctx, trackertest.IH(100+i)); err != nil {
			throttled = err
			break
		}
	}
	if throttled == nil || !strings.Contains(throttled.Error(), "throttled") {
		t.Errorf("Known for a burst of unknown infohashes: last error %v; want ErrLookupThrottled", throttled)
	}
}
