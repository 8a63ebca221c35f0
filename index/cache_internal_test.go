package index

import (
	"context"
	"fmt"
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
	c := &Cache{ix: ix, objects: map[string]Record{}, dirs: map[string]map[string]int{"": {}}, synced: make(chan struct{}), subs: map[*subscriber]struct{}{}}
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

// A subscriber that falls more than a buffer behind is not left with a
// silent gap: the events that did not fit are replaced by one
// EventResync, sent once it has room and before any later event.
func TestCacheSlowSubscriberGetsResync(t *testing.T) {
	c := testIndex(t).NewCache()
	defer c.Close()
	events, unsub := c.Subscribe()
	defer unsub()
	put := func(i int) Event {
		return Event{Type: EventPut, Path: fmt.Sprintf("burst/%05d", i), Record: Record{Path: fmt.Sprintf("burst/%05d", i)}}
	}
	burst := make([]Event, subscriberBuffer+100)
	for i := range burst {
		burst[i] = put(i)
	}
	c.mu.Lock()
	c.publish(burst)
	c.mu.Unlock()
	// Published while the resync is owed: covered by it, never sent.
	c.mu.Lock()
	c.publish([]Event{put(90000)})
	c.mu.Unlock()
	// The buffer holds the first events, in order; the rest were dropped.
	for i := range subscriberBuffer {
		ev := <-events
		if ev.Type != EventPut || ev.Path != burst[i].Path {
			t.Fatalf("event %d = %v %q, want put %q", i, ev.Type, ev.Path, burst[i].Path)
		}
	}
	select {
	case ev := <-events:
		if ev.Type != EventResync {
			t.Fatalf("after a full buffer got %v %q, want a resync", ev.Type, ev.Path)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resync within 5s of the buffer draining")
	}
	// After the resync, events flow again.
	c.mu.Lock()
	c.publish([]Event{put(90001)})
	c.mu.Unlock()
	select {
	case ev := <-events:
		if ev.Type != EventPut || ev.Path != put(90001).Path {
			t.Fatalf("after the resync got %v %q, want put %q", ev.Type, ev.Path, put(90001).Path)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after the resync")
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %v %q", ev.Type, ev.Path)
	default:
	}
}
