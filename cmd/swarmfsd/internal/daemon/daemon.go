package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/spf13/pflag"

	swarmfs "swarmfs/fs"
	"swarmfs/index"
	"swarmfs/mountctl"
	"swarmfs/swarm"
)

// Config is the daemon's configuration: its own settings plus each
// package's Config.
type Config struct {
	Swarm swarm.Config
	Index index.Config
	FS    swarmfs.Config
	// API is the control API (mountctl); its socket defaults to
	// <state-dir>/mountctl.sock.
	API mountctl.Config

	// StateDir holds the node id, the embedded etcd member and, unless
	// --data-dir is given, object data. Default /var/lib/swarmfs.
	StateDir string
	// NodeID names this node in the registry. Default: a random id kept in
	// StateDir/node-id.
	NodeID string
	// Rack and Zone place the node for locality-aware peer lists.
	Rack, Zone string
	// EtcdClientURL and EtcdPeerURL are the embedded member's URLs (used
	// when no --etcd-endpoints are given).
	EtcdClientURL, EtcdPeerURL string

	// MetricsAddr serves /metrics and /healthz. Default 127.0.0.1:9469.
	MetricsAddr string
	// Pprof also serves net/http/pprof under /debug/pprof/ on MetricsAddr.
	// Default off: profiles expose internals and cost CPU while taken.
	Pprof bool
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LogFormat is text or json. Default text.
	LogFormat string

	// Add lists origin objects to add: "URL" (path from the URL) or
	// "PATH=URL". Each is converted once in the cluster and downloaded here.
	Add []string
	// Convert lists origin URLs to convert and seed here, outside the index.
	Convert []string
	// Publish lists local files to publish and seed here, outside the index.
	Publish []string
	// MetainfoDir, if set, receives <infohash>.torrent for every converted
	// or published object.
	MetainfoDir string
	// Join lists .torrent files to download and seed.
	Join []string
	// Peers are known peer addresses for joined objects.
	Peers []string
	// Trackers are announce URLs for every object.
	Trackers []string
	// Origin is the fallback origin URL for joined .torrent objects.
	Origin string
	// Pin lists mount paths to keep resident in RAM once they exist.
	Pin []string
	// TrackerListen, if set, serves an embedded tracker replica (etcd peer
	// store, private mode) on this address, and this node announces to it.
	TrackerListen string
}

// AddFlags registers the daemon's flags and those of its packages.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	c.Swarm.AddFlags(fs)
	c.Index.AddFlags(fs)
	c.FS.AddFlags(fs)
	c.API.AddFlags(fs)
	fs.StringVar(&c.StateDir, "state-dir", "/var/lib/swarmfs", "node state: id, embedded etcd, and data unless --data-dir is set")
	fs.StringVar(&c.NodeID, "node-id", "", "node name in the registry (default: random, kept in the state dir)")
	fs.StringVar(&c.Rack, "rack", "", "rack label for locality-aware peer lists")
	fs.StringVar(&c.Zone, "zone", "", "zone label for locality-aware peer lists")
	fs.StringVar(&c.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd member (no --etcd-endpoints)")
	fs.StringVar(&c.EtcdPeerURL, "etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd member")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9469", "address for /metrics and /healthz")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve /debug/pprof/ on the metrics address")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringArrayVar(&c.Add, "add", nil, "origin object to add to the index and download: URL or PATH=URL (repeatable)")
	fs.StringArrayVar(&c.Convert, "convert", nil, "origin URL to convert and seed here, outside the index (repeatable)")
	fs.StringArrayVar(&c.Publish, "publish", nil, "local file to publish and seed here, outside the index (repeatable)")
	fs.StringVar(&c.MetainfoDir, "metainfo-dir", "", "write <infohash>.torrent of converted and published objects here")
	fs.StringArrayVar(&c.Join, "join", nil, ".torrent file to download and seed (repeatable)")
	fs.StringArrayVar(&c.Peers, "peer", nil, "known peer host:port for joined objects (repeatable)")
	fs.StringArrayVar(&c.Trackers, "tracker", nil, "announce URL for every object (repeatable; one tier, tried in turn)")
	fs.StringVar(&c.Origin, "origin", "", "origin URL used as fallback for joined .torrent objects after a stall")
	fs.StringVar(&c.TrackerListen, "tracker-listen", "", "serve an embedded tracker replica on this address (the one-machine default)")
	fs.StringArrayVar(&c.Pin, "pin", nil, "object path to download fully and keep resident in RAM (repeatable; needs --mount)")
	// Object data defaults to <state-dir>/data.
	c.Swarm.DataDir = ""
	if f := fs.Lookup("data-dir"); f != nil {
		f.DefValue = ""
		f.Usage += " (default <state-dir>/data)"
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// nodeID returns the configured id, or the one kept in the state dir.
func nodeID(cfg Config) (string, error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, nil
	}
	path := filepath.Join(cfg.StateDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	rand.Read(rnd[:])
	id := strings.ReplaceAll(host, "/", "-") + "-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("store node id: %w", err)
	}
	return id, nil
}

