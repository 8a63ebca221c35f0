package index

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A watch that resumes from a compacted revision fails, and the cache's
// loop answers by listing again: it never serves a stale tree.
func TestCacheRelistsAfterCompactedWatch(t *testing.T) {
	ix := testIndex(t)
	ctx := context.Background()
	rec := func(p string, n byte) Record {
		return Record{Path: p, InfoHash: strings.Repeat(string("0123456789abcdef"[n%16]), 40), Size: 1, PieceLength: 16384}
	}
	if _, err := ix.Publish(ctx, rec("a", 1), []byte("i")); err != nil {
		t.Fatal(err)
	}
	resp, err := ix.cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	old := resp.Header.Revision
	if _, err := ix.Publish(ctx, rec("b", 2), []byte("i")); err != nil {
		t.Fatal(err)
	}
	resp, _ = ix.cli.Get(ctx, "x")
	if _, err := ix.cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	c := &Cache{ix: ix, objects: map[string]Record{}, dirs: map[string]map[string]int{"": {}}, synced: make(chan struct{}), subs: map[chan Event]struct{}{}}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// watch resumes after the given revision: old-1 resumes at old, which
	// the compaction removed.
	if err := c.watch(wctx, old-1); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("watch from compacted revision %d = %v; want a compaction error", old, err)
	}
	// The cache loop lists before it watches again: from the same stale
	// state it converges.
	rctx, rcancel := context.WithCancel(ctx)
	c.stopped = make(chan struct{})
	c.rev = old - 1
	go c.run(rctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, okA := c.Lookup("a")
		_, okB := c.Lookup("b")
		if okA && okB {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cache did not converge after a compacted watch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rcancel()
	<-c.stopped
}
