package tracker

import (
	"context"
	"errors"
	"net/netip"

	"github.com/anacrolix/torrent/metainfo"
)

// ErrStoreClosed is returned by a PeerStore after Close.
var ErrStoreClosed = errors.New("tracker: peer store closed")

// Peer is one member of a swarm as the tracker knows it.
type Peer struct {
	// Addr is where the peer accepts BitTorrent connections. It identifies
	// the peer within its swarm. IPv4-mapped IPv6 addresses are stored as
	// IPv4.
	Addr netip.AddrPort
	// ID is the peer_id of the client's last announce.
	ID [20]byte
	// Seeder reports that the peer has the whole object (left=0).
	Seeder bool
	// Completed reports that the peer announced event=completed while
	// registered, i.e. it downloaded the object through the swarm.
	Completed bool
	// Rack and Zone are the peer's location labels; "" means unknown
	// (third-party clients send none).
	Rack, Zone string
}

// SwarmCounts are the sizes of one swarm, over both address families.
type SwarmCounts struct {
	Seeders, Leechers int
	// Completed counts live peers with Completed set (BEP 48
	// "downloaded", limited to peers still registered).
	Completed int
}

// StoreStats describe all swarms of a store, for metrics.
type StoreStats struct {
	Swarms, Seeders, Leechers int
	// SwarmSizes holds the peer count of each live swarm, in no order.
	SwarmSizes []int
}

// PeerStore keeps the peers of every swarm. The tracker declares it; this
// package provides an in-memory implementation (NewMemoryStore) and an
// etcd-backed one (NewEtcdStore), and trackertest.TestPeerStore checks
// these invariants on any implementation:
//
//   - Identity. Within a swarm a peer is identified by its address (IP and
//     port). PutPeer for an address already present replaces ID, Seeder,
//     Rack and Zone, and refreshes the peer's expiry. Completed is sticky:
//     once set it stays set until the peer expires or is deleted.
//   - Expiry. A peer that is not refreshed by PutPeer for the store's TTL is
//     no longer returned by RangePeers nor counted by Counts or Stats. The
//     store removes expired peers and empty swarms itself; callers never
//     have to collect garbage.
//   - Address families. IPv4 and IPv6 peers are kept apart: RangePeers with
//     v6=false yields only IPv4 peers, with v6=true only IPv6 ones. Counts
//     and Stats cover both.
//   - Seeders and leechers. Counts reports each live peer once, in the role
//     of its last PutPeer. A leecher that becomes a seeder moves from one
//     count to the other.
//   - Deletion. DeletePeer removes the peer at once; deleting an unknown
//     peer is not an error.
//   - Visibility. A write is visible to reads through the same store as
//     soon as the call returns. Stores that share state (several replicas
//     on one etcd) make it visible to the others after a propagation delay
//     that the implementation documents.
//   - Concurrency. All methods are safe for concurrent use. The yield
//     function of RangePeers must not call back into the store.
//   - Errors. After Close every method with an error result returns
//     ErrStoreClosed (Stats returns what is left). A shared
//     store may accept a write locally and persist it asynchronously; it
//     then reports persistence failures through metrics and logs, and
//     returns an error only when it cannot accept the write at all.
type PeerStore interface {
	// PutPeer adds p to swarm ih or refreshes it.
	PutPeer(ctx context.Context, ih metainfo.Hash, p Peer) error
	// DeletePeer removes the peer at addr from swarm ih.
	DeletePeer(ctx context.Context, ih metainfo.Hash, addr netip.AddrPort) error
	// RangePeers calls yield for each live peer of swarm ih in one address
	// family, in unspecified order, until yield returns false.
	RangePeers(ctx context.Context, ih metainfo.Hash, v6 bool, yield func(Peer) bool) error
	// Counts returns the sizes of swarm ih (zero for an unknown swarm).
	Counts(ctx context.Context, ih metainfo.Hash) (SwarmCounts, error)
	// Stats returns the sizes of all swarms.
	Stats() StoreStats
	// Close releases the store's resources.
	Close() error
}

// normalizeAddr unmaps IPv4-mapped IPv6 addresses and drops zones.
func normalizeAddr(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}
