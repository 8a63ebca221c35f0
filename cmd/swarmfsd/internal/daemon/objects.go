package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	swarmfs "swarmfs/fs"
	"swarmfs/index"
	"swarmfs/swarm"
)

// startup resumes held objects, then handles the command-line objects.
func (n *node) startup(ctx context.Context) error {
	n.resume(ctx)
	for _, file := range n.cfg.Publish {
		o, err := n.client.Publish(ctx, file, "")
		if err != nil {
			return err
		}
		o.AddTrackers(n.trackers)
		if err := writeMetainfo(n.cfg.MetainfoDir, o, n.cfg.Trackers); err != nil {
			return err
		}
	}
	for _, u := range n.cfg.Convert {
		conv, err := n.client.Convert(ctx, swarm.ConvertSpec{URL: u})
		if err != nil {
			return err
		}
		conv.AddTrackers(n.trackers)
		if err := writeMetainfo(n.cfg.MetainfoDir, conv.Object, n.cfg.Trackers); err != nil {
			return err
		}
	}
	for _, file := range n.cfg.Join {
		if err := n.joinFile(ctx, file); err != nil {
			return err
		}
	}
	for _, a := range n.cfg.Add {
		path, u := splitAdd(a)
		if _, err := n.add(ctx, path, u); err != nil {
			return err
		}
	}
	return nil
}

// splitAdd parses "URL" or "PATH=URL".
func splitAdd(s string) (path, rawURL string) {
	if p, u, ok := strings.Cut(s, "="); ok && !strings.Contains(p, "://") {
		return p, u
	}
	return "", s
}

// add makes the origin object at rawURL available at path on this node:
// it is converted once in the cluster (maybe here) and downloaded here.
func (n *node) add(ctx context.Context, path, rawURL string) (index.Record, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return index.Record{}, fmt.Errorf("add %q: not an http(s) url", rawURL)
	}
	if path == "" {
		path = strings.TrimPrefix(u.Path, "/")
	}
	if err := index.ValidatePath(path); err != nil {
		return index.Record{}, fmt.Errorf("add %s: %w", rawURL, err)
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.Swarm.OriginTimeout+time.Second)
	v, err := swarm.Head(hctx, n.http, rawURL)
	cancel()
	if err != nil {
		return index.Record{}, fmt.Errorf("add %s: %w", rawURL, err)
	}
	src := index.Source{Kind: index.SourceURL, URL: rawURL, ETag: v.ETag, LastModified: v.LastModified, ContentLength: v.Size}
	var seeded *swarm.Object
	rec, converted, err := n.ix.ConvertOnce(ctx, path, src, n.id, func(ctx context.Context) (index.Record, []byte, error) {
		conv, err := n.client.Convert(ctx, swarm.ConvertSpec{URL: rawURL, Expect: &v})
		if err != nil {
			return index.Record{}, nil, err
		}
		seeded = conv.Object
		// Be findable before the record appears: joiners look for holders
		// as soon as they see it.
		if err := n.reg.Hold(ctx, conv.InfoHash().HexString()); err != nil {
			n.log.Warn("could not record held object", "infohash", conv.InfoHash().HexString(), "err", err)
		}
		return index.Record{
			InfoHash: conv.InfoHash().HexString(), Size: conv.Size(), PieceLength: conv.PieceLength(),
		}, conv.InfoBytes(), nil
	})
	if err != nil {
		return index.Record{}, fmt.Errorf("add %s: %w", rawURL, err)
	}
	if converted && seeded != nil {
		seeded.AddTrackers(n.trackers)
		n.saveRecord(rec)
		return rec, nil
	}
	o, err := n.joinRecord(ctx, rec)
	if err != nil {
		return index.Record{}, fmt.Errorf("add %s: %w", rawURL, err)
	}
	o.DownloadAll()
	return rec, nil
}

// Object implements fs.Objects: the object of rec, joined if needed.
// Downloading is left to the caller (readers, background policy).
func (n *node) Object(ctx context.Context, rec index.Record) (*swarm.Object, error) {
	var h metainfo.Hash
	if err := h.FromHexString(rec.InfoHash); err != nil {
		return nil, fmt.Errorf("object %s: bad infohash: %w", rec.Path, err)
	}
	if o, ok := n.client.Object(h); ok {
		return o, nil
	}
	return n.joinRecord(ctx, rec)
}

// joinRecord downloads and seeds the object of rec.
func (n *node) joinRecord(ctx context.Context, rec index.Record) (*swarm.Object, error) {
	info, err := n.ix.Info(ctx, rec.InfoHash)
	if err != nil {
		return nil, err
	}
	peers, err := n.ix.Holders(ctx, rec.InfoHash)
	if err != nil {
		n.log.Warn("no peer list from the index", "infohash", rec.InfoHash, "err", err)
	}
	spec := swarm.JoinSpec{InfoBytes: info, Trackers: n.trackers, Peers: n.notSelf(peers)}
	if rec.Source.Kind == index.SourceURL {
		spec.OriginURL = rec.Source.URL
		spec.Origin = swarm.Validators{ETag: rec.Source.ETag, LastModified: rec.Source.LastModified, Size: rec.Size}
	}
	o, err := n.client.Join(ctx, spec)
	if err != nil {
		return nil, err
	}
	n.saveRecord(rec)
	// Seed while downloading: others may fetch what this node has.
	if err := n.reg.Hold(ctx, rec.InfoHash); err != nil {
		n.log.Warn("could not record held object", "infohash", rec.InfoHash, "err", err)
	}
	n.watch(o, rec.InfoHash)
	return o, nil
}

