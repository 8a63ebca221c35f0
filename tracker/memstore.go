package tracker

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// MemoryStore is a PeerStore in process memory, for a single tracker (the
// one-machine default, tests). Its state is lost when the process ends.
type MemoryStore struct {
	ttl  time.Duration
	v    *view
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.RWMutex // guards closed
	done bool
}

var _ PeerStore = (*MemoryStore)(nil)

// NewMemoryStore returns a store whose peers expire ttl after their last
// PutPeer. It collects expired peers in the background until Close.
func NewMemoryStore(ttl time.Duration) *MemoryStore {
	s := &MemoryStore{ttl: ttl, v: newView(), stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		gcLoop(s.stop, ttl, s.v)
	}()
	return s
}

// gcLoop sweeps v every ttl/4 (at least every 100ms, at most every minute)
// until stop is closed.
func gcLoop(stop <-chan struct{}, ttl time.Duration, v *view) {
	t := time.NewTicker(min(max(ttl/4, 100*time.Millisecond), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			v.gc(now)
		}
	}
}

func (s *MemoryStore) closed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.done
}

// PutPeer implements PeerStore.
func (s *MemoryStore) PutPeer(_ context.Context, ih metainfo.Hash, p Peer) error {
	if s.closed() {
		return ErrStoreClosed
	}
	s.v.put(ih, p, time.Now().Add(s.ttl), true)
	return nil
}

// DeletePeer implements PeerStore.
func (s *MemoryStore) DeletePeer(_ context.Context, ih metainfo.Hash, addr netip.AddrPort) error {
	if s.closed() {
		return ErrStoreClosed
	}
	s.v.delete(ih, addr)
	return nil
}

// RangePeers implements PeerStore.
func (s *MemoryStore) RangePeers(_ context.Context, ih metainfo.Hash, v6 bool, yield func(Peer) bool) error {
	if s.closed() {
		return ErrStoreClosed
	}
	s.v.rangePeers(ih, v6, time.Now(), yield)
	return nil
}

// Counts implements PeerStore.
func (s *MemoryStore) Counts(_ context.Context, ih metainfo.Hash) (SwarmCounts, error) {
	if s.closed() {
		return SwarmCounts{}, ErrStoreClosed
	}
	return s.v.counts(ih, time.Now()), nil
}

// Stats implements PeerStore.
func (s *MemoryStore) Stats() StoreStats { return s.v.stats(time.Now()) }

// Close stops the background collection.
func (s *MemoryStore) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}
