package daemon

// The control API: node implements mountctl.Controller, and serveAPI
// serves it on the node's unix socket (and TCP, with a token).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"

	swarmfs "swarmfs/fs"
	"swarmfs/index"
	"swarmfs/mountctl"
	"swarmfs/swarm"
)

var _ mountctl.Controller = (*node)(nil)

// errNoMount is the answer to pin and unpin on a node without --mount.
var errNoMount = mountctl.Conflict(errors.New("pinning needs the node to run with --mount"))

// apiState is what the control API keeps on a node.
type apiState struct {
	// bg is the daemon's lifetime: work started by a request that must
	// outlive it (an add the caller stopped waiting for, the peer refresh
	// of a joined object) runs under it.
	bg      context.Context
	started time.Time
	cache   *index.Cache
	rates   rateSampler

	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup                // API work in flight
	watches map[string]context.CancelFunc // infohash → stops the watch of an object joined through the API
}

// begin registers API work; false once the API is shutting down.
func (a *apiState) begin() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.wg.Add(1)
	return true
}

func (a *apiState) end() { a.wg.Done() }

// close refuses new work and waits for the work in flight.
func (a *apiState) close() {
	a.mu.Lock()
	a.closed = true
	for _, cancel := range a.watches {
		cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// track remembers how to stop the watch of an object joined through the
// API (evict stops it), replacing an older one.
func (a *apiState) track(ih string, cancel context.CancelFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.watches[ih]; ok {
		old()
	}
	a.watches[ih] = cancel
}

func (a *apiState) untrack(ih string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cancel, ok := a.watches[ih]; ok {
		cancel()
		delete(a.watches, ih)
	}
}

var errShuttingDown = mountctl.Unavailable(errors.New("swarmfsd is shutting down"))

// serveAPI starts the control API; it stops when ctx ends or when the
// returned function is called (which waits for it).
func (n *node) serveAPI(ctx context.Context, reg prometheus.Registerer) (stop func(), err error) {
	cfg := n.cfg.API
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(n.cfg.StateDir, mountctl.SocketFileName)
	}
	srv, err := mountctl.NewServer(n, cfg, mountctl.WithLogger(n.log), mountctl.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	// Complete before the first request can arrive.
	n.api = &apiState{bg: ctx, started: time.Now(), cache: n.ix.NewCache(), watches: map[string]context.CancelFunc{}}
	if err := srv.Start(); err != nil {
		n.api.cache.Close()
		return nil, err
	}
	stopc, done := make(chan struct{}), make(chan struct{})
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.api.rates.run(ctx, n.client, stopc)
	}()
	go func() {
		defer n.wg.Done()
		defer close(done)
		select {
		case <-ctx.Done():
		case <-stopc:
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			n.log.Warn("control api shutdown", "err", err)
		}
		n.api.close()
		n.api.cache.Close()
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stopc) })
		<-done
	}, nil
}

// apiError turns the errors of the index and swarm packages into the API's
// typed errors; others pass unchanged (the server reports them as
// internal).
func apiError(err error) error {
	var (
		me *mountctl.Error
		oe *swarm.OriginError
		ue *url.Error
	)
	switch {
	case err == nil, errors.As(err, &me):
		return err
	case errors.Is(err, index.ErrInvalidPath):
		return mountctl.Invalid("path", err)
	case errors.Is(err, index.ErrNotFound):
		return mountctl.NotFound(err)
	case errors.Is(err, index.ErrExists), errors.Is(err, index.ErrConflict):
		return mountctl.Conflict(err)
	case errors.Is(err, index.ErrUnavailable), errors.Is(err, index.ErrSessionLost):
		return mountctl.Unavailable(err)
	case errors.As(err, &oe):
		return mountctl.OriginFailed(oe.Status, err)
	case errors.Is(err, swarm.ErrOriginChanged), errors.Is(err, swarm.ErrOriginLength):
		return mountctl.OriginFailed(0, err)
	case errors.As(err, &ue):
		// Only origin requests go through net/http here (etcd is gRPC):
		// the origin could not be reached.
		return mountctl.OriginFailed(0, err)
	case errors.Is(err, swarm.ErrClosed):
		return errShuttingDown
	case errors.Is(err, context.DeadlineExceeded):
		return mountctl.Timeout(err)
	}
	return err
}

