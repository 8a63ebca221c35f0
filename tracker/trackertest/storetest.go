package trackertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"swarmfs/tracker"
)

// NewStoreFunc returns a fresh, empty store whose peers expire after ttl.
// It should close the store when the test ends (closing twice is allowed).
type NewStoreFunc func(t *testing.T, ttl time.Duration) tracker.PeerStore

// StoreTTL is the peer TTL of the stores the suite makes, except in the
// expiry test.
const StoreTTL = time.Minute

// expiryTTL is short, but not below etcd's minimum lease TTL (2s with
// default election settings).
const expiryTTL = 2 * time.Second

// TestPeerStore checks the invariants written on tracker.PeerStore. Each
// subtest makes its own store with newStore.
func TestPeerStore(t *testing.T, newStore NewStoreFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStoreFunc)
	}{
		{"PutAndRange", testPutAndRange},
		{"Replace", testReplace},
		{"CompletedIsSticky", testCompletedSticky},
		{"AddressFamilies", testFamilies},
		{"SeedersAndLeechers", testSeedersLeechers},
		{"Delete", testDelete},
		{"RangeStops", testRangeStops},
		{"Expiry", testExpiry},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore) })
	}
}

// IH returns a deterministic infohash for n.
func IH(n int) metainfo.Hash {
	var h metainfo.Hash
	copy(h[:], fmt.Sprintf("ih-%017d", n))
	return h
}

// PeerAt returns a peer at addr ("ip:port") with an ID derived from it.
func PeerAt(addr string) tracker.Peer {
	p := tracker.Peer{Addr: netip.MustParseAddrPort(addr)}
	copy(p.ID[:], fmt.Sprintf("-SW0001-%012s", addr))
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, s tracker.PeerStore, ih metainfo.Hash, p tracker.Peer) {
	t.Helper()
	if err := s.PutPeer(ctxT(t), ih, p); err != nil {
		t.Fatalf("PutPeer(%v, %v) = %v; want nil", ih, p.Addr, err)
	}
}

// Peers returns the peers RangePeers yields, sorted by address.
func Peers(t *testing.T, s tracker.PeerStore, ih metainfo.Hash, v6 bool) []tracker.Peer {
	t.Helper()
	var out []tracker.Peer
	if err := s.RangePeers(ctxT(t), ih, v6, func(p tracker.Peer) bool {
		out = append(out, p)
		return true
	}); err != nil {
		t.Fatalf("RangePeers(%v, v6=%v) = %v; want nil", ih, v6, err)
	}
	slices.SortFunc(out, func(a, b tracker.Peer) int { return a.Addr.Compare(b.Addr) })
	return out
}

func addrs(ps []tracker.Peer) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Addr.String())
	}
	return out
}

func counts(t *testing.T, s tracker.PeerStore, ih metainfo.Hash) tracker.SwarmCounts {
	t.Helper()
	c, err := s.Counts(ctxT(t), ih)
	if err != nil {
		t.Fatalf("Counts(%v) = %v; want nil", ih, err)
	}
	return c
}

func testPutAndRange(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	a := PeerAt("10.0.0.1:6881")
	a.Rack, a.Zone = "r1", "z1"
	b := PeerAt("10.0.0.2:6881")
	b.Seeder = true
	c := PeerAt("10.0.0.2:6882") // same IP, other port: another peer
	for _, p := range []tracker.Peer{a, b, c} {
		mustPut(t, s, IH(1), p)
	}
	mustPut(t, s, IH(2), PeerAt("10.0.0.9:6881"))

	got := Peers(t, s, IH(1), false)
	want := []tracker.Peer{a, b, c}
	if !slices.Equal(got, want) {
		t.Errorf("RangePeers(ih1) = %+v; want %+v", got, want)
	}
	if got := addrs(Peers(t, s, IH(2), false)); !slices.Equal(got, []string{"10.0.0.9:6881"}) {
		t.Errorf("RangePeers(ih2) = %v; want [10.0.0.9:6881]", got)
	}
	if got := Peers(t, s, IH(3), false); len(got) != 0 {
		t.Errorf("RangePeers(unknown swarm) = %v; want none", got)
	}
	if got := counts(t, s, IH(3)); got != (tracker.SwarmCounts{}) {
		t.Errorf("Counts(unknown swarm) = %+v; want zero", got)
	}
	st := s.Stats()
	slices.Sort(st.SwarmSizes)
	if st.Swarms != 2 || st.Seeders != 1 || st.Leechers != 3 || !slices.Equal(st.SwarmSizes, []int{1, 3}) {
		t.Errorf("Stats() = %+v; want 2 swarms, 1 seeder, 3 leechers, sizes [1 3]", st)
	}
}

