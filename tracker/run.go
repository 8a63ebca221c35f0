package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// healthChecker is implemented by stores that can report trouble.
type healthChecker interface{ Healthy() error }

// NewLogger returns a logger on stderr for a level (debug, info, warn,
// error) and format (text or json).
func NewLogger(level, format string) (*slog.Logger, error) {
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

// Run serves the tracker on cfg.ListenAddr until ctx ends: announce and
// scrape, /metrics (a private registry, unless WithRegisterer passes a
// *prometheus.Registry) and /healthz. With cfg.Etcd.Endpoints, peers are
// shared through etcd and private mode reads the index there; without,
// peers stay in memory. Logs go to stderr per cfg unless WithLogger is
// given.
func Run(ctx context.Context, cfg Config, opts ...Option) error {
	cfg, err := cfg.Validate()
	if err != nil {
		return err
	}
	logger, err := NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	o := applyOptions(append([]Option{WithLogger(logger)}, opts...))
	var gatherer prometheus.Gatherer
	if r, ok := o.reg.(*prometheus.Registry); ok {
		gatherer = r
	} else if o.reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		o.reg, gatherer = r, r
	} else {
		gatherer = prometheus.NewRegistry()
	}
	opts = []Option{WithLogger(o.log), WithRegisterer(o.reg)}
	log := o.log

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("tracker: listen on %s: %w", cfg.ListenAddr, err)
	}
	defer ln.Close()

	var store PeerStore
	var reg Registry
	if len(cfg.Etcd.Endpoints) > 0 {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Etcd.Endpoints,
			DialTimeout: cfg.Etcd.DialTimeout,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return fmt.Errorf("tracker: connect to etcd %v: %w", cfg.Etcd.Endpoints, err)
		}
		defer cli.Close()
		es, err := NewEtcdStore(ctx, cli, cfg.Etcd, cfg.PeerTTL, opts...)
		if err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		defer func() {
			if err := es.Close(); err != nil {
				log.Warn("close etcd peer store", "err", err)
			}
		}()
		store = es
		if !cfg.Public {
			if reg, err = NewEtcdRegistry(cli, cfg.Etcd, opts...); err != nil {
				return fmt.Errorf("tracker: %w", err)
			}
		}
	} else {
		if !cfg.Public {
			return errors.New("tracker: private mode reads the index in etcd: give --etcd-endpoints, or --public")
		}
		ms := NewMemoryStore(cfg.PeerTTL)
		defer ms.Close()
		store = ms
	}
	srv, err := New(cfg, store, reg, opts...)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if hc, ok := store.(healthChecker); ok {
			if err := hc.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("tracker serving", "addr", ln.Addr().String(), "config", cfg)
	select {
	case err := <-errc:
		return fmt.Errorf("tracker: serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("tracker shutting down", "cause", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("tracker: shutdown", "err", err)
	}
	return nil
}
