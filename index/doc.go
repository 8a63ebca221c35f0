// Package index is swarmfs's namespace on etcd: named objects, their
// versions and info bytes, convert-once elections, and the node registry.
// Every key lives under one prefix (Config.Prefix, default /swarmfs/):
//
//	objects/<path>              current Record of a path (JSON)
//	versions/<path>/<infohash>  every Record of a path, immutable
//	info/<infohash>             bencoded info dict (about 20 B per piece)
//	sources/<key>               Record converted from a URL+validators
//	convert/<key>               election: who converts that source
//	nodes/<id>                  live node (leased)
//	holders/<infohash>/<id>     peer address of a node seeding it (leased)
//
// Writes that create records are single transactions with create-if-absent
// conditions, so racing writers get ErrExists and readers never see half a
// publication. A new origin version (new ETag or Last-Modified) is a new
// record and infohash; the path then points at it, and old versions stay
// readable until deleted.
//
// # Recipe
//
//	ix, err := index.Open(ctx, index.Config{Endpoints: []string{"http://127.0.0.1:2379"}})
//	rec, converted, err := ix.ConvertOnce(ctx, "images/a.qcow2", src, nodeID,
//		func(ctx context.Context) (index.Record, []byte, error) { /* stream, hash, seed */ })
//	cache := ix.NewCache() // watch-fed namespace for the filesystem
//	entries, ok := cache.List("images")
//
// ConvertOnce looks the source up, and otherwise campaigns in an etcd
// election while watching for the record; the winner converts and
// publishes, the others return the winner's record. A winner that dies
// loses its session after SessionTTL and another campaigner takes over.
//
// StartEmbedded runs a single etcd member in-process, the one-machine
// default of swarmfsd; indextest starts real multi-member clusters for
// tests.
package index
