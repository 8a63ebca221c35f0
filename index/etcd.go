package index

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbedConfig configures an etcd member run inside the process.
type EmbedConfig struct {
	// Dir holds the member's data. Required.
	Dir string
	// Name is the member name. Default "swarmfs".
	Name string
	// ClientURL is where clients connect; it is also advertised.
	// Default http://127.0.0.1:2379.
	ClientURL string
	// PeerURL is where members talk; it is also advertised.
	// Default http://127.0.0.1:2380.
	PeerURL string
	// InitialCluster is "name=peerURL,..." for a multi-member cluster.
	// Default: this member alone.
	InitialCluster string
	// Existing joins a cluster that already has data (restart).
	Existing bool
	// UnsafeNoFsync skips fsync (tests only).
	UnsafeNoFsync bool
	// StartTimeout bounds waiting for the member to be ready. Default 60s.
	StartTimeout time.Duration
	// Quiet drops etcd's own log lines below error.
	Quiet bool
}

// Embedded is a running in-process etcd member.
type Embedded struct {
	e         *embed.Etcd
	clientURL string
}

// StartEmbedded starts an etcd member and waits until it serves.
func StartEmbedded(ctx context.Context, cfg EmbedConfig, log *slog.Logger) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("embedded etcd: no data dir")
	}
	if cfg.Name == "" {
		cfg.Name = "swarmfs"
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = "http://127.0.0.1:2379"
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = "http://127.0.0.1:2380"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	cu, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client url %q: %w", cfg.ClientURL, err)
	}
	pu, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: peer url %q: %w", cfg.PeerURL, err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Clean(cfg.Dir)
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = cfg.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	}
	ec.InitialClusterToken = "swarmfs"
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	level := zapcore.WarnLevel
	if cfg.Quiet {
		level = zapcore.FatalLevel
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	lg, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	t := time.NewTimer(cfg.StartTimeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after %v (is the rest of the cluster up?)", cfg.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	log.Info("embedded etcd ready", "name", cfg.Name, "client_url", cfg.ClientURL, "dir", cfg.Dir)
	return &Embedded{e: e, clientURL: cfg.ClientURL}, nil
}

// ClientURL returns the member's client URL.
func (e *Embedded) ClientURL() string { return e.clientURL }

// Close stops the member.
func (e *Embedded) Close() { e.e.Close() }
