package tracker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdStore is a PeerStore shared by tracker replicas through etcd.
//
// Every peer is a key <prefix>peers/<infohash hex>/<ip:port> whose value
// holds the peer's ID, role and labels. Keys carry a lease, so etcd deletes
// peers that stop announcing, whether or not the replica that wrote them is
// still alive. Leases are not kept alive: one lease is granted per quarter
// of the TTL and shared by all writes in that window, so a key lives
// between TTL and 1.25×TTL (rounded up to whole seconds) after its last
// write.
//
// Writes are applied to a local view at once and queued. A flusher sends
// the queue every FlushInterval (or as soon as MaxBatch writes wait) as
// etcd transactions of at most MaxBatch operations, so an announce never
// waits for etcd; only a full queue (MaxPending) makes writers wait.
// Reads are served from the local view, which a watch on the peers prefix
// keeps in step with every replica's writes and with lease expiry. Another
// replica sees a write after about FlushInterval plus the watch latency.
//
// If etcd is unreachable, the store keeps serving its view (expiring peers
// locally), retries flushes and resumes the watch where it stopped, or
// reloads everything when etcd compacted past it.
type EtcdStore struct {
	cli       *clientv3.Client
	cfg       EtcdConfig
	ttl       time.Duration
	bucket    time.Duration
	keyPrefix string
	log       *slog.Logger
	m         *etcdMetrics
	v         *view

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]pendingOp
	// guard holds, per key written here, the revision of that write in
	// etcd (math.MaxInt64 while not yet written). Watch events for the key
	// older than it are stale echoes and are not applied, so a read never
	// goes back to an older state of a peer this replica wrote.
	guard   map[string]int64
	flushed chan struct{} // closed and replaced after each flush attempt
	closed  bool
	kick    chan struct{}

	// Owned by the flusher goroutine.
	lease   clientv3.LeaseID
	leaseAt time.Time

	flushErr atomic.Pointer[error]
	watchErr atomic.Pointer[error]
}

type pendingOp struct {
	del bool
	val string
}

// peerValue is the JSON value of a peer key.
type peerValue struct {
	ID   string `json:"id"`
	Seed bool   `json:"seed,omitempty"`
	Done bool   `json:"done,omitempty"`
	Rack string `json:"rack,omitempty"`
	Zone string `json:"zone,omitempty"`
}

var _ PeerStore = (*EtcdStore)(nil)

// NewEtcdStore loads the peers under cfg.Prefix from etcd, then keeps them
// in step. Peers expire ttl after their last PutPeer. The client stays the
// caller's: Close does not close it.
func NewEtcdStore(ctx context.Context, cli *clientv3.Client, cfg EtcdConfig, ttl time.Duration, opts ...Option) (*EtcdStore, error) {
	cfg = cfg.withDefaults()
	if ttl <= 0 {
		return nil, fmt.Errorf("etcd peer store: ttl %v must be positive", ttl)
	}
	o := applyOptions(opts)
	sctx, cancel := context.WithCancel(context.Background())
	s := &EtcdStore{
		cli:       cli,
		cfg:       cfg,
		ttl:       ttl,
		bucket:    max(ttl/4, time.Second),
		keyPrefix: cfg.Prefix + "peers/",
		log:       o.log.With("component", "tracker-etcd-store"),
		ctx:       sctx,
		cancel:    cancel,
		pending:   map[string]pendingOp{},
		guard:     map[string]int64{},
		flushed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	s.m = newEtcdMetrics(s)
	if err := o.register(s.m.collectors()...); err != nil {
		cancel()
		return nil, fmt.Errorf("register etcd store metrics: %w", err)
	}
	v, rev, err := s.load(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s.v = v
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.watchLoop(rev)
	}()
	go func() {
		defer s.wg.Done()
		s.flushLoop()
	}()
	go func() {
		defer s.wg.Done()
		gcLoop(sctx.Done(), ttl, s.v)
	}()
	s.log.Info("etcd peer store ready", "prefix", s.keyPrefix, "revision", rev, "swarms", len(v.swarms))
	return s, nil
}

func (s *EtcdStore) key(ih metainfo.Hash, addr netip.AddrPort) string {
	return s.keyPrefix + ih.HexString() + "/" + addr.String()
}

func (s *EtcdStore) parseKey(k []byte) (metainfo.Hash, netip.AddrPort, error) {
	var ih metainfo.Hash
	rest, ok := strings.CutPrefix(string(k), s.keyPrefix)
	hexIH, addr, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return ih, netip.AddrPort{}, fmt.Errorf("peer key %q: bad layout", k)
	}
	if err := ih.FromHexString(hexIH); err != nil {
		return ih, netip.AddrPort{}, fmt.Errorf("peer key %q: %w", k, err)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ih, netip.AddrPort{}, fmt.Errorf("peer key %q: %w", k, err)
	}
	return ih, normalizeAddr(ap), nil
}

