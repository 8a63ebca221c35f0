package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"swarmfs/index/indextest"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
	"swarmfs/tracker/trackertest"
)

// Two tracker replicas on one etcd; swarmfsd nodes list both (one tier, no
// --peer). anacrolix announces to every URL of a tier in parallel, so to
// make the nodes register through replica A only, B is down at first. A is
// killed while the first nodes are mid-download; they finish without it.
// Then B starts: it never saw an announce from them, yet nodes started
// afterwards find the seed and the first nodes through B, from the peers
// A left in etcd. Node labels ride on the announce URL (?zone=&rack=) and
// come back as locality order from B.
func TestTrackerReplicaKilledMidDistribution(t *testing.T) {
	const size = 24 << 20
	data := swarmtest.Data(41, size)
	origin := newOrigin(t, "/obj.img", data)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	etcd := indextest.NewCluster(t, 1)
	cli := etcd.Client()
	const prefix = "/swarmfs/"
	trackerArgs := []string{"--etcd-endpoints", etcd.Endpoints()[0], "--etcd-prefix", prefix, "--interval", "5s", "--peer-ttl", "2m"}

	portB, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addrB := fmt.Sprintf("127.0.0.1:%d", portB)
	a := startTracker(t, ctx, dir, "tracker-a", "", trackerArgs...)
	urls := func(zone, rack string) []string {
		q := "zone=" + zone + "&rack=" + rack
		return []string{"--tracker", a.AnnounceURL(q), "--tracker", "http://" + addrB + "/announce?" + q}
	}

	// The seed uploads slowly so that the first downloaders are mid-way
	// when A dies.
	seed, torrent, ih := indexedSeed(t, ctx, dir, origin.URL("/obj.img"), cli, prefix,
		[]string{"--min-piece-length", "1MiB"}, append(urls("z1", "r1"), "--upload-rate", "3MiB")...)
	first := []*harness.Node{
		startNode(t, dir, "first-0", append([]string{"--join", torrent}, urls("z1", "r2")...)...),
		startNode(t, dir, "first-1", append([]string{"--join", torrent}, urls("z2", "r1")...)...),
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range first {
		for {
			f, err := n.Figures(ctx)
			if err == nil && f.PeerBytes >= 2<<20 {
				if f.Complete != 0 {
					t.Fatalf("%s already complete before the kill: %+v; the test needs it mid-way", n.Name, f)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no progress through tracker A: %+v %v", n.Name, f, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a.Kill()
	killed := time.Now()

	b := startTracker(t, ctx, dir, "tracker-b", addrB, trackerArgs...)
	second := []*harness.Node{
		startNode(t, dir, "second-0", append([]string{"--join", torrent}, urls("z2", "r2")...)...),
		startNode(t, dir, "second-1", append([]string{"--join", torrent}, urls("z2", "r2")...)...),
	}

	want := swarmtest.SHA256(data)
	for _, n := range append(first, second...) {
		done, err := n.WaitComplete(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		sha, err := harness.FileSHA256(n.DataFile(torrent))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := n.Figures(ctx)
		if sha != want || f.PeerBytes < size || f.OriginBytes != 0 {
			t.Errorf("%s: sha256 %s, figures %+v; want %s, all %d bytes from peers", n.Name, sha, f, want, size)
		}
		t.Logf("%s complete %v after A was killed", n.Name, done.Sub(killed).Round(100*time.Millisecond))
	}

	// B answers from what etcd holds, in locality order for a z1/r1 probe:
	// the seed (z1/r1), first-0 (z1/r2), then the z2 nodes.
	probe := trackertest.Announce{InfoHash: ih, PeerID: trackertest.PeerID("probe"), Port: 1, Left: 1, Zone: "z1", Rack: "r1"}
	resp, err := trackertest.DoAnnounce(ctx, b.AnnounceURL(""), probe)
	if err != nil || resp.FailureReason != "" {
		t.Fatalf("probe announce to B: %+v, %v", resp, err)
	}
	var got []string
	for _, p := range resp.Peers {
		got = append(got, p.Addr.String())
	}
	if len(got) != 5 || got[0] != seed.PeerAddr || got[1] != first[0].PeerAddr {
		t.Errorf("B's peers for a z1/r1 probe = %v; want 5 starting with the seed %s and first-0 %s", got, seed.PeerAddr, first[0].PeerAddr)
	}
	probe.Event = "stopped"
	trackertest.DoAnnounce(ctx, b.AnnounceURL(""), probe)

	m, err := b.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok := m[`swarmfs_tracker_announces_total{result="ok"}`]; ok < 2 {
		t.Errorf("replica B answered %v announces; want the second nodes' at least", ok)
	}
}