// Run runs the node until ctx ends, then shuts down cleanly.
func Run(ctx context.Context, cfg Config) error {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if cfg.Swarm.DataDir == "" {
		cfg.Swarm.DataDir = filepath.Join(cfg.StateDir, "data")
	}
	id, err := nodeID(cfg)
	if err != nil {
		return err
	}
	log = log.With("node", id)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "swarmfs_build_info", Help: "Build version.", ConstLabels: prometheus.Labels{"version": swarm.Version},
	}, func() float64 { return 1 }))

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
	}
	defer ln.Close()

	if len(cfg.Index.Endpoints) == 0 {
		e, err := index.StartEmbedded(ctx, index.EmbedConfig{
			Dir: filepath.Join(cfg.StateDir, "etcd"), Name: id,
			ClientURL: cfg.EtcdClientURL, PeerURL: cfg.EtcdPeerURL,
		}, log)
		if err != nil {
			return err
		}
		defer e.Close()
		log.Info("embedded etcd serving; other nodes on this machine join with --etcd-endpoints", "etcd_endpoints", e.ClientURL())
		cfg.Index.Endpoints = []string{e.ClientURL()}
	}
	ix, err := index.Open(ctx, cfg.Index, index.WithLogger(log), index.WithRegisterer(reg))
	if err != nil {
		return err
	}
	defer ix.Close()

	if cfg.TrackerListen != "" {
		stop, url, err := serveTracker(ctx, cfg.TrackerListen, ix, log, reg)
		if err != nil {
			return err
		}
		defer stop()
		if len(cfg.Trackers) == 0 {
			cfg.Trackers = []string{url}
		}
	}
	client, err := swarm.New(cfg.Swarm, swarm.WithLogger(log), swarm.WithRegisterer(reg))
	if err != nil {
		return err
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Error("close swarm client", "err", err)
		}
		log.Info("stopped")
	}()
	regn, err := ix.Register(ctx, index.Node{ID: id, PeerAddr: client.Addr().String(), Rack: cfg.Rack, Zone: cfg.Zone, Version: swarm.Version})
	if err != nil {
		return err
	}
	defer regn.Close()

	n := &node{trackers: labelTrackers(cfg.Trackers, cfg.Rack, cfg.Zone), ctx: ctx, cfg: cfg, log: log, id: id, ix: ix, client: client, reg: regn, http: &http.Client{Timeout: cfg.Swarm.OriginTimeout + time.Second}}
	// etcd's own metrics (registered globally by the embed package) are
	// served next to ours, never mixed into our registry.
	gatherers := prometheus.Gatherers{reg, etcdGatherer{prometheus.DefaultGatherer}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true, Timeout: 10 * time.Second}))
	// Healthy once the control API is up and etcd answers: a caller that
	// saw 200 can use the API socket at once.
	var apiUp atomic.Bool
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !apiUp.Load() {
			http.Error(w, "starting: control API not up yet", http.StatusServiceUnavailable)
			return
		}
		if err := ix.Healthy(r.Context()); err != nil {
			http.Error(w, "etcd: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	stopAPI, err := n.serveAPI(ctx, reg)
	if err != nil {
		return err
	}
	defer stopAPI()
	apiUp.Store(true)
	log.Info("swarmfsd running", "metrics", ln.Addr().String(), "peer_addr", client.Addr().String(), "etcd", cfg.Index.Endpoints)

	var mnt *swarmfs.FS
	var cache *index.Cache
	if cfg.FS.Mountpoint != "" {
		cache = ix.NewCache()
		defer cache.Close()
		sctx, cancel := context.WithTimeout(ctx, cfg.Index.RequestTimeout+cfg.Index.DialTimeout)
		err := cache.WaitSynced(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("load namespace: %w", err)
		}
		mnt, err = swarmfs.Mount(cfg.FS, cache, n, swarmfs.WithLogger(log), swarmfs.WithRegisterer(reg))
		if err != nil {
			return err
		}
		n.mnt.Store(mnt)
	}
	// At shutdown the mount goes first: blocked reads fail with EIO at
	// once, before anything they depend on is closed.
	unmount := func() {
		n.mnt.Store(nil)
		if mnt != nil {
			if err := mnt.Unmount(); err != nil {
				log.Error("unmount", "err", err)
			}
			mnt = nil
		}
	}
	defer unmount()
	if err := n.startup(ctx); err != nil {
		return err
	}
	if len(cfg.Pin) > 0 && mnt == nil {
		return errors.New("--pin needs --mount")
	}
	for _, p := range cfg.Pin {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.pinWhenPresent(ctx, mnt, cache, p)
		}()
	}
	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	unmount()
	n.wg.Wait()
	return nil
}

// etcdGatherer keeps only etcd's series of the default registry; the
// runtime and process series come from ours.
type etcdGatherer struct{ g prometheus.Gatherer }

func (e etcdGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := e.g.Gather()
	out := fams[:0]
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "etcd_") {
			out = append(out, f)
		}
	}
	return out, err
}

// node is one running swarmfsd.
type node struct {
	ctx    context.Context // the node's lifetime
	mnt    atomic.Pointer[swarmfs.FS]
	cfg    Config
	log    *slog.Logger
	id     string
	ix     *index.Index
	client *swarm.Client
	reg    *index.Registration
	http   *http.Client // origin HEAD requests
	// trackers are the announce URLs with this node's rack and zone added
	// as query parameters (the tracker orders peer lists by them).
	trackers []string
	wg       sync.WaitGroup
	api      *apiState // control API (api.go)
}

// labelTrackers adds rack and zone query parameters to announce URLs.
func labelTrackers(urls []string, rack, zone string) []string {
	out := make([]string, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (rack == "" && zone == "") {
			out = append(out, raw)
			continue
		}
		q := u.Query()
		if rack != "" {
			q.Set("rack", rack)
		}
		if zone != "" {
			q.Set("zone", zone)
		}
		u.RawQuery = q.Encode()
		out = append(out, u.String())
	}
	return out
}
