package fs_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"swarmfs/fs"
	"swarmfs/index"
	"swarmfs/swarm"
	"swarmfs/tests/harness"
)

// staticNS is a namespace that changes only when the test says so, and
// sends only the events the test sends.
type staticNS struct {
	mu     sync.Mutex
	recs   map[string]index.Record
	events chan index.Event
}

func (n *staticNS) Lookup(p string) (index.Record, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.recs[p]
	return r, ok
}

func (n *staticNS) List(dir string) ([]index.Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if dir != "" {
		return nil, false
	}
	var out []index.Entry
	for p, r := range n.recs {
		out = append(out, index.Entry{Name: p, Record: r})
	}
	return out, true
}

func (n *staticNS) IsDir(dir string) bool { return dir == "" }

func (n *staticNS) Subscribe() (<-chan index.Event, func()) { return n.events, func() {} }

func (n *staticNS) set(p string, r index.Record) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recs[p] = r
}

type noObjects struct{}

func (noObjects) Object(context.Context, index.Record) (*swarm.Object, error) {
	return nil, errors.New("no objects in this test")
}

// When the namespace cache says events were missed (EventResync), the
// mount drops the entries the kernel caches, so a changed object shows
// its new record without waiting for the one-minute entry timeout.
func TestResyncInvalidatesCachedEntries(t *testing.T) {
	harness.RequireFUSE(t)
	ns := &staticNS{recs: map[string]index.Record{}, events: make(chan index.Event, 1)}
	rec := func(size int64, ih byte) index.Record {
		return index.Record{Path: "obj", InfoHash: strings.Repeat(string("0123456789abcdef"[ih]), 40), Size: size, PieceLength: 16384}
	}
	ns.set("obj", rec(1111, 1))
	mnt := filepath.Join(t.TempDir(), "mnt")
	f, err := fs.Mount(fs.Config{Mountpoint: mnt, Background: fs.BackgroundNever}, ns, noObjects{}, fs.WithLogger(swarm.TestLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Unmount() })
	size := func() string {
		out, err := exec.Command("stat", "-c", "%s", filepath.Join(mnt, "obj")).CombinedOutput()
		if err != nil {
			t.Fatalf("stat: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := size(); got != "1111" {
		t.Fatalf("size %s, want 1111", got)
	}
	// The record changes, and its event is lost: the kernel keeps the
	// old entry.
	ns.set("obj", rec(2222, 2))
	if got := size(); got != "1111" {
		t.Logf("the kernel re-read the entry on its own (size %s); the resync below is not needed for it", got)
	}
	ns.events <- index.Event{Type: index.EventResync}
	deadline := time.Now().Add(5 * time.Second)
	for got := size(); got != "2222"; got = size() {
		if time.Now().After(deadline) {
			t.Fatalf("size %s 5s after a resync, want 2222", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
