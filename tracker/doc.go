// Package tracker is swarmfs's BitTorrent HTTP tracker: stateless replicas
// that share swarms through etcd and hand out peers by rack and zone.
//
// # Protocol
//
// GET /announce (BEP 3) registers the caller and returns peers, compact
// (BEP 23, the default; IPv6 peers in "peers6", BEP 7) or as a list of
// dicts with compact=0. numwant is honoured up to Config.MaxNumWant;
// event=stopped removes the peer, event=completed marks it as having
// downloaded the object. Responses carry "interval" and "min interval",
// "complete" and "incomplete". GET /scrape (BEP 48) returns complete,
// incomplete and downloaded for up to Config.MaxScrapeInfoHashes
// info_hash values; a full scrape is refused. Errors the client caused get
// a bencoded "failure reason" with status 200 (400 for an oversized query);
// the handler never panics on input (see FuzzParseAnnounce).
//
// The peer address is the request's source address and the port
// parameter. The "ip" parameter is ignored unless Config.TrustIPParam is
// set, so nobody can register another host; behind a reverse proxy set
// Config.ClientIPHeader.
//
// # Private mode
//
// By default only infohashes in the index are tracked: a Registry answers
// Known(infohash), and EtcdRegistry checks <prefix>info/<infohash hex>.
// Unknown infohashes get "unregistered torrent" and are left out of scrapes.
// Config.Public turns this off.
//
// # Locality
//
// Nodes append their labels to the announce URL they are given, e.g.
// http://tracker:6969/announce?rack=r12&zone=eu1; BitTorrent clients keep
// such parameters (anacrolix/torrent and aria2 append theirs after them).
// A response lists peers of the same rack first, then the same zone, then
// the rest, each tier in random order, with at most
// Config.MaxCrossZonePeers peers from other known zones. Peers without
// labels (third-party clients) are served and returned in the last tier.
// A seeder gets only leechers; nobody gets itself.
//
// # Peer store and HA
//
// PeerStore is the storage contract, with its invariants on the interface.
// MemoryStore is for a single tracker. EtcdStore lets any number of
// replicas serve any swarm: peers are leased etcd keys written in batches,
// and each replica reads a local view fed by a watch. Killing a replica
// loses no swarm: its peers stay in etcd until their lease runs out, and
// clients that list several tracker URLs keep announcing to the others.
// trackertest.TestPeerStore checks any implementation.
//
// # Running
//
// Run wires it all: flags from Config.AddFlags, one etcd client, the store,
// the registry, the HTTP server with /metrics and /healthz. Embedding in
// another process takes a store, a registry and New:
//
//	store := tracker.NewMemoryStore(90 * time.Second)
//	srv, err := tracker.New(tracker.Config{Public: true}, store, nil,
//		tracker.WithLogger(log), tracker.WithRegisterer(reg))
//	mux.Handle("/", srv.Handler()) // serves /announce and /scrape
//
// Metrics are swarmfs_tracker_*: announces and scrapes by result, peers
// returned by tier, request latency, swarm and peer counts and the
// swarm-size distribution (no per-infohash labels), and the etcd store's
// request latency, batch sizes, errors and queue length.
package tracker