func testReplace(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	p := PeerAt("10.0.0.1:6881")
	mustPut(t, s, IH(1), p)
	q := p
	copy(q.ID[:], "-XX0002-newpeeridxxx")
	q.Seeder, q.Rack, q.Zone = true, "r2", "z2"
	mustPut(t, s, IH(1), q)
	// The latest write stays visible: no older state comes back while the
	// store propagates (shared stores see their own writes echoed).
	for range 30 {
		got := Peers(t, s, IH(1), false)
		if len(got) != 1 || got[0] != q {
			t.Fatalf("after two PutPeer of one address: %+v; want only %+v", got, q)
		}
		if c := counts(t, s, IH(1)); c.Seeders != 1 || c.Leechers != 0 {
			t.Fatalf("Counts = %+v; want 1 seeder, 0 leechers", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Writes spaced so that earlier ones propagate while later ones are
	// made: each read shows the latest.
	for i := range 40 {
		q.Seeder = i%2 == 0
		mustPut(t, s, IH(1), q)
		for range 3 {
			if got := Peers(t, s, IH(1), false); len(got) != 1 || got[0].Seeder != q.Seeder {
				t.Fatalf("write %d: %+v; want Seeder %v", i, got, q.Seeder)
			}
			time.Sleep(3 * time.Millisecond)
		}
	}
	// Same for a delete right after a put.
	r := PeerAt("10.0.0.2:6881")
	mustPut(t, s, IH(1), r)
	if err := s.DeletePeer(ctxT(t), IH(1), r.Addr); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if got := addrs(Peers(t, s, IH(1), false)); !slices.Equal(got, []string{"10.0.0.1:6881"}) {
			t.Fatalf("after put and delete of 10.0.0.2:6881: %v; want [10.0.0.1:6881]", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCompletedSticky(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	p := PeerAt("10.0.0.1:6881")
	mustPut(t, s, IH(1), p)
	if c := counts(t, s, IH(1)); c.Completed != 0 {
		t.Errorf("Counts before completion = %+v; want Completed 0", c)
	}
	p.Completed, p.Seeder = true, true
	mustPut(t, s, IH(1), p)
	p.Completed = false // a later plain announce
	mustPut(t, s, IH(1), p)
	got := Peers(t, s, IH(1), false)
	if len(got) != 1 || !got[0].Completed {
		t.Errorf("after completed then plain announce: %+v; want Completed set", got)
	}
	if c := counts(t, s, IH(1)); c.Completed != 1 || c.Seeders != 1 {
		t.Errorf("Counts = %+v; want Completed 1, Seeders 1", c)
	}
	// Deleting forgets completion.
	if err := s.DeletePeer(ctxT(t), IH(1), p.Addr); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, IH(1), p)
	if c := counts(t, s, IH(1)); c.Completed != 0 {
		t.Errorf("Counts after delete and re-put = %+v; want Completed 0", c)
	}
}

func testFamilies(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	v4 := PeerAt("10.0.0.1:6881")
	v6 := PeerAt("[2001:db8::1]:6881")
	mapped := PeerAt("[::ffff:10.0.0.2]:6881")
	for _, p := range []tracker.Peer{v4, v6, mapped} {
		mustPut(t, s, IH(1), p)
	}
	if got, want := addrs(Peers(t, s, IH(1), false)), []string{"10.0.0.1:6881", "10.0.0.2:6881"}; !slices.Equal(got, want) {
		t.Errorf("RangePeers(v6=false) = %v; want %v (IPv4, mapped address unmapped)", got, want)
	}
	if got, want := addrs(Peers(t, s, IH(1), true)), []string{"[2001:db8::1]:6881"}; !slices.Equal(got, want) {
		t.Errorf("RangePeers(v6=true) = %v; want %v", got, want)
	}
	if c := counts(t, s, IH(1)); c.Leechers != 3 {
		t.Errorf("Counts = %+v; want 3 leechers over both families", c)
	}
	// The mapped and the plain form are one peer.
	if err := s.DeletePeer(ctxT(t), IH(1), netip.MustParseAddrPort("10.0.0.2:6881")); err != nil {
		t.Fatal(err)
	}
	if got := addrs(Peers(t, s, IH(1), false)); !slices.Equal(got, []string{"10.0.0.1:6881"}) {
		t.Errorf("after deleting 10.0.0.2:6881: %v; want [10.0.0.1:6881]", got)
	}
}

func testSeedersLeechers(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	for i := range 5 {
		p := PeerAt(fmt.Sprintf("10.0.1.%d:6881", i+1))
		p.Seeder = i < 2
		mustPut(t, s, IH(1), p)
	}
	if c := counts(t, s, IH(1)); c.Seeders != 2 || c.Leechers != 3 {
		t.Errorf("Counts = %+v; want 2 seeders, 3 leechers", c)
	}
	p := PeerAt("10.0.1.5:6881") // a leecher finishes
	p.Seeder = true
	mustPut(t, s, IH(1), p)
	if c := counts(t, s, IH(1)); c.Seeders != 3 || c.Leechers != 2 {
		t.Errorf("Counts after a leecher became a seeder = %+v; want 3 seeders, 2 leechers", c)
	}
	st := s.Stats()
	if st.Seeders != 3 || st.Leechers != 2 || st.Swarms != 1 {
		t.Errorf("Stats = %+v; want 1 swarm, 3 seeders, 2 leechers", st)
	}
}

func testDelete(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	a, b := PeerAt("10.0.0.1:6881"), PeerAt("10.0.0.2:6881")
	mustPut(t, s, IH(1), a)
	mustPut(t, s, IH(1), b)
	mustPut(t, s, IH(2), a)
	if err := s.DeletePeer(ctxT(t), IH(1), a.Addr); err != nil {
		t.Fatalf("DeletePeer = %v; want nil", err)
	}
	if got := addrs(Peers(t, s, IH(1), false)); !slices.Equal(got, []string{"10.0.0.2:6881"}) {
		t.Errorf("RangePeers(ih1) after delete = %v; want [10.0.0.2:6881]", got)
	}
	if got := addrs(Peers(t, s, IH(2), false)); !slices.Equal(got, []string{"10.0.0.1:6881"}) {
		t.Errorf("RangePeers(ih2) = %v; want [10.0.0.1:6881]: delete is per swarm", got)
	}
	for _, ih := range []metainfo.Hash{IH(1), IH(9)} {
		if err := s.DeletePeer(ctxT(t), ih, netip.MustParseAddrPort("10.9.9.9:1")); err != nil {
			t.Errorf("DeletePeer(unknown peer) = %v; want nil", err)
		}
	}
	if err := s.DeletePeer(ctxT(t), IH(2), a.Addr); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Swarms != 1 {
		t.Errorf("Stats after emptying ih2 = %+v; want 1 swarm", st)
	}
}

func testRangeStops(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	for i := range 10 {
		mustPut(t, s, IH(1), PeerAt(fmt.Sprintf("10.0.0.%d:6881", i+1)))
	}
	calls := 0
	if err := s.RangePeers(ctxT(t), IH(1), false, func(tracker.Peer) bool {
		calls++
		return calls < 3
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Errorf("yield called %d times; want 3 (stops when it returns false)", calls)
	}
}

func testExpiry(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, expiryTTL)
	stale, fresh := PeerAt("10.0.0.1:6881"), PeerAt("10.0.0.2:6881")
	stale.Seeder = true
	start := time.Now()
	mustPut(t, s, IH(1), stale)
	mustPut(t, s, IH(1), fresh)
	mustPut(t, s, IH(2), stale)
	// Refresh fresh every TTL/4 until stale is gone (or a bound).
	deadline := start.Add(expiryTTL + 5*time.Second)
	for {
		got := addrs(Peers(t, s, IH(1), false))
		if slices.Equal(got, []string{"10.0.0.2:6881"}) {
			break
		}
		if time.Since(start) < expiryTTL/2 && !slices.Equal(got, []string{"10.0.0.1:6881", "10.0.0.2:6881"}) {
			t.Fatalf("RangePeers at %v = %v; want both peers before TTL %v", time.Since(start), got, expiryTTL)
		}
		if time.Now().After(deadline) {
			t.Fatalf("RangePeers %v after TTL %v = %v; want only the refreshed peer", time.Since(start), expiryTTL, got)
		}
		time.Sleep(expiryTTL / 4)
		mustPut(t, s, IH(1), fresh)
	}
	if el := time.Since(start); el < expiryTTL {
		t.Errorf("stale peer gone after %v; want at least the TTL %v", el, expiryTTL)
	}
	if c := counts(t, s, IH(1)); c.Seeders != 0 || c.Leechers != 1 {
		t.Errorf("Counts after expiry = %+v; want 0 seeders, 1 leecher", c)
	}
	// ih2 had only the stale peer: the swarm is gone too.
	for {
		st := s.Stats()
		if st.Swarms == 1 && st.Seeders == 0 && st.Leechers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats after expiry = %+v; want 1 swarm with 1 leecher", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testConcurrent(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				ih := IH(i % 4)
				p := PeerAt(fmt.Sprintf("10.1.%d.%d:6881", w, i%50+1))
				p.Seeder = i%3 == 0
				var err error
				switch i % 5 {
				case 4:
					err = s.DeletePeer(ctx, ih, p.Addr)
				default:
					err = s.PutPeer(ctx, ih, p)
				}
				if err == nil {
					err = s.RangePeers(ctx, ih, false, func(tracker.Peer) bool { return true })
				}
				if err == nil {
					_, err = s.Counts(ctx, ih)
				}
				if err != nil {
					errs <- err
					return
				}
				s.Stats()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent use: %v", err)
	}
	// Each worker's last write per address decides: count them.
	want := map[string]bool{}
	for w := range 8 {
		for i := range 100 {
			if i%4 != 0 {
				continue // only IH(0)
			}
			a := fmt.Sprintf("10.1.%d.%d:6881", w, i%50+1)
			want[a] = i%5 != 4
		}
	}
	var wantAddrs []string
	for a, live := range want {
		if live {
			wantAddrs = append(wantAddrs, netip.MustParseAddrPort(a).String())
		}
	}
	slices.SortFunc(wantAddrs, func(a, b string) int {
		return netip.MustParseAddrPort(a).Compare(netip.MustParseAddrPort(b))
	})
	if got := addrs(Peers(t, s, IH(0), false)); !slices.Equal(got, wantAddrs) {
		t.Errorf("RangePeers(ih0) after concurrent writes = %d peers; want %d", len(got), len(wantAddrs))
	}
}

func testClosed(t *testing.T, newStore NewStoreFunc) {
	s := newStore(t, StoreTTL)
	mustPut(t, s, IH(1), PeerAt("10.0.0.1:6881"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}
	ctx := ctxT(t)
	p := PeerAt("10.0.0.2:6881")
	checks := map[string]error{
		"PutPeer":    s.PutPeer(ctx, IH(1), p),
		"DeletePeer": s.DeletePeer(ctx, IH(1), p.Addr),
		"RangePeers": s.RangePeers(ctx, IH(1), false, func(tracker.Peer) bool { return true }),
	}
	_, checks["Counts"] = s.Counts(ctx, IH(1))
	for name, err := range checks {
		if !errors.Is(err, tracker.ErrStoreClosed) {
			t.Errorf("%s after Close = %v; want ErrStoreClosed", name, err)
		}
	}
}