// watch logs completion and refreshes peers from the index until then,
// or until the node stops (never a request's context: it outlives them).
func (n *node) watch(o *swarm.Object, ih string) {
	ctx := n.ctx
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		start := time.Now()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		done := make(chan error, 1)
		go func() { done <- o.WaitComplete(ctx) }()
		for {
			select {
			case <-o.Torrent().Closed(): // evicted or dropped
				return
			case err := <-done:
				if err == nil {
					st := o.Stats()
					n.log.Info("object complete", "infohash", ih, "duration", time.Since(start),
						"peer_bytes", st.PeerBytes, "origin_bytes", st.OriginBytes)
				}
				return
			case <-tick.C:
				if peers, err := n.ix.Holders(ctx, ih); err == nil {
					o.AddPeers(n.notSelf(peers))
				}
			}
		}
	}()
}

func (n *node) notSelf(peers []string) []string {
	self := n.client.Addr().String()
	out := peers[:0:0]
	for _, p := range peers {
		if p != self {
			out = append(out, p)
		}
	}
	return out
}

// resume seeds (and completes) the objects already in the data dir whose
// info the index still has. Pieces are trusted only as the persisted
// completion says; unknown ones are hashed.
func (n *node) resume(ctx context.Context) {
	ents, err := os.ReadDir(n.cfg.Swarm.DataDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		ih := e.Name()
		var h metainfo.Hash
		if !e.IsDir() || len(ih) != 40 || h.FromHexString(ih) != nil {
			continue
		}
		rec := n.loadRecord(ih)
		o, err := n.joinRecord(ctx, rec)
		if err != nil {
			if !errors.Is(err, index.ErrNotFound) {
				n.log.Warn("cannot resume object", "infohash", ih, "err", err)
			}
			continue
		}
		if n.cfg.FS.Background != swarmfs.BackgroundNever {
			o.DownloadAll()
		}
		n.log.Info("resumed object", "infohash", ih, "path", rec.Path)
	}
}

func (n *node) joinFile(ctx context.Context, file string) error {
	mi, err := metainfo.LoadFromFile(file)
	if err != nil {
		return fmt.Errorf("join %s: %w", file, err)
	}
	trackers := append([]string(nil), n.trackers...)
	for _, tier := range mi.UpvertedAnnounceList() {
		trackers = append(trackers, tier...)
	}
	o, err := n.client.Join(ctx, swarm.JoinSpec{InfoBytes: mi.InfoBytes, Trackers: trackers, Peers: n.cfg.Peers, OriginURL: n.cfg.Origin})
	if err != nil {
		return fmt.Errorf("join %s: %w", file, err)
	}
	o.DownloadAll()
	n.watch(o, o.InfoHash().HexString())
	return nil
}

// writeMetainfo writes dir/<infohash>.torrent atomically.
func writeMetainfo(dir string, o *swarm.Object, trackers []string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("metainfo dir: %w", err)
	}
	dst := filepath.Join(dir, o.InfoHash().HexString()+".torrent")
	f, err := os.CreateTemp(dir, ".torrent-*")
	if err != nil {
		return fmt.Errorf("write metainfo: %w", err)
	}
	defer os.Remove(f.Name())
	if err := o.MetaInfo(trackers).Write(f); err != nil {
		f.Close()
		return fmt.Errorf("write metainfo: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write metainfo: %w", err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("write metainfo: %w", err)
	}
	return nil
}

// pinWhenPresent pins path once it is in the namespace.
func (n *node) pinWhenPresent(ctx context.Context, mnt *swarmfs.FS, cache *index.Cache, path string) {
	for {
		if _, ok := cache.Lookup(path); ok {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	if _, err := mnt.Pin(ctx, path); err != nil && ctx.Err() == nil {
		n.log.Error("pin failed", "path", path, "err", err)
	}
}

// Records of held objects are kept in <state-dir>/records so a restarted
// node resumes them with their origin (for the fallback) and path.
func (n *node) recordPath(ih string) string {
	return filepath.Join(n.cfg.StateDir, "records", ih+".json")
}

func (n *node) saveRecord(rec index.Record) {
	if rec.Path == "" {
		return // nothing more than the infohash is known
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(n.recordPath(rec.InfoHash)), 0o750)
	}
	if err == nil {
		err = os.WriteFile(n.recordPath(rec.InfoHash), b, 0o640)
	}
	if err != nil {
		n.log.Warn("could not keep the object's record for restarts", "infohash", rec.InfoHash, "err", err)
	}
}

func (n *node) loadRecord(ih string) index.Record {
	var rec index.Record
	if b, err := os.ReadFile(n.recordPath(ih)); err == nil && json.Unmarshal(b, &rec) == nil && rec.InfoHash == ih {
		return rec
	}
	return index.Record{InfoHash: ih}
}