func encodePeer(p Peer) string {
	b, _ := json.Marshal(peerValue{ID: hex.EncodeToString(p.ID[:]), Seed: p.Seeder, Done: p.Completed, Rack: p.Rack, Zone: p.Zone})
	return string(b)
}

func decodePeer(addr netip.AddrPort, val []byte) (Peer, error) {
	var pv peerValue
	if err := json.Unmarshal(val, &pv); err != nil {
		return Peer{}, fmt.Errorf("peer value: %w", err)
	}
	p := Peer{Addr: addr, Seeder: pv.Seed, Completed: pv.Done, Rack: pv.Rack, Zone: pv.Zone}
	if id, err := hex.DecodeString(pv.ID); err == nil && len(id) == len(p.ID) {
		copy(p.ID[:], id)
	}
	return p, nil
}

// apply puts a key/value from etcd into v.
func (s *EtcdStore) apply(v *view, kv *mvccpb.KeyValue, del bool, now time.Time) {
	ih, addr, err := s.parseKey(kv.Key)
	if err != nil {
		s.log.Warn("ignoring key", "err", err)
		return
	}
	if del {
		v.delete(ih, addr)
		return
	}
	p, err := decodePeer(addr, kv.Value)
	if err != nil {
		s.log.Warn("ignoring key", "key", string(kv.Key), "err", err)
		return
	}
	v.put(ih, p, now.Add(s.ttl), false)
}

