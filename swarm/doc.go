// Package swarm is swarmfs's BitTorrent engine, a wrapper over
// github.com/anacrolix/torrent that the rest of the system uses.
//
// A Client converts an HTTP origin object or a local file into an object
// (a single-file torrent), joins the swarms of objects converted elsewhere,
// and seeds everything it holds. Every node seeds (Seed=true), there is no
// DHT and no UPnP, and only TCP is used unless Config.EnableUTP is set.
//
// # Recipe
//
//	c, err := swarm.New(swarm.Config{DataDir: "/var/lib/swarmfs/data"},
//		swarm.WithLogger(log), swarm.WithRegisterer(reg))
//	// On the converting node: one GET, pieces hashed as bytes arrive.
//	conv, err := c.Convert(ctx, swarm.ConvertSpec{URL: "http://origin/img.qcow2"})
//	info := conv.InfoBytes() // publish these (the index stores them)
//
//	// On any other node:
//	o, err := c.Join(ctx, swarm.JoinSpec{InfoBytes: info,
//		Peers: []string{"10.0.0.1:6881"}, OriginURL: "http://origin/img.qcow2",
//		Origin: conv.Source})
//	o.DownloadAll()
//	err = o.WaitComplete(ctx)
//
// # Storage and integrity
//
// Data lives in <DataDir>/<infohash>/data; piece completion persists in a
// bolt database in DataDir. Part files are off, so completion never comes
// from a file's name or size: a node trusts only pieces it verified itself
// (or hashed while converting). Pieces with unknown completion, such as
// those of a file dropped into the data dir, are hashed before use. Pieces
// from peers are verified before they count as complete or are uploaded, and
// a peer that alone supplied a piece that fails its hash is banned. A failed
// conversion leaves nothing behind: it streams into DataDir/.tmp and only a
// complete, hashed file is moved into place.
//
// # Origin fallback
//
// See fallback.go: the origin is read only after StallTimeout without useful
// peer bytes, piece by piece, through one rate limiter (OriginRate), and
// only while the stall lasts. anacrolix web seeds are disabled because they
// cannot be removed once added and compete with peers.
//
// # Piece order
//
// DownloadAll asks for every piece, and keeps a rolling window of a quarter
// of the pieces, in this node's own random order, at high priority (see
// spread.go). anacrolix breaks rarest-first ties by piece index, so without
// it nodes that join together all ask the source for the same pieces.
// Reads raise the pieces they need above the window and pause it while
// they wait.
//
// # Working around anacrolix v1.61
//
//   - Upload and download caps are applied on our own shaped TCP sockets
//     (shaping.go), not through anacrolix's rate limiters, which stall
//     connections.
//   - anacrolix's connection writer can miss a wake-up and sleep until its
//     keep-alive timer; the timer is set to 250 ms to bound such a stall
//     (torrentConfig).
//
// # Metrics
//
// With WithRegisterer the Client registers a collector that reads its
// figures at scrape time (swarmfs_swarm_*): bytes received by source (peer,
// origin), bytes sent, pieces verified and failed, peers, objects and bytes
// by state, origin fallbacks, and a conversion duration histogram. No series
// carries a per-object label.
package swarm
