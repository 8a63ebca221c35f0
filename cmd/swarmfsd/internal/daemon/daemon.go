package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"swarmfs/swarm"
)

// Config is the daemon's configuration: its own settings plus each
// package's Config.
type Config struct {
	Swarm swarm.Config

	// MetricsAddr serves /metrics and /healthz. Default 127.0.0.1:9469.
	MetricsAddr string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LogFormat is text or json. Default text.
	LogFormat string

	// Convert lists origin URLs to convert and seed at start.
	Convert []string
	// Publish lists local files to publish and seed at start.
	Publish []string
	// MetainfoDir, if set, receives <infohash>.torrent for every converted
	// or published object.
	MetainfoDir string
	// Join lists .torrent files to download and seed.
	Join []string
	// Peers are known peer addresses for joined objects.
	Peers []string
	// Trackers are extra announce URLs for joined objects.
	Trackers []string
	// Origin is the fallback origin URL for joined objects.
	Origin string
}

// AddFlags registers the daemon's flags and those of its packages.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	c.Swarm.AddFlags(fs)
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9469", "address for /metrics and /healthz")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringArrayVar(&c.Convert, "convert", nil, "origin URL to convert and seed (repeatable)")
	fs.StringArrayVar(&c.Publish, "publish", nil, "local file to publish and seed (repeatable)")
	fs.StringVar(&c.MetainfoDir, "metainfo-dir", "", "write <infohash>.torrent of converted and published objects here")
	fs.StringArrayVar(&c.Join, "join", nil, ".torrent file to download and seed (repeatable)")
	fs.StringArrayVar(&c.Peers, "peer", nil, "known peer host:port for joined objects (repeatable)")
	fs.StringArrayVar(&c.Trackers, "tracker", nil, "announce URL for every object (repeatable; one tier, tried in turn)")
	fs.StringVar(&c.Origin, "origin", "", "origin URL used as fallback for joined objects after a stall")
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

// Run runs the node until ctx ends, then shuts down cleanly.
func Run(ctx context.Context, cfg Config) error {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
	}
	client, err := swarm.New(cfg.Swarm, swarm.WithLogger(log), swarm.WithRegisterer(reg))
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Error("close swarm client", "err", err)
		}
		log.Info("stopped")
	}()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
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
	log.Info("swarmfsd running", "metrics", ln.Addr().String(), "peer_addr", client.Addr().String())

	for _, file := range cfg.Publish {
		o, err := client.Publish(ctx, file, "")
		if err != nil {
			return err
		}
		o.AddTrackers(cfg.Trackers)
		if err := writeMetainfo(cfg.MetainfoDir, o, cfg.Trackers); err != nil {
			return err
		}
	}
	for _, u := range cfg.Convert {
		conv, err := client.Convert(ctx, swarm.ConvertSpec{URL: u})
		if err != nil {
			return err
		}
		conv.AddTrackers(cfg.Trackers)
		if err := writeMetainfo(cfg.MetainfoDir, conv.Object, cfg.Trackers); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, file := range cfg.Join {
		o, err := join(ctx, client, cfg, file)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := o.WaitComplete(ctx); err != nil {
				return
			}
			st := o.Stats()
			log.Info("object complete", "infohash", o.InfoHash().HexString(), "duration", time.Since(start),
				"peer_bytes", st.PeerBytes, "origin_bytes", st.OriginBytes)
		}()
	}
	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	return nil
}

func join(ctx context.Context, client *swarm.Client, cfg Config, file string) (*swarm.Object, error) {
	mi, err := metainfo.LoadFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", file, err)
	}
	trackers := append([]string(nil), cfg.Trackers...)
	for _, tier := range mi.UpvertedAnnounceList() {
		trackers = append(trackers, tier...)
	}
	o, err := client.Join(ctx, swarm.JoinSpec{
		InfoBytes: mi.InfoBytes,
		Trackers:  trackers,
		Peers:     cfg.Peers,
		OriginURL: cfg.Origin,
	})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", file, err)
	}
	o.DownloadAll()
	return o, nil
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