// load reads every peer key into a new view, in pages, at one revision.
func (s *EtcdStore) load(ctx context.Context) (*view, int64, error) {
	start := time.Now()
	v := newView()
	key, end := s.keyPrefix, clientv3.GetPrefixRangeEnd(s.keyPrefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := s.cli.Get(rctx, key, opts...)
		cancel()
		if err != nil {
			s.m.errors.WithLabelValues("load").Inc()
			return nil, 0, fmt.Errorf("load peers from etcd: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		now := time.Now()
		for _, kv := range resp.Kvs {
			s.apply(v, kv, false, now)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	s.m.duration.WithLabelValues("load").Observe(time.Since(start).Seconds())
	return v, rev, nil
}

func (s *EtcdStore) watchLoop(rev int64) {
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		resync := false
		wch := s.cli.Watch(clientv3.WithRequireLeader(s.ctx), s.keyPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				resync = true
				break
			}
			if err := resp.Err(); err != nil {
				s.watchErr.Store(&err)
				s.log.Warn("peer watch failed, resuming", "err", err, "revision", rev)
				break
			}
			s.watchErr.Store(nil)
			now := time.Now()
			// Under s.mu, so that no local write slips between the
			// freshness check and the apply.
			s.mu.Lock()
			for _, ev := range resp.Events {
				if s.fresh(ev.Kv) {
					s.apply(s.v, ev.Kv, ev.Type == mvccpb.DELETE, now)
				}
			}
			s.mu.Unlock()
			s.m.watchEvents.Add(float64(len(resp.Events)))
			if resp.Header.Revision > rev {
				rev = resp.Header.Revision
			}
			backoff = 100 * time.Millisecond
		}
		if s.ctx.Err() != nil {
			return
		}
		if resync {
			s.log.Warn("peer watch fell behind a compaction, reloading", "revision", rev)
			v, r, err := s.load(s.ctx)
			if err != nil {
				s.watchErr.Store(&err)
				s.log.Warn("reload peers failed", "err", err)
			} else {
				s.m.resyncs.Inc()
				s.resync(v)
				rev = r
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// fresh reports whether a watched key/value is at least as new as this
// replica's last write of the key, and forgets the guard once it is. The
// caller holds s.mu.
func (s *EtcdStore) fresh(kv *mvccpb.KeyValue) bool {
	k := string(kv.Key)
	rev, ok := s.guard[k]
	if !ok {
		return true
	}
	if kv.ModRevision < rev {
		return false
	}
	delete(s.guard, k)
	return true
}

// resync replaces the view with a freshly loaded one plus the writes not
// yet in etcd, and drops the guards of writes the load already contains.
func (s *EtcdStore) resync(v *view) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, rev := range s.guard {
		if rev != math.MaxInt64 {
			delete(s.guard, k)
		}
	}
	for k, op := range s.pending {
		s.apply(v, &mvccpb.KeyValue{Key: []byte(k), Value: []byte(op.val)}, op.del, now)
	}
	s.v.replace(v)
}

// enqueue queues the operation that write makes for key, waiting while the
// queue is full. write runs under s.mu, so that the local view and the
// queue see concurrent writes of one key in the same order.
func (s *EtcdStore) enqueue(ctx context.Context, key string, write func() pendingOp) error {
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return ErrStoreClosed
		}
		if _, ok := s.pending[key]; ok || len(s.pending) < s.cfg.MaxPending {
			break
		}
		wait := s.flushed
		s.mu.Unlock()
		s.kickFlush()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("etcd peer store queue full: %w", ctx.Err())
		case <-s.ctx.Done():
			return ErrStoreClosed
		}
		s.mu.Lock()
	}
	s.pending[key] = write()
	s.guard[key] = math.MaxInt64
	n := len(s.pending)
	s.mu.Unlock()
	if n >= s.cfg.MaxBatch {
		s.kickFlush()
	}
	return nil
}

func (s *EtcdStore) kickFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *EtcdStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// PutPeer implements PeerStore. The write is visible here at once and
// queued for etcd.
func (s *EtcdStore) PutPeer(ctx context.Context, ih metainfo.Hash, p Peer) error {
	if s.isClosed() {
		return ErrStoreClosed
	}
	p.Addr = normalizeAddr(p.Addr)
	return s.enqueue(ctx, s.key(ih, p.Addr), func() pendingOp {
		return pendingOp{val: encodePeer(s.v.put(ih, p, time.Now().Add(s.ttl), true))}
	})
}

// DeletePeer implements PeerStore.
func (s *EtcdStore) DeletePeer(ctx context.Context, ih metainfo.Hash, addr netip.AddrPort) error {
	if s.isClosed() {
		return ErrStoreClosed
	}
	addr = normalizeAddr(addr)
	return s.enqueue(ctx, s.key(ih, addr), func() pendingOp {
		s.v.delete(ih, addr)
		return pendingOp{del: true}
	})
}

// RangePeers implements PeerStore from the local view.
func (s *EtcdStore) RangePeers(_ context.Context, ih metainfo.Hash, v6 bool, yield func(Peer) bool) error {
	if s.isClosed() {
		return ErrStoreClosed
	}
	s.v.rangePeers(ih, v6, time.Now(), yield)
	return nil
}

// Counts implements PeerStore from the local view.
func (s *EtcdStore) Counts(_ context.Context, ih metainfo.Hash) (SwarmCounts, error) {
	if s.isClosed() {
		return SwarmCounts{}, ErrStoreClosed
	}
	return s.v.counts(ih, time.Now()), nil
}

// Stats implements PeerStore from the local view.
func (s *EtcdStore) Stats() StoreStats { return s.v.stats(time.Now()) }

// Healthy reports the last flush or watch error, or nil.
func (s *EtcdStore) Healthy() error {
	if p := s.flushErr.Load(); p != nil {
		return fmt.Errorf("etcd peer store flush: %w", *p)
	}
	if p := s.watchErr.Load(); p != nil {
		return fmt.Errorf("etcd peer store watch: %w", *p)
	}
	return nil
}

func (s *EtcdStore) pendingLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *EtcdStore) flushLoop() {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-s.ctx.Done():
			// One last flush of what was accepted, bounded in time.
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			s.flush(ctx)
			cancel()
			return
		case <-t.C:
		case <-s.kick:
		}
		if backoff > 0 {
			select {
			case <-s.ctx.Done():
				continue
			case <-time.After(backoff):
			}
		}
		if err := s.flush(s.ctx); err != nil {
			backoff = min(max(2*backoff, s.cfg.FlushInterval), 2*time.Second)
		} else {
			backoff = 0
		}
	}
}

