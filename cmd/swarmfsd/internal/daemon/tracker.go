package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"swarmfs/index"
	"swarmfs/tracker"
)

// serveTracker runs a tracker replica in-process on addr, sharing the
// index's etcd client and prefix. It returns a stop function and the
// announce URL.
func serveTracker(ctx context.Context, addr string, ix *index.Index, log *slog.Logger, reg prometheus.Registerer) (func(), string, error) {
	tcfg, err := tracker.Config{ListenAddr: addr, Etcd: tracker.EtcdConfig{Endpoints: ix.Client().Endpoints(), Prefix: ix.Prefix()}}.Validate()
	if err != nil {
		return nil, "", err
	}
	opts := []tracker.Option{tracker.WithLogger(log.With("component", "tracker")), tracker.WithRegisterer(reg)}
	store, err := tracker.NewEtcdStore(ctx, ix.Client(), tcfg.Etcd, tcfg.PeerTTL, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("embedded tracker: %w", err)
	}
	registry, err := tracker.NewEtcdRegistry(ix.Client(), tcfg.Etcd, opts...)
	if err != nil {
		store.Close()
		return nil, "", fmt.Errorf("embedded tracker: %w", err)
	}
	srv, err := tracker.New(tcfg, store, registry, opts...)
	if err != nil {
		store.Close()
		return nil, "", fmt.Errorf("embedded tracker: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		store.Close()
		return nil, "", fmt.Errorf("embedded tracker: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := store.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded tracker", "err", err)
		}
	}()
	url := "http://" + ln.Addr().String() + "/announce"
	log.Info("embedded tracker serving", "announce", url)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		store.Close()
	}, url, nil
}