func parseHash(ih string) (metainfo.Hash, bool) {
	var h metainfo.Hash
	return h, h.FromHexString(ih) == nil
}

// object describes rec with this node's view of it.
func (n *node) object(rec index.Record) mountctl.Object {
	o := mountctl.Object{
		Path: rec.Path, InfoHash: rec.InfoHash, Size: rec.Size, PieceLength: rec.PieceLength, Created: rec.Created,
		Source: mountctl.Source{
			Kind: string(rec.Source.Kind), URL: rec.Source.URL, ETag: rec.Source.ETag, LastModified: rec.Source.LastModified,
			File: rec.Source.File, Node: rec.Source.Node,
		},
		State: mountctl.StateAbsent,
	}
	if h, ok := parseHash(rec.InfoHash); ok {
		if so, ok := n.client.Object(h); ok {
			fillLocal(&o, so)
		}
	}
	if mnt := n.mnt.Load(); mnt != nil {
		o.Pinned = mnt.IsPinned(rec.InfoHash)
	}
	return o
}

// fillLocal adds a held object's figures to o.
func fillLocal(o *mountctl.Object, so *swarm.Object) {
	st := so.Stats()
	o.BytesCompleted, o.Peers, o.Seeders = st.BytesCompleted, st.Peers, st.Seeders
	o.PeerBytes, o.OriginBytes, o.SentBytes = st.PeerBytes, st.OriginBytes, st.SentBytes
	o.State = mountctl.StateDownloading
	if so.Complete() {
		o.State = mountctl.StateComplete
	}
	o.Progress = 1
	if o.Size > 0 {
		o.Progress = float64(o.BytesCompleted) / float64(o.Size)
	}
}

// joinTracked joins rec's swarm under a context that evict can cancel.
func (n *node) joinTracked(rec index.Record) (*swarm.Object, error) {
	ctx, cancel := context.WithCancel(n.api.bg)
	so, err := n.joinRecord(ctx, rec)
	if err != nil {
		cancel()
		return nil, err
	}
	so.DownloadAll()
	n.api.track(rec.InfoHash, cancel)
	return so, nil
}

// waitComplete waits until the held object ih is complete or ctx ends.
func (n *node) waitComplete(ctx context.Context, ih string) error {
	h, ok := parseHash(ih)
	if !ok {
		return fmt.Errorf("bad infohash %q", ih)
	}
	so, ok := n.client.Object(h)
	if !ok {
		return mountctl.NotFound(fmt.Errorf("%s is no longer held on this node", ih))
	}
	// Waiting ends with the daemon too, not only with the request.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.api.bg, cancel)()
	if err := so.WaitComplete(wctx); err != nil {
		switch {
		case ctx.Err() != nil:
			return mountctl.Timeout(err)
		case n.api.bg.Err() != nil:
			return errShuttingDown
		}
		return apiError(err)
	}
	return nil
}