// flush writes the queued operations to etcd. Failed operations go back
// into the queue unless a newer one for the same key arrived.
func (s *EtcdStore) flush(ctx context.Context) error {
	s.mu.Lock()
	batch := s.pending
	if len(batch) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.pending = make(map[string]pendingOp, len(batch))
	s.mu.Unlock()

	err := s.write(ctx, batch)

	s.mu.Lock()
	if err != nil {
		for k, op := range batch {
			if _, ok := s.pending[k]; !ok {
				s.pending[k] = op
			}
		}
	}
	close(s.flushed)
	s.flushed = make(chan struct{})
	s.mu.Unlock()
	if err != nil {
		s.flushErr.Store(&err)
		s.log.Warn("flush peers to etcd failed, will retry", "ops", len(batch), "err", err)
		return err
	}
	s.flushErr.Store(nil)
	return nil
}

func (s *EtcdStore) write(ctx context.Context, batch map[string]pendingOp) error {
	lease, err := s.currentLease(ctx)
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, min(len(batch), s.cfg.MaxBatch))
	keys := make([]string, 0, cap(ops))
	send := func() error {
		if len(ops) == 0 {
			return nil
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := s.cli.Txn(rctx).Then(ops...).Commit()
		cancel()
		s.m.duration.WithLabelValues("txn").Observe(time.Since(start).Seconds())
		s.m.batchOps.Observe(float64(len(ops)))
		if err != nil {
			s.m.errors.WithLabelValues("txn").Inc()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				s.lease = 0 // granted again on the retry
			}
			return fmt.Errorf("write %d peer keys: %w", len(ops), err)
		}
		s.mu.Lock()
		for _, k := range keys {
			if _, again := s.pending[k]; !again {
				s.guard[k] = resp.Header.Revision
			}
		}
		s.mu.Unlock()
		ops, keys = ops[:0], keys[:0]
		return nil
	}
	for k, op := range batch {
		keys = append(keys, k)
		if op.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, op.val, clientv3.WithLease(lease)))
		}
		if len(ops) == s.cfg.MaxBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return send()
}

// currentLease returns the lease for writes now, granting a new one every
// bucket.
func (s *EtcdStore) currentLease(ctx context.Context) (clientv3.LeaseID, error) {
	now := time.Now()
	if s.lease != 0 && now.Sub(s.leaseAt) < s.bucket {
		return s.lease, nil
	}
	ttl := int64((s.ttl + s.bucket + time.Second - 1) / time.Second)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Grant(rctx, ttl)
	s.m.duration.WithLabelValues("grant").Observe(time.Since(now).Seconds())
	if err != nil {
		s.m.errors.WithLabelValues("grant").Inc()
		return 0, fmt.Errorf("grant peer lease: %w", err)
	}
	s.lease, s.leaseAt = resp.ID, now
	return s.lease, nil
}

// Close flushes queued writes (for at most the request timeout) and stops
// the watch. Peers stay in etcd until their leases expire, so the other
// replicas keep serving them.
func (s *EtcdStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if n := s.pendingLen(); n > 0 {
		return fmt.Errorf("close etcd peer store: %d writes not flushed", n)
	}
	return nil
}

type etcdMetrics struct {
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	batchOps    prometheus.Histogram
	pending     prometheus.GaugeFunc
	resyncs     prometheus.Counter
	watchEvents prometheus.Counter
}

func newEtcdMetrics(s *EtcdStore) *etcdMetrics {
	return &etcdMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swarmfs_tracker_etcd_request_duration_seconds",
			Help:    "Latency of the peer store's etcd requests, by operation (txn, grant, load).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmfs_tracker_etcd_errors_total",
			Help: "Failed etcd requests of the peer store, by operation.",
		}, []string{"op"}),
		batchOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "swarmfs_tracker_etcd_batch_ops",
			Help:    "Operations per etcd transaction written by the peer store.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "swarmfs_tracker_etcd_pending_ops",
			Help: "Peer writes accepted and not yet written to etcd.",
		}, func() float64 { return float64(s.pendingLen()) }),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmfs_tracker_etcd_resyncs_total",
			Help: "Full reloads of the peer view after the watch fell behind a compaction.",
		}),
		watchEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmfs_tracker_etcd_watch_events_total",
			Help: "Peer key events received from the etcd watch.",
		}),
	}
}

func (m *etcdMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.errors, m.batchOps, m.pending, m.resyncs, m.watchEvents}
}
