package tests

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"swarmfs/tests/harness"
)

var (
	trackerBuildOnce sync.Once
	trackerBinDir    string
	trackerBuildErr  error
)

// trackerBin builds swarmfs-tracker once per test binary.
func trackerBin(t *testing.T) string {
	t.Helper()
	trackerBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "swarmfs-tracker-bin-")
		if err != nil {
			trackerBuildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		trackerBinDir, trackerBuildErr = harness.BuildTracker(ctx, dir)
	})
	if trackerBuildErr != nil {
		t.Fatal(trackerBuildErr)
	}
	return trackerBinDir
}

// startTracker starts a swarmfs-tracker on addr ("" for a free port) and
// waits until it is ready. It is stopped when the test ends, and its log
// shown if the test failed.
func startTracker(t *testing.T, ctx context.Context, dir, name, addr string, args ...string) *harness.Tracker {
	t.Helper()
	tr, err := harness.StartTracker(trackerBin(t), dir, name, addr, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", tr.Name, tr.Log())
		}
	})
	if err := tr.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return tr
}

// indexObject stores the torrent's info bytes in etcd where the index keeps
// them (<prefix>info/<infohash>), so that private trackers track it.
func indexObject(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix, torrent string) metainfo.Hash {
	t.Helper()
	mi, err := metainfo.LoadFromFile(torrent)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes()
	if _, err := cli.Put(ctx, prefix+"info/"+ih.HexString(), string(mi.InfoBytes)); err != nil {
		t.Fatalf("index %s: %v", ih, err)
	}
	return ih
}

// indexedSeed converts url on a node named "seed", puts the object in the
// index, and restarts the node on the same data as a seeder with args
// (e.g. its --tracker URLs). The restart is needed because the infohash
// is known only after the conversion, and a private tracker refuses it
// until it is indexed (and anacrolix waits a minute after a failed
// announce).
func indexedSeed(t *testing.T, ctx context.Context, dir, url string, cli *clientv3.Client, prefix string, convertArgs []string, args ...string) (*harness.Node, string, metainfo.Hash) {
	t.Helper()
	conv, torrent := convertOn(t, ctx, dir, url, convertArgs...)
	ih := indexObject(t, ctx, cli, prefix, torrent)
	if err := conv.Stop(); err != nil {
		t.Fatalf("stop converter: %v", err)
	}
	// convertOn named the node "converter"; the same name reuses its data.
	seed := startNode(t, dir, "converter", append([]string{"--join", torrent}, args...)...)
	if _, err := seed.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return seed, torrent, ih
}