// Add implements mountctl.Controller. The add runs under the daemon's
// lifetime: if the caller stops waiting, it still completes.
func (n *node) Add(ctx context.Context, req mountctl.AddRequest) (mountctl.Object, error) {
	if !n.api.begin() {
		return mountctl.Object{}, errShuttingDown
	}
	type result struct {
		rec index.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer n.api.end()
		octx, cancel := context.WithCancel(n.api.bg)
		rec, err := n.add(octx, req.Path, req.URL)
		if err != nil {
			cancel()
		} else {
			n.api.track(rec.InfoHash, cancel)
		}
		done <- result{rec, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return mountctl.Object{}, mountctl.Timeout(fmt.Errorf("add %s goes on in the background: %w", req.URL, ctx.Err()))
	}
	if r.err != nil {
		return mountctl.Object{}, apiError(r.err)
	}
	if req.Wait {
		if err := n.waitComplete(ctx, r.rec.InfoHash); err != nil {
			return mountctl.Object{}, err
		}
	}
	return n.object(r.rec), nil
}

// Publish implements mountctl.Controller: the file is hashed into storage,
// published as a "file" source and seeded.
func (n *node) Publish(ctx context.Context, req mountctl.PublishRequest) (mountctl.Object, error) {
	if !n.api.begin() {
		return mountctl.Object{}, errShuttingDown
	}
	defer n.api.end()
	if err := index.ValidatePath(req.Path); err != nil {
		return mountctl.Object{}, mountctl.Invalid("path", err)
	}
	held := map[metainfo.Hash]bool{}
	for _, o := range n.client.Objects() {
		held[o.InfoHash()] = true
	}
	so, err := n.client.Publish(ctx, req.File, path.Base(req.Path))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == req.File {
			return mountctl.Object{}, mountctl.Invalid("file", err)
		}
		return mountctl.Object{}, apiError(err)
	}
	ih := so.InfoHash().HexString()
	rec := index.Record{
		Path: req.Path, InfoHash: ih, Size: so.Size(), PieceLength: so.PieceLength(),
		Source: index.Source{Kind: index.SourceFile, File: req.File, Node: n.id},
	}
	pub, err := n.ix.Publish(ctx, rec, so.InfoBytes())
	if err != nil && !errors.Is(err, index.ErrExists) {
		if !held[so.InfoHash()] {
			n.drop(so)
		}
		return mountctl.Object{}, apiError(err)
	}
	so.AddTrackers(n.trackers)
	if err := n.reg.Hold(ctx, ih); err != nil {
		n.log.Warn("could not record held object", "infohash", ih, "err", err)
	}
	return n.object(pub), nil
}

// List implements mountctl.Controller from the index watch cache.
func (n *node) List(ctx context.Context, req mountctl.ListRequest) ([]mountctl.Object, error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.api.cache.WaitSynced(wctx); err != nil {
		return nil, mountctl.Unavailable(fmt.Errorf("the index is not loaded yet (etcd unreachable?): %w", err))
	}
	var out []mountctl.Object
	seen := map[string]bool{}
	add := func(rec index.Record) {
		o := n.object(rec)
		seen[o.InfoHash] = true
		if !req.Local || o.State != mountctl.StateAbsent {
			out = append(out, o)
		}
	}
	var walk func(dir string)
	walk = func(dir string) {
		ents, _ := n.api.cache.List(dir)
		for _, e := range ents {
			p := e.Name
			if dir != "" {
				p = dir + "/" + e.Name
			}
			if e.Dir {
				walk(p)
			} else {
				add(e.Record)
			}
		}
	}
	switch rec, ok := n.api.cache.Lookup(req.Prefix); {
	case req.Prefix == "":
		walk("")
	case ok:
		add(rec)
	default:
		walk(req.Prefix)
	}
	if req.Prefix == "" {
		// Held objects no path points to (old versions, --join).
		for _, so := range n.client.Objects() {
			ih := so.InfoHash().HexString()
			if seen[ih] {
				continue
			}
			o := mountctl.Object{InfoHash: ih, Size: so.Size(), PieceLength: so.PieceLength()}
			fillLocal(&o, so)
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Path == "") != (b.Path == "") {
			return b.Path == ""
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.InfoHash < b.InfoHash
	})
	return out, nil
}

// Stat implements mountctl.Controller.
func (n *node) Stat(ctx context.Context, p string) (mountctl.Object, error) {
	rec, err := n.ix.Get(ctx, p)
	if err != nil {
		return mountctl.Object{}, apiError(err)
	}
	return n.object(rec), nil
}

// Warm implements mountctl.Controller.
func (n *node) Warm(ctx context.Context, p string, wait bool) (mountctl.Object, error) {
	if !n.api.begin() {
		return mountctl.Object{}, errShuttingDown
	}
	defer n.api.end()
	rec, err := n.ix.Get(ctx, p)
	if err != nil {
		return mountctl.Object{}, apiError(err)
	}
	h, ok := parseHash(rec.InfoHash)
	if !ok {
		return mountctl.Object{}, fmt.Errorf("record of %s has a bad infohash %q", p, rec.InfoHash)
	}
	if so, ok := n.client.Object(h); ok {
		so.DownloadAll()
	} else if _, err := n.joinTracked(rec); err != nil {
		return mountctl.Object{}, apiError(err)
	}
	if wait {
		if err := n.waitComplete(ctx, rec.InfoHash); err != nil {
			return mountctl.Object{}, err
		}
	}
	return n.object(rec), nil
}

