package tests

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"swarmfs/index"
	"swarmfs/index/indextest"
	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

func openIndex(t *testing.T, c *indextest.Cluster) *index.Index {
	t.Helper()
	ix, err := index.Open(context.Background(), index.Config{Endpoints: c.Endpoints()}, index.WithLogger(swarm.TestLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func dataFile(n *harness.Node, ih string) string {
	return filepath.Join(n.Dir, "data", ih, "data")
}

// Eight nodes add the same URL at the same moment: the origin sees one full
// body GET, all end with the same infohash, and every copy matches.
func TestAddExactlyOnce(t *testing.T) {
	const size = 24 << 20
	data := swarmtest.Data(21, size)
	origin := newOrigin(t, "/images/same.img", data)
	origin.SetRate(16 << 20) // the conversion takes a while: others must wait, not convert
	url := origin.URL("/images/same.img")
	cluster := indextest.NewCluster(t, 1)
	ix := openIndex(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	b := bin(t)

	var nodes []*harness.Node
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := harness.StartNode(b, dir, fmt.Sprintf("n%d", i), "--etcd-endpoints", strings.Join(cluster.Endpoints(), ","),
				"--etcd-session-ttl", "2s", "--add", url, "--min-piece-length", "1MiB")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Stop()
			if t.Failed() {
				t.Logf("%s log:\n%s", n.Name, n.Log())
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range nodes {
		if _, err := n.WaitComplete(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := ix.Get(ctx, "images/same.img")
	if err != nil {
		t.Fatal(err)
	}
	want := swarmtest.SHA256(data)
	for _, n := range nodes {
		sha, err := harness.FileSHA256(dataFile(n, rec.InfoHash))
		if err != nil {
			t.Errorf("%s has no data for infohash %s: %v", n.Name, rec.InfoHash, err)
			continue
		}
		if sha != want {
			t.Errorf("%s copy sha256 = %s; want %s", n.Name, sha, want)
		}
	}
	st := origin.Stats()
	if st.FullGets != 1 || st.BodyBytes > size*105/100 {
		t.Errorf("origin: %d full GETs, %d body bytes; want 1 and at most 1.05×%d", st.FullGets, st.BodyBytes, size)
	}
	if vs, _ := ix.Versions(ctx, "images/same.img"); len(vs) != 1 {
		t.Errorf("index holds %d versions; want 1", len(vs))
	}
}

// The converting node is killed mid-conversion: another node takes over
// after the session TTL and finishes; nothing is published before that.
func TestAddTakeoverAfterConverterKilled(t *testing.T) {
	const size = 32 << 20
	data := swarmtest.Data(22, size)
	origin := newOrigin(t, "/t.img", data)
	origin.SetRate(4 << 20) // 8 s to convert
	url := origin.URL("/t.img")
	cluster := indextest.NewCluster(t, 1)
	ix := openIndex(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := []string{"--etcd-endpoints", strings.Join(cluster.Endpoints(), ","), "--etcd-session-ttl", "2s", "--add", url}

	first := startNode(t, dir, "first", append(args, "--node-id", "first")...)
	deadline := time.Now().Add(30 * time.Second)
	for origin.Stats().BodyBytes < 4<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("first node did not start converting: %+v", origin.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := startNode(t, dir, "second", append(args, "--node-id", "second")...)
	time.Sleep(time.Second) // second is now waiting on the election
	first.Kill()
	if _, err := ix.Get(ctx, "t.img"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get right after the kill = %v; want ErrNotFound (nothing half-written)", err)
	}
	if _, err := second.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rec, err := ix.Get(ctx, "t.img")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Source.Node != "second" {
		t.Errorf("record converted by %q; want second", rec.Source.Node)
	}
	sha, err := harness.FileSHA256(dataFile(second, rec.InfoHash))
	if err != nil || sha != swarmtest.SHA256(data) {
		t.Errorf("second copy sha256 = %s, %v; want %s", sha, err, swarmtest.SHA256(data))
	}
	if fg := origin.Stats().FullGets; fg != 2 {
		t.Errorf("origin saw %d full GETs; want 2 (the killed conversion and the takeover)", fg)
	}
}

// A node stopped mid-download and started again on its state dir resumes
// the object without the --add that brought it, keeps its verified pieces,
// and still has its origin fallback.
func TestRestartedNodeResumes(t *testing.T) {
	const size = 24 << 20
	data := swarmtest.Data(23, size)
	origin := newOrigin(t, "/r.img", data)
	cluster := indextest.NewCluster(t, 1)
	etcd := strings.Join(cluster.Endpoints(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := startNode(t, dir, "a", "--etcd-endpoints", etcd, "--add", origin.URL("/r.img"), "--upload-rate", "4MiB", "--min-piece-length", "1MiB")
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, dir, "b", "--etcd-endpoints", etcd, "--add", origin.URL("/r.img"), "--stall-timeout", "2s")
	var had int64
	deadline := time.Now().Add(30 * time.Second)
	for had < 6<<20 {
		m, err := b.Metrics(ctx)
		if err == nil {
			had = int64(m[`swarmfs_swarm_object_bytes{state="verified"}`])
		}
		if time.Now().After(deadline) {
			t.Fatalf("b has only %d bytes after 30s", had)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	a.Kill() // only the origin is left: the resumed node needs its fallback
	b2 := startNode(t, dir, "b", "--etcd-endpoints", etcd, "--stall-timeout", "2s")
	if _, err := b2.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rec, err := openIndex(t, cluster).Get(ctx, "r.img")
	if err != nil {
		t.Fatal(err)
	}
	if sha, err := harness.FileSHA256(dataFile(b2, rec.InfoHash)); err != nil || sha != swarmtest.SHA256(data) {
		t.Fatalf("resumed copy sha256 = %s, %v", sha, err)
	}
	f, err := b2.Figures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.OriginBytes == 0 || f.PeerBytes+f.OriginBytes > size-had+(1<<20) {
		t.Errorf("after restart: %d bytes from peers, %d from the origin; want only the missing %d (+1 piece) and some from the origin", f.PeerBytes, f.OriginBytes, size-had)
	}
}
