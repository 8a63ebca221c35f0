package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// Object is one object in the swarm: a single file with an infohash.
type Object struct {
	c         *Client
	t         *torrent.Torrent
	ih        metainfo.Hash
	info      *metainfo.Info
	infoBytes []byte
	log       *slog.Logger

	origin          originSource // set once, before the fallback starts
	originOnce      sync.Once
	originBytes     atomic.Int64 // bytes this object got from the origin
	fallbackStarted atomic.Bool

	spreadOnce sync.Once
	spread     *spreader
}

type originSource struct {
	url  string
	want Validators
}

// InfoHash returns the object's infohash.
func (o *Object) InfoHash() metainfo.Hash { return o.ih }

// InfoBytes returns the bencoded info dict.
func (o *Object) InfoBytes() []byte { return o.infoBytes }

// Size returns the object size in bytes.
func (o *Object) Size() int64 { return o.info.Length }

// PieceLength returns the piece length in bytes.
func (o *Object) PieceLength() int64 { return o.info.PieceLength }

// NumPieces returns the number of pieces.
func (o *Object) NumPieces() int { return o.info.NumPieces() }

// Name returns the name in the info dict.
func (o *Object) Name() string { return o.info.Name }

// DataPath returns the path of the backing data file. Only verified pieces
// of it may be read.
func (o *Object) DataPath() string { return o.c.store.dataPath(o.ih) }

// Torrent returns the underlying torrent, for readers that need
// priorities and piece state.
func (o *Object) Torrent() *torrent.Torrent { return o.t }

// MetaInfo returns a .torrent for the object with the given trackers.
func (o *Object) MetaInfo(trackers []string) *metainfo.MetaInfo {
	mi := &metainfo.MetaInfo{InfoBytes: o.infoBytes, CreatedBy: "swarmfs"}
	if len(trackers) > 0 {
		mi.Announce = trackers[0]
		mi.AnnounceList = [][]string{trackers}
	}
	return mi
}

// AddPeers adds known peer addresses ("host:port").
func (o *Object) AddPeers(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	pis := make([]torrent.PeerInfo, 0, len(addrs))
	for _, a := range addrs {
		pis = append(pis, torrent.PeerInfo{Addr: torrent.StringAddr(a), Source: torrent.PeerSourceDirect})
	}
	o.t.AddPeers(pis)
}

// AddTrackers adds announce URLs (one tier, tried in turn).
func (o *Object) AddTrackers(urls []string) {
	if len(urls) > 0 {
		o.t.AddTrackers([][]string{urls})
	}
}

// DownloadAll asks for every piece at normal priority, and keeps a small
// window of this node's own random piece order at high priority (see
// spreader), so nodes that join together fetch different pieces first.
// Calling it again re-raises pieces that were lowered to none (paused).
func (o *Object) DownloadAll() {
	o.t.DownloadAll()
	if o.NumPieces() < 2 {
		return
	}
	o.spreadOnce.Do(func() {
		o.spread = newSpreader(o.t, o.NumPieces(), rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
		go o.spread.run(o.t.Closed())
	})
	o.spread.fill()
}

// Complete reports whether every piece is verified.
func (o *Object) Complete() bool { return o.t.Complete().Bool() }

// WaitComplete blocks until every piece is verified or ctx ends.
func (o *Object) WaitComplete(ctx context.Context) error {
	select {
	case <-o.t.Complete().On():
		return nil
	case <-o.c.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("wait for %s: %w (%d of %d bytes verified)", o.ih, ctx.Err(), o.VerifiedBytes(), o.info.Length)
	}
}

// ObjectStats are the transfer figures of one object.
type ObjectStats struct {
	Size           int64 `json:"size"`
	BytesCompleted int64 `json:"bytes_completed"` // bytes of verified pieces
	PeerBytes      int64 `json:"peer_bytes"`      // useful bytes from peers
	OriginBytes    int64 `json:"origin_bytes"`    // bytes from the origin (conversion or fallback)
	SentBytes      int64 `json:"sent_bytes"`      // data bytes uploaded to peers
	Peers          int   `json:"peers"`           // active connections
	Seeders        int   `json:"seeders"`
}

// Stats returns the object's transfer figures.
func (o *Object) Stats() ObjectStats {
	s := o.t.Stats()
	return ObjectStats{
		Size:           o.info.Length,
		BytesCompleted: o.VerifiedBytes(),
		PeerBytes:      s.PeerConns.BytesReadUsefulData.Int64(),
		OriginBytes:    o.originBytes.Load(),
		SentBytes:      s.BytesWrittenData.Int64(),
		Peers:          s.ActivePeers,
		Seeders:        s.ConnectedSeeders,
	}
}

// VerifiedBytes returns the bytes of verified pieces.
func (o *Object) VerifiedBytes() int64 {
	var n int64
	i := 0
	pl := o.info.PieceLength
	for _, run := range o.t.PieceStateRuns() {
		if run.Complete {
			n += min(int64(i+run.Length)*pl, o.info.Length) - int64(i)*pl
		}
		i += run.Length
	}
	return n
}

// Drop stops seeding the object and forgets it. Its data stays on disk.
func (o *Object) Drop() {
	o.c.mu.Lock()
	delete(o.c.objects, o.ih)
	o.c.mu.Unlock()
	o.t.Drop()
}