// Evict implements mountctl.Controller: the object is dropped from the
// swarm client and its data removed.
func (n *node) Evict(ctx context.Context, p string) (mountctl.Object, error) {
	if !n.api.begin() {
		return mountctl.Object{}, errShuttingDown
	}
	defer n.api.end()
	rec, err := n.ix.Get(ctx, p)
	if err != nil {
		return mountctl.Object{}, apiError(err)
	}
	if h, ok := parseHash(rec.InfoHash); ok {
		if so, ok := n.client.Object(h); ok {
			if err := n.drop(so); err != nil {
				return mountctl.Object{}, err
			}
			n.log.Info("evicted", "path", p, "infohash", rec.InfoHash)
		}
	}
	return n.object(rec), nil
}

// drop stops seeding so and removes its data.
func (n *node) drop(so *swarm.Object) error {
	ih := so.InfoHash().HexString()
	n.api.untrack(ih)
	dir := filepath.Dir(so.DataPath())
	so.Drop()
	if filepath.Base(dir) != ih {
		return fmt.Errorf("evict %s: unexpected data path %s", ih, so.DataPath())
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("evict %s: %w", ih, err)
	}
	return nil
}

// Delete implements mountctl.Controller.
func (n *node) Delete(ctx context.Context, p string, evict bool) (mountctl.DeleteResult, error) {
	if !n.api.begin() {
		return mountctl.DeleteResult{}, errShuttingDown
	}
	defer n.api.end()
	rec, err := n.ix.Get(ctx, p)
	if err != nil {
		return mountctl.DeleteResult{}, apiError(err)
	}
	res := mountctl.DeleteResult{Path: p, InfoHash: rec.InfoHash}
	if evict {
		if h, ok := parseHash(rec.InfoHash); ok {
			if so, ok := n.client.Object(h); ok {
				if err := n.drop(so); err != nil {
					return res, err
				}
				res.Evicted = true
			}
		}
	}
	if err := n.ix.Delete(ctx, p); err != nil {
		return res, apiError(err)
	}
	return res, nil
}

// Pin implements mountctl.Controller: the object is downloaded fully and
// locked in RAM.
func (n *node) Pin(ctx context.Context, p string) (mountctl.Object, error) {
	mnt := n.mnt.Load()
	if mnt == nil {
		return mountctl.Object{}, errNoMount
	}
	if !n.api.begin() {
		return mountctl.Object{}, errShuttingDown
	}
	defer n.api.end()
	rec, err := mnt.Pin(ctx, p)
	if err != nil {
		return mountctl.Object{}, pinError(err)
	}
	return n.object(rec), nil
}

// Unpin implements mountctl.Controller.
func (n *node) Unpin(ctx context.Context, p string) (mountctl.Object, error) {
	mnt := n.mnt.Load()
	if mnt == nil {
		return mountctl.Object{}, errNoMount
	}
	if err := mnt.Unpin(p); err != nil {
		return mountctl.Object{}, pinError(err)
	}
	rec, err := n.ix.Get(ctx, p)
	if err != nil {
		return mountctl.Object{}, apiError(err)
	}
	return n.object(rec), nil
}

func pinError(err error) error {
	if errors.Is(err, swarmfs.ErrMemlock) {
		return mountctl.Conflict(err)
	}
	return apiError(err)
}

