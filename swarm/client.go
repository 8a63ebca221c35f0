package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/dialer"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Version is the swarmfs version, set at build time with -ldflags -X.
var Version = "dev"

// Client is one node's BitTorrent engine: it converts origins and local
// files into objects, joins swarms and seeds everything it holds.
type Client struct {
	cfg    Config
	log    *slog.Logger
	cl     *torrent.Client
	store  *store
	origin *http.Client

	shaped        net.Listener // our TCP listener when caps are set
	originLimiter *rate.Limiter
	originBytes   atomic.Int64 // conversion and fallback bytes
	fallbacks     atomic.Int64 // stalls that started an origin fallback
	convDuration  prometheus.Histogram

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	objects map[metainfo.Hash]*Object
	// converting serialises conversions of the same URL in this process.
	converting map[string]*sync.Mutex
}

// Option sets an injected collaborator of a Client.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the Client's metrics on reg (default: none).
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// New starts a Client: it opens the data dir and listens for peers.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	log := o.log.With("component", "swarm")
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	// Scratch files of conversions cut off by a crash are never trusted.
	if err := os.RemoveAll(st.tmpDir()); err != nil {
		st.Close()
		return nil, fmt.Errorf("clean conversion scratch dir: %w", err)
	}
	var shaped net.Listener
	tcfg, err := torrentConfig(cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	cl, err := torrent.NewClient(tcfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("start torrent client on %s: %w", cfg.ListenAddr, err)
	}
	if tcfg.DisableTCP {
		ln, d, err := shapedTCP(cfg.ListenAddr, newLimiter(cfg.UploadRate), newLimiter(cfg.DownloadRate))
		if err != nil {
			cl.Close()
			st.Close()
			return nil, err
		}
		cl.AddListener(ln)
		cl.AddDialer(dialer.WithNetwork{Network: "tcp", Dialer: d})
		shaped = ln
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		shaped:        shaped,
		cfg:           cfg,
		log:           log,
		cl:            cl,
		store:         st,
		origin:        newOriginHTTPClient(cfg.OriginTimeout),
		originLimiter: rate.NewLimiter(rate.Limit(cfg.OriginRate), int(min(cfg.OriginRate, 1<<20))),
		ctx:           ctx,
		cancel:        cancel,
		objects:       map[metainfo.Hash]*Object{},
		converting:    map[string]*sync.Mutex{},
		convDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "swarmfs_swarm_conversion_duration_seconds",
			Help:    "Time to convert an origin object or local file into a seeded object.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
	}
	if o.reg != nil {
		if err := o.reg.Register(newCollector(c)); err != nil {
			c.Close()
			return nil, fmt.Errorf("register swarm metrics: %w", err)
		}
	}
	log.Info("swarm client started", "config", cfg, "peer_addr", c.Addr())
	return c, nil
}

// writerWakeInterval bounds how long a connection writer that missed a
// wake-up sleeps (see torrentConfig).
const writerWakeInterval = 250 * time.Millisecond

func torrentConfig(cfg Config, st *store, log *slog.Logger) (*torrent.ClientConfig, error) {
	tc := torrent.NewDefaultClientConfig()
	host, port, _ := net.SplitHostPort(cfg.ListenAddr)
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("swarm config: listen port %q is invalid", port)
	}
	tc.ListenHost = func(string) string { return host }
	tc.ListenPort = p
	v4, v6 := cfg.listenIPFamilies()
	tc.DisableIPv4, tc.DisableIPv6 = !v4, !v6
	tc.DataDir = cfg.DataDir
	tc.DefaultStorage = st
	// Upload even to peers that give nothing back: every node serves the
	// swarm (tit-for-tat would stop at 100 KiB ahead).
	tc.Seed = true
	tc.NoDHT = true
	tc.NoDefaultPortForwarding = true
	tc.DisableUTP = !cfg.EnableUTP
	tc.DisableWebseeds = true // the origin fallback replaces web seeds
	tc.DialRateLimiter = rate.NewLimiter(rate.Limit(cfg.DialRate), cfg.DialRate)
	tc.EstablishedConnsPerTorrent = cfg.MaxConnsPerObject
	tc.HalfOpenConnsPerTorrent = cfg.HalfOpenPerObject
	tc.TotalHalfOpenConns = max(tc.TotalHalfOpenConns, 4*cfg.HalfOpenPerObject)
	// Datacenter links: plaintext is preferred (less CPU), encryption is
	// still accepted from third-party clients.
	tc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	// anacrolix v1.61's connection writer can miss a wake-up: it collects
	// what to send (fillWriteBuffer), then takes the channel to wait on,
	// and a chunk readied or a request update flagged in between signals
	// nobody. The writer then sleeps until its keep-alive timer, and
	// when both ends of a connection miss one, the transfer stops for
	// the whole timeout (1 min by default). Seen as a stuck download on a
	// loaded machine. The timer is re-armed after every write and a
	// wanted connection writes a keep-alive when it fires, so a short
	// timeout bounds such a stall; idle connections pay a 4-byte
	// keep-alive per interval.
	tc.KeepAliveTimeout = writerWakeInterval
	tc.Slogger = log.With("lib", "anacrolix")
	tc.ExtendedHandshakeClientVersion = "swarmfs/" + Version
	tc.HTTPUserAgent = "swarmfs/" + Version
	// With caps, TCP goes through shaped sockets added after the client
	// starts (see shaping.go).
	tc.DisableTCP = cfg.UploadRate > 0 || cfg.DownloadRate > 0
	return tc, nil
}

