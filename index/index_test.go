package index_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"swarmfs/index"
	"swarmfs/index/indextest"
	"swarmfs/swarm"
)

func open(t *testing.T, endpoints []string) *index.Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ix, err := index.Open(ctx, index.Config{Endpoints: endpoints, SessionTTL: 2 * time.Second, RequestTimeout: 3 * time.Second},
		index.WithLogger(swarm.TestLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func rec(path string, n byte) index.Record {
	return index.Record{
		Path:        path,
		InfoHash:    strings.Repeat(fmt.Sprintf("%02x", n), 20),
		Size:        int64(n) * 1000,
		PieceLength: 4 << 20,
		Source:      index.Source{Kind: index.SourceURL, URL: "http://origin/" + path, ETag: fmt.Sprintf(`"v%d"`, n)},
	}
}

func eventually(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecordsAndVersions(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	ix := open(t, c.Endpoints())
	ctx := context.Background()

	if _, err := ix.Get(ctx, "images/a.img"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get(missing) = %v; want ErrNotFound", err)
	}
	v1, err := ix.Publish(ctx, rec("images/a.img", 1), []byte("info1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Get(ctx, "images/a.img")
	if err != nil || got.InfoHash != v1.InfoHash {
		t.Fatalf("Get = %+v, %v; want %s", got, err, v1.InfoHash)
	}
	// A new origin version: a new record, the path points at it.
	v2, err := ix.Publish(ctx, rec("images/a.img", 2), []byte("info2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ix.Get(ctx, "images/a.img"); got.InfoHash != v2.InfoHash {
		t.Errorf("Get after v2 = %s; want %s", got.InfoHash, v2.InfoHash)
	}
	vs, err := ix.Versions(ctx, "images/a.img")
	if err != nil || len(vs) != 2 || vs[0].InfoHash != v1.InfoHash || vs[1].InfoHash != v2.InfoHash {
		t.Errorf("Versions = %+v, %v; want v1, v2", vs, err)
	}
	// The old version stays readable.
	if info, err := ix.Info(ctx, v1.InfoHash); err != nil || string(info) != "info1" {
		t.Errorf("Info(v1) = %q, %v; want info1", info, err)
	}
	if r, _, err := ix.LookupSource(ctx, v1.Source); err != nil || r.InfoHash != v1.InfoHash {
		t.Errorf("LookupSource(v1) = %+v, %v", r, err)
	}
	// Records are immutable: the same version again is ErrExists.
	if old, err := ix.Publish(ctx, rec("images/a.img", 1), []byte("other")); !errors.Is(err, index.ErrExists) || old.InfoHash != v1.InfoHash {
		t.Errorf("Publish(v1 again) = %+v, %v; want ErrExists with v1", old, err)
	}
	if err := ix.Delete(ctx, "images/a.img"); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Get(ctx, "images/a.img"); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("Get after Delete = %v; want ErrNotFound", err)
	}
}

func TestPublishRejects(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	ix := open(t, c.Endpoints())
	ctx := context.Background()
	if _, err := ix.Publish(ctx, rec("a", 1), []byte("i")); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Publish(ctx, rec("d/e", 2), []byte("i")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rec  index.Record
		werr string
	}{
		{rec("a/b", 3), "index: path conflict: a is an object, so a/b cannot be below it"},
		{rec("d", 4), "index: path conflict: d is a directory"},
		{rec("x/../y", 5), `index: invalid path "x/../y": ".." segment`},
		{index.Record{Path: "ok", InfoHash: "zz", PieceLength: 1}, `infohash "zz" is not 40 hex digits`},
	}
	for _, tt := range tests {
		if _, err := ix.Publish(ctx, tt.rec, []byte("i")); err == nil || !strings.Contains(err.Error(), tt.werr) {
			t.Errorf("Publish(%s) = %v; want error containing %q", tt.rec.Path, err, tt.werr)
		}
	}
}

func TestCreateIfAbsentRace(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	var wg sync.WaitGroup
	var ok, exists atomic.Int32
	for range 8 {
		ix := open(t, c.Endpoints())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ix.Publish(context.Background(), rec("race/obj", 7), []byte("info"))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, index.ErrExists):
				exists.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || exists.Load() != 7 {
		t.Errorf("8 racing publishes: %d succeeded, %d ErrExists; want 1 and 7", ok.Load(), exists.Load())
	}
}

func TestCacheFollowsWatch(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	a := open(t, c.Endpoints())
	b := open(t, c.Endpoints())
	ctx := context.Background()
	if _, err := a.Publish(ctx, rec("pre/existing", 1), []byte("i")); err != nil {
		t.Fatal(err)
	}
	cache := b.NewCache()
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	events, unsub := cache.Subscribe()
	defer unsub()
	if _, ok := cache.Lookup("pre/existing"); !ok {
		t.Fatal("cache misses a record published before it started")
	}
	r, err := a.Publish(ctx, rec("images/x/y.img", 2), []byte("i"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "record from node A in node B's cache", func() bool {
		got, ok := cache.Lookup("images/x/y.img")
		return ok && got.InfoHash == r.InfoHash
	})
	select {
	case ev := <-events:
		if ev.Type != index.EventPut || ev.Path != "images/x/y.img" {
			t.Errorf("event = %+v; want put images/x/y.img", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no event for the new record")
	}
	root, _ := cache.List("")
	if len(root) != 2 || root[0].Name != "images" || !root[0].Dir || root[1].Name != "pre" {
		t.Errorf("List(root) = %+v; want dirs images, pre", root)
	}
	if es, ok := cache.List("images/x"); !ok || len(es) != 1 || es[0].Dir || es[0].Record.InfoHash != r.InfoHash {
		t.Errorf("List(images/x) = %+v, %v", es, ok)
	}

	// Compaction at the current revision does not break the cache.
	resp, err := a.Client().Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client().Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, rec("after/compaction", 3), []byte("i")); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "images/x/y.img"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "cache after compaction", func() bool {
		_, added := cache.Lookup("after/compaction")
		_, deleted := cache.Lookup("images/x/y.img")
		return added && !deleted && !cache.IsDir("images")
	})
}

func TestNodeRegistry(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	ix := open(t, c.Endpoints())
	ctx := context.Background()
	other, err := index.Open(ctx, index.Config{Endpoints: c.Endpoints(), SessionTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Register(ctx, index.Node{ID: "n1", PeerAddr: "127.0.0.1:1", Rack: "r1", Zone: "z1", Version: "v"}); err != nil {
		t.Fatal(err)
	}
	reg2, err := other.Register(ctx, index.Node{ID: "n2", PeerAddr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg2.Hold(ctx, "abcd"); err != nil {
		t.Fatal(err)
	}
	nodes, err := ix.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Rack != "r1" {
		t.Fatalf("Nodes = %+v, %v; want n1 (rack r1) and n2", nodes, err)
	}
	if h, _ := ix.Holders(ctx, "abcd"); len(h) != 1 || h[0] != "127.0.0.1:2" {
		t.Errorf("Holders = %v; want [127.0.0.1:2]", h)
	}
	// n2 dies without deregistering: its lease expires.
	other.Close()
	eventually(t, 10*time.Second, "dead node's key expires", func() bool {
		nodes, err := ix.Nodes(ctx)
		h, _ := ix.Holders(ctx, "abcd")
		return err == nil && len(nodes) == 1 && nodes[0].ID == "n1" && len(h) == 0
	})
}

func TestConvertOnceAcrossNodes(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	src := index.Source{Kind: index.SourceURL, URL: "http://origin/big.img", ETag: `"e1"`, ContentLength: 42}
	var calls atomic.Int32
	var wg sync.WaitGroup
	results := make([]index.Record, 8)
	for i := range 8 {
		ix := open(t, c.Endpoints())
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, _, err := ix.ConvertOnce(ctx, "big.img", src, fmt.Sprintf("node%d", i), func(ctx context.Context) (index.Record, []byte, error) {
				calls.Add(1)
				time.Sleep(300 * time.Millisecond)
				return index.Record{InfoHash: strings.Repeat("ab", 20), Size: 42, PieceLength: 4 << 20}, []byte("info"), nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("convert ran %d times; want once", calls.Load())
	}
	for i, r := range results {
		if r.InfoHash != strings.Repeat("ab", 20) || r.Path != "big.img" {
			t.Errorf("node%d got %+v", i, r)
		}
	}
}

// The converting node dies (its etcd client goes away mid-conversion): its
// session expires, another node takes over, and nothing half-done is
// published meanwhile.
func TestConvertOnceTakeover(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	src := index.Source{Kind: index.SourceURL, URL: "http://origin/t.img", ETag: `"e"`}
	ctx := context.Background()
	dying, err := index.Open(ctx, index.Config{Endpoints: c.Endpoints(), SessionTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go dying.ConvertOnce(ctx, "t.img", src, "dying", func(ctx context.Context) (index.Record, []byte, error) {
		close(started)
		<-ctx.Done() // never finishes
		return index.Record{}, nil, ctx.Err()
	})
	<-started
	survivor := open(t, c.Endpoints())
	done := make(chan index.Record, 1)
	go func() {
		r, converted, err := survivor.ConvertOnce(ctx, "t.img", src, "survivor", func(ctx context.Context) (index.Record, []byte, error) {
			return index.Record{InfoHash: strings.Repeat("cd", 20), Size: 1, PieceLength: 16384}, []byte("info"), nil
		})
		if err != nil || !converted {
			t.Errorf("survivor ConvertOnce = %v, converted %v", err, converted)
		}
		done <- r
	}()
	time.Sleep(500 * time.Millisecond)
	if _, err := survivor.Get(ctx, "t.img"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Get during conversion = %v; want ErrNotFound (nothing half-written)", err)
	}
	dying.Close() // the converter dies
	select {
	case r := <-done:
		if r.InfoHash != strings.Repeat("cd", 20) || r.Source.Node != "survivor" {
			t.Errorf("record = %+v; want the survivor's", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no takeover within 20s")
	}
}

// A 3-member cluster loses its leader: the index keeps serving, the cache
// keeps following. With the whole cluster down errors are clear; after a
// restart the cache converges.
func TestHAClusterLeaderLoss(t *testing.T) {
	c := indextest.NewCluster(t, 3)
	ix := open(t, c.Endpoints())
	ctx := context.Background()
	cache := ix.NewCache()
	defer cache.Close()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Publish(ctx, rec("ha/before", 1), []byte("i")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	leader := c.Leader(cctx)
	cancel()
	if leader < 0 {
		t.Fatal("no leader")
	}
	c.Stop(leader)
	var err error
	for range 50 {
		if _, err = ix.Publish(ctx, rec("ha/after", 2), []byte("i")); err == nil || errors.Is(err, index.ErrExists) {
			err = nil
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("publish after leader loss: %v", err)
	}
	if r, err := ix.Get(ctx, "ha/before"); err != nil || r.InfoHash != rec("", 1).InfoHash {
		t.Errorf("Get(ha/before) after leader loss = %+v, %v", r, err)
	}
	eventually(t, 15*time.Second, "cache sees the record written after leader loss", func() bool {
		_, ok := cache.Lookup("ha/after")
		return ok
	})

	// Whole cluster down: a clear error, nothing corrupted.
	c.Close()
	_, err = ix.Publish(ctx, rec("ha/down", 3), []byte("i"))
	if err == nil || !errors.Is(err, index.ErrUnavailable) {
		t.Errorf("Publish with cluster down = %v; want ErrUnavailable", err)
	} else {
		t.Logf("cluster down: %v", err)
	}
	c.RestartAll()
	eventually(t, 60*time.Second, "index answers after restart", func() bool {
		_, err := ix.Get(ctx, "ha/after")
		return err == nil
	})
	if _, err := ix.Publish(ctx, rec("ha/restarted", 4), []byte("i")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	eventually(t, 30*time.Second, "cache converges after restart", func() bool {
		_, a := cache.Lookup("ha/before")
		_, b := cache.Lookup("ha/after")
		_, d := cache.Lookup("ha/restarted")
		_, down := cache.Lookup("ha/down")
		return a && b && d && !down
	})
}