// Status implements mountctl.Controller. It answers when etcd does not.
func (n *node) Status(ctx context.Context) (mountctl.NodeStatus, error) {
	st := n.client.Stats()
	s := mountctl.NodeStatus{
		ID: n.id, Version: swarm.Version, Started: n.api.started.UTC(), UptimeSeconds: time.Since(n.api.started).Seconds(),
		PeerAddr: n.client.Addr().String(), Rack: n.cfg.Rack, Zone: n.cfg.Zone,
		Objects: st.Objects, ObjectsComplete: st.ObjectsComplete, Peers: st.Peers,
		Rates: n.api.rates.rates(),
		Totals: mountctl.Totals{
			PeerBytes: st.PeerBytes, OriginBytes: st.OriginBytes, SentBytes: st.SentBytes,
			PiecesVerified: st.PiecesVerified, PiecesFailed: st.PiecesFailed, OriginFallbacks: st.OriginFallbacks,
		},
		Disk:     diskUse(n.cfg.Swarm.DataDir),
		Etcd:     mountctl.EtcdHealth{Endpoints: n.cfg.Index.Endpoints, Healthy: true},
		Trackers: n.trackers,
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s.TrackerHealth = n.trackerHealth(hctx)
	if err := n.ix.Healthy(hctx); err != nil {
		s.Etcd.Healthy, s.Etcd.Error = false, err.Error()
	}
	return s, nil
}

// trackerHealth asks every tracker's /healthz (same scheme and host as
// its announce URL), concurrently.
func (n *node) trackerHealth(ctx context.Context) []mountctl.TrackerHealth {
	out := make([]mountctl.TrackerHealth, len(n.trackers))
	var wg sync.WaitGroup
	for i, raw := range n.trackers {
		out[i].URL = raw
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := url.Parse(raw)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Scheme+"://"+u.Host+"/healthz", nil)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp.Body.Close()
			out[i].Healthy = resp.StatusCode == http.StatusOK
			if !out[i].Healthy {
				out[i].Error = resp.Status
			}
		}()
	}
	wg.Wait()
	return out
}

// Nodes implements mountctl.Controller.
func (n *node) Nodes(ctx context.Context) ([]mountctl.Node, error) {
	nodes, err := n.ix.Nodes(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	out := make([]mountctl.Node, 0, len(nodes))
	for _, x := range nodes {
		out = append(out, mountctl.Node{
			ID: x.ID, PeerAddr: x.PeerAddr, Rack: x.Rack, Zone: x.Zone, Version: x.Version, Started: x.Started,
			Live: true, Self: x.ID == n.id,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Zone+"\x00"+a.Rack+"\x00"+a.ID < b.Zone+"\x00"+b.Rack+"\x00"+b.ID
	})
	return out, nil
}

// diskUse measures the data dir: allocated bytes of its files, and its
// file system's size and free space.
func diskUse(dir string) mountctl.Disk {
	d := mountctl.Disk{DataDir: dir}
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				d.UsedBytes += st.Blocks * 512
			} else {
				d.UsedBytes += fi.Size()
			}
		}
		return nil
	})
	var sfs syscall.Statfs_t
	if syscall.Statfs(dir, &sfs) == nil {
		d.TotalBytes = sfs.Blocks * uint64(sfs.Bsize)
		d.FreeBytes = sfs.Bavail * uint64(sfs.Bsize)
	}
	return d
}

// rateSampler keeps the last few seconds of the client's byte counters.
type rateSampler struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at                 time.Time
	peer, origin, sent int64
}

const rateWindow = 5 // seconds

func (r *rateSampler) run(ctx context.Context, c *swarm.Client, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st := c.Stats()
		r.mu.Lock()
		r.samples = append(r.samples, rateSample{at: time.Now(), peer: st.PeerBytes, origin: st.OriginBytes, sent: st.SentBytes})
		if len(r.samples) > rateWindow+1 {
			r.samples = r.samples[1:]
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (r *rateSampler) rates() mountctl.Rates {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 2 {
		return mountctl.Rates{}
	}
	a, b := r.samples[0], r.samples[len(r.samples)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return mountctl.Rates{}
	}
	return mountctl.Rates{
		PeerBytesPerSec:   float64(b.peer-a.peer) / dt,
		OriginBytesPerSec: float64(b.origin-a.origin) / dt,
		SentBytesPerSec:   float64(b.sent-a.sent) / dt,
	}
}
