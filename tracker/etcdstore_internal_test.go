package tracker

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"swarmfs/index/indextest"
)

// A watch that resumes behind a compaction reloads everything: the view
// then matches etcd, including changes it never saw as events. The store's
// own watch is current, so a second watch loop is started from a revision
// that is compacted away.
func TestEtcdStoreResyncsAfterCompaction(t *testing.T) {
	c := indextest.NewCluster(t, 1)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewEtcdStore(ctx, cli, EtcdConfig{Prefix: "/resync/", FlushInterval: 10 * time.Millisecond}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ih metainfo.Hash
	copy(ih[:], "resync-test-infohash")
	a, b := Peer{Addr: netip.MustParseAddrPort("10.0.0.1:1")}, Peer{Addr: netip.MustParseAddrPort("10.0.0.2:1")}
	for _, p := range []Peer{a, b} {
		if err := s.PutPeer(ctx, ih, p); err != nil {
			t.Fatal(err)
		}
	}
	var behind int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r, err := cli.Get(ctx, "/resync/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count == 2 {
			behind = r.Header.Revision
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("peers not flushed within 10s")
		}
	}
	// Changes by someone else, then a compaction past them.
	if _, err := cli.Delete(ctx, s.key(ih, a.Addr)); err != nil {
		t.Fatal(err)
	}
	cp := Peer{Addr: netip.MustParseAddrPort("10.0.0.3:1"), Rack: "r9"}
	put, err := cli.Put(ctx, s.key(ih, cp.Addr), encodePeer(cp))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, put.Header.Revision); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchLoop(behind)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(s.m.resyncs) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no resync 10s after a watch started behind a compaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got []Peer
	s.v.rangePeers(ih, false, time.Now(), func(p Peer) bool { got = append(got, p); return true })
	slices.SortFunc(got, func(x, y Peer) int { return x.Addr.Compare(y.Addr) })
	if want := []Peer{b, cp}; !slices.Equal(got, want) {
		t.Errorf("view after resync = %+v; want %+v", got, want)
	}
}
