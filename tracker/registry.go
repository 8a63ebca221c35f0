package tracker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"
)

// ErrLookupThrottled is returned by a Registry that refuses a lookup to
// protect its backend.
var ErrLookupThrottled = errors.New("tracker: registry lookups throttled")

// Registry says which infohashes the tracker serves in private mode.
type Registry interface {
	// Known reports whether ih is in the index.
	Known(ctx context.Context, ih metainfo.Hash) (bool, error)
}

// StaticRegistry is a fixed set of infohashes (embedding, tests).
type StaticRegistry map[metainfo.Hash]bool

// Known implements Registry.
func (r StaticRegistry) Known(_ context.Context, ih metainfo.Hash) (bool, error) { return r[ih], nil }

// EtcdRegistry knows an infohash when the index holds its info bytes at
// <prefix>info/<infohash hex>. Answers are cached: found for KnownTTL, not
// found for UnknownTTL. Lookups that miss the cache are limited to
// LookupRate per second, so a flood of random infohashes cannot overload
// etcd; concurrent lookups of one infohash share one request.
type EtcdRegistry struct {
	cli     *clientv3.Client
	cfg     EtcdConfig
	limiter *rate.Limiter
	lookups *prometheus.CounterVec
	latency prometheus.Histogram

	mu       sync.Mutex
	cache    map[metainfo.Hash]cached
	inflight map[metainfo.Hash]*lookup
}

type cached struct {
	known   bool
	expires time.Time
}

type lookup struct {
	done  chan struct{}
	known bool
	err   error
}

// maxCached bounds the cache; it is emptied when full.
const maxCached = 1 << 17

var _ Registry = (*EtcdRegistry)(nil)

// NewEtcdRegistry returns a registry reading the index under cfg.Prefix.
func NewEtcdRegistry(cli *clientv3.Client, cfg EtcdConfig, opts ...Option) (*EtcdRegistry, error) {
	cfg = cfg.withDefaults()
	o := applyOptions(opts)
	r := &EtcdRegistry{
		cli:     cli,
		cfg:     cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.LookupRate), cfg.LookupRate),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmfs_tracker_registry_lookups_total",
			Help: "Private-mode infohash lookups, by result (cached, known, unknown, throttled, error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "swarmfs_tracker_registry_etcd_duration_seconds",
			Help:    "Latency of registry lookups in etcd.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		cache:    map[metainfo.Hash]cached{},
		inflight: map[metainfo.Hash]*lookup{},
	}
	if err := o.register(r.lookups, r.latency); err != nil {
		return nil, fmt.Errorf("register registry metrics: %w", err)
	}
	return r, nil
}

// Known implements Registry.
func (r *EtcdRegistry) Known(ctx context.Context, ih metainfo.Hash) (bool, error) {
	now := time.Now()
	r.mu.Lock()
	if c, ok := r.cache[ih]; ok && now.Before(c.expires) {
		r.mu.Unlock()
		r.lookups.WithLabelValues("cached").Inc()
		return c.known, nil
	}
	l, ok := r.inflight[ih]
	if !ok {
		if !r.limiter.Allow() {
			r.mu.Unlock()
			r.lookups.WithLabelValues("throttled").Inc()
			return false, ErrLookupThrottled
		}
		l = &lookup{done: make(chan struct{})}
		r.inflight[ih] = l
		go r.fetch(ih, l)
	}
	r.mu.Unlock()
	select {
	case <-l.done:
		return l.known, l.err
	case <-ctx.Done():
		return false, fmt.Errorf("look up %s in the index: %w", ih.HexString(), ctx.Err())
	}
}

// fetch reads the key, caches the answer and wakes the waiters. It runs
// detached from any one request so that a cancelled waiter does not fail
// the others.
func (r *EtcdRegistry) fetch(ih metainfo.Hash, l *lookup) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
	resp, err := r.cli.Get(ctx, r.cfg.Prefix+"info/"+ih.HexString(), clientv3.WithCountOnly())
	cancel()
	r.latency.Observe(time.Since(start).Seconds())
	r.mu.Lock()
	delete(r.inflight, ih)
	if err != nil {
		l.err = fmt.Errorf("look up %s in the index: %w", ih.HexString(), err)
		r.lookups.WithLabelValues("error").Inc()
	} else {
		l.known = resp.Count > 0
		ttl := r.cfg.UnknownTTL
		result := "unknown"
		if l.known {
			ttl, result = r.cfg.KnownTTL, "known"
		}
		if len(r.cache) >= maxCached {
			clear(r.cache)
		}
		r.cache[ih] = cached{known: l.known, expires: time.Now().Add(ttl)}
		r.lookups.WithLabelValues(result).Inc()
	}
	r.mu.Unlock()
	close(l.done)
}