// Addr returns the address peers reach this client on.
func (c *Client) Addr() netip.AddrPort {
	for _, a := range c.cl.ListenAddrs() {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap
		}
	}
	return netip.AddrPort{}
}

// WriteStatus writes the BitTorrent engine's own status report (every
// object, connection and request) to w, for debugging.
func (c *Client) WriteStatus(w io.Writer) { c.cl.WriteStatus(w) }

// Close stops all transfers and closes storage. Objects become unusable.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	var errs []error
	errs = append(errs, c.cl.Close()...)
	if c.shaped != nil {
		c.shaped.Close()
	}
	if err := c.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close storage: %w", err))
	}
	return errors.Join(errs...)
}

// Object returns the object with infohash ih if this client holds it.
func (c *Client) Object(ih metainfo.Hash) (*Object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.objects[ih]
	return o, ok
}

// Objects returns every object this client holds.
func (c *Client) Objects() []*Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Object, 0, len(c.objects))
	for _, o := range c.objects {
		out = append(out, o)
	}
	return out
}

// JoinSpec says how to find an object's swarm.
type JoinSpec struct {
	// InfoBytes is the bencoded info dict of the object (required).
	InfoBytes []byte
	// Trackers are announce URLs, tried as one tier.
	Trackers []string
	// Peers are known peer addresses ("host:port").
	Peers []string
	// OriginURL, if set, is read after a stall (see Config.StallTimeout).
	OriginURL string
	// Origin holds the validators the origin must still match.
	Origin Validators
}

// Join adds the object described by spec and starts finding peers. It does
// not download anything until asked (Object.DownloadAll, or readers).
func (c *Client) Join(ctx context.Context, spec JoinSpec) (*Object, error) {
	info, err := c.parseInfo(spec.InfoBytes)
	if err != nil {
		return nil, err
	}
	ih := metainfo.HashBytes(spec.InfoBytes)
	if spec.Origin.Size == 0 && spec.Origin.ETag == "" && spec.Origin.LastModified == "" {
		spec.Origin.Size = info.Length
	}
	if _, err := os.Stat(c.store.dataPath(ih)); errors.Is(err, os.ErrNotExist) {
		// No data on disk: every piece is known to be missing, so skip the
		// initial hash check. Existing data is left to the persisted
		// completion, and pieces it does not know are hashed.
		if err := c.store.setCompletion(ih, info.NumPieces(), false); err != nil {
			return nil, fmt.Errorf("join %s: %w", ih, err)
		}
		if err := c.store.preallocate(ih, info.Length); err != nil {
			return nil, fmt.Errorf("join %s: %w", ih, err)
		}
	}
	if o, ok := c.Object(ih); ok {
		// Already held: its origin and fallback are set; only add peers.
		o.AddTrackers(spec.Trackers)
		o.AddPeers(spec.Peers)
		return o, nil
	}
	o, err := c.addObject(ctx, ih, spec.InfoBytes, info)
	if err != nil {
		return nil, err
	}
	o.originOnce.Do(func() { o.origin = originSource{url: spec.OriginURL, want: spec.Origin} })
	o.AddTrackers(spec.Trackers)
	o.AddPeers(spec.Peers)
	if spec.OriginURL != "" && !c.cfg.NoOriginFallback {
		o.startFallback()
	}
	return o, nil
}

func (c *Client) parseInfo(infoBytes []byte) (*metainfo.Info, error) {
	if len(infoBytes) > c.cfg.MaxInfoBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(infoBytes), c.cfg.MaxInfoBytes)
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(infoBytes, &info); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInfo, err)
	}
	switch {
	case info.IsDir():
		return nil, fmt.Errorf("%w: multi-file torrents are not supported", ErrBadInfo)
	case info.PieceLength <= 0:
		return nil, fmt.Errorf("%w: piece length %d", ErrBadInfo, info.PieceLength)
	case info.Length < 0:
		return nil, fmt.Errorf("%w: length %d", ErrBadInfo, info.Length)
	case len(info.Pieces)%20 != 0 || int64(len(info.Pieces)/20) != (info.Length+info.PieceLength-1)/info.PieceLength:
		return nil, fmt.Errorf("%w: %d piece hashes for %d bytes in pieces of %d", ErrBadInfo, len(info.Pieces)/20, info.Length, info.PieceLength)
	}
	return &info, nil
}

// addObject adds a torrent for data this client has or will download.
func (c *Client) addObject(ctx context.Context, ih metainfo.Hash, infoBytes []byte, info *metainfo.Info) (*Object, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, ErrClosed
	}
	c.mu.Lock()
	if o, ok := c.objects[ih]; ok {
		c.mu.Unlock()
		return o, nil
	}
	c.mu.Unlock()
	t, _ := c.cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes})
	select {
	case <-t.GotInfo():
	case <-ctx.Done():
		t.Drop()
		return nil, fmt.Errorf("add object %s: %w", ih, ctx.Err())
	}
	o := &Object{c: c, t: t, ih: ih, info: info, infoBytes: infoBytes, log: c.log.With("infohash", ih.HexString())}
	c.mu.Lock()
	if prev, ok := c.objects[ih]; ok {
		c.mu.Unlock()
		return prev, nil
	}
	c.objects[ih] = o
	c.mu.Unlock()
	return o, nil
}
