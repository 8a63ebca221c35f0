package tracker_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"swarmfs/index/indextest"
	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

// replica is one tracker on an etcd cluster, as Run wires it: its own
// client, an etcd store, an etcd registry and an HTTP server.
type replica struct {
	URL   string
	ts    *httptest.Server
	store *tracker.EtcdStore
}

func startReplica(t *testing.T, c *indextest.Cluster, prefix string) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	cfg := tracker.Config{Interval: 10 * time.Second, Etcd: tracker.EtcdConfig{Prefix: prefix, FlushInterval: 20 * time.Millisecond}}
	store := newEtcdStore(t, cli, prefix, time.Minute)
	reg, err := tracker.NewEtcdRegistry(cli, cfg.Etcd)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tracker.New(cfg, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &replica{URL: ts.URL + "/announce", ts: ts, store: store}
}

// Two replicas on one etcd: peers announced to A are returned by B, in
// locality order; after A dies B still serves the swarm, and a replica
// started afterwards serves it too.
func TestReplicasShareSwarms(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	prefix := uniquePrefix()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Client().Put(ctx, prefix+"info/"+knownIH.HexString(), "d4:name1:xe"); err != nil {
		t.Fatal(err)
	}
	a, b := startReplica(t, c, prefix), startReplica(t, c, prefix)

	// Private mode holds on both: the infohash is in the index.
	for _, r := range []*replica{a, b} {
		resp, err := trackertest.DoAnnounce(ctx, r.URL, with(ann(1000, 9), func(x *trackertest.Announce) { x.InfoHash = unknownIH }))
		if err != nil || resp.FailureReason == "" {
			t.Errorf("unknown infohash on %s: %+v, %v; want a failure reason", r.URL, resp, err)
		}
	}
	for _, p := range []trackertest.Announce{located(1101, "z1", "r1"), located(1201, "z1", "r2"), located(2101, "z2", "r1")} {
		if resp, err := trackertest.DoAnnounce(ctx, a.URL, p); err != nil || resp.FailureReason != "" {
			t.Fatalf("announce to A: %+v, %v", resp, err)
		}
	}
	var got []trackertest.ResponsePeer
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("B returned %v 10s after the announces to A; want the 3 peers", got)
		}
		time.Sleep(20 * time.Millisecond)
		resp, err := trackertest.DoAnnounce(ctx, b.URL, located(5000, "z1", "r1"))
		if err != nil || resp.FailureReason != "" {
			t.Fatalf("announce to B: %+v, %v", resp, err)
		}
		got = resp.Peers
	}
	var ports []uint16
	for _, p := range got {
		ports = append(ports, p.Addr.Port())
	}
	if !slices.Equal(ports, []uint16{1101, 1201, 2101}) {
		t.Errorf("B returned ports %v; want A's peers in locality order [1101 1201 2101]", ports)
	}

	// A dies. B keeps serving the swarm, and takes its updates.
	a.ts.CloseClientConnections()
	a.ts.Close()
	a.store.Close()
	if _, err := trackertest.DoAnnounce(ctx, b.URL, with(located(1201, "z1", "r2"), func(x *trackertest.Announce) { x.Event = "stopped" })); err != nil {
		t.Fatal(err)
	}
	resp, err := trackertest.DoAnnounce(ctx, b.URL, ann(6000, 9))
	if err != nil {
		t.Fatal(err)
	}
	if got := peerAddrs(resp); !slices.Equal(got, []string{"127.0.0.1:1101", "127.0.0.1:2101", "127.0.0.1:5000"}) {
		t.Errorf("B after A died = %v; want 1101, 2101 (from A) and 5000", got)
	}

	// A replacement replica loads the swarm from etcd.
	c2 := startReplica(t, c, prefix)
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := trackertest.DoAnnounce(ctx, c2.URL, ann(7000, 9))
		if err != nil {
			t.Fatal(err)
		}
		if got := peerAddrs(resp); slices.Equal(got, []string{"127.0.0.1:1101", "127.0.0.1:2101", "127.0.0.1:5000", "127.0.0.1:6000"}) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("new replica returned %v; want 1101, 2101, 5000, 6000", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// B learns of c2's announce (7000) through etcd, and scrapes agree.
	deadline = time.Now().Add(10 * time.Second)
	for {
		status, body, err := trackertest.Get(ctx, b.ts.URL+"/scrape", trackertest.ScrapeQuery(knownIH))
		if err != nil || status != 200 {
			t.Fatalf("scrape B: %d %v", status, err)
		}
		sr, err := trackertest.DecodeScrape(body)
		f, ok := sr.File(knownIH)
		if err == nil && ok && f.Incomplete == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape on B = %+v, %v; want 5 leechers", sr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
