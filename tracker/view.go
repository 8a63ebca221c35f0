package tracker

import (
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// view is an in-memory set of swarms with per-peer expiry. The memory store
// is a view; the etcd store keeps one fed by its watch.
type view struct {
	mu     sync.RWMutex
	swarms map[metainfo.Hash]*swarmPeers
}

type swarmPeers struct {
	v4, v6 map[netip.AddrPort]*entry
}

type entry struct {
	Peer
	expires time.Time
}

func newView() *view { return &view{swarms: map[metainfo.Hash]*swarmPeers{}} }

func (s *swarmPeers) family(v6 bool) map[netip.AddrPort]*entry {
	if v6 {
		return s.v6
	}
	return s.v4
}

func (s *swarmPeers) empty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

// put stores p until expires. With merge, Completed stays set if it was.
// It returns the peer as stored.
func (v *view) put(ih metainfo.Hash, p Peer, expires time.Time, merge bool) Peer {
	p.Addr = normalizeAddr(p.Addr)
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.swarms[ih]
	if s == nil {
		s = &swarmPeers{v4: map[netip.AddrPort]*entry{}, v6: map[netip.AddrPort]*entry{}}
		v.swarms[ih] = s
	}
	m := s.family(p.Addr.Addr().Is6())
	if old := m[p.Addr]; old != nil && merge && old.Completed && old.expires.After(time.Now()) {
		p.Completed = true
	}
	m[p.Addr] = &entry{Peer: p, expires: expires}
	return p
}

func (v *view) delete(ih metainfo.Hash, addr netip.AddrPort) {
	addr = normalizeAddr(addr)
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.swarms[ih]
	if s == nil {
		return
	}
	delete(s.family(addr.Addr().Is6()), addr)
	if s.empty() {
		delete(v.swarms, ih)
	}
}

func (v *view) rangePeers(ih metainfo.Hash, v6 bool, now time.Time, yield func(Peer) bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.swarms[ih]
	if s == nil {
		return
	}
	for _, e := range s.family(v6) {
		if e.expires.After(now) && !yield(e.Peer) {
			return
		}
	}
}

func (v *view) counts(ih metainfo.Hash, now time.Time) SwarmCounts {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var c SwarmCounts
	s := v.swarms[ih]
	if s == nil {
		return c
	}
	for _, m := range []map[netip.AddrPort]*entry{s.v4, s.v6} {
		for _, e := range m {
			if !e.expires.After(now) {
				continue
			}
			if e.Seeder {
				c.Seeders++
			} else {
				c.Leechers++
			}
			if e.Completed {
				c.Completed++
			}
		}
	}
	return c
}

func (v *view) stats(now time.Time) StoreStats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := StoreStats{SwarmSizes: make([]int, 0, len(v.swarms))}
	for _, s := range v.swarms {
		n := 0
		for _, m := range []map[netip.AddrPort]*entry{s.v4, s.v6} {
			for _, e := range m {
				if !e.expires.After(now) {
					continue
				}
				n++
				if e.Seeder {
					st.Seeders++
				} else {
					st.Leechers++
				}
			}
		}
		if n > 0 {
			st.Swarms++
			st.SwarmSizes = append(st.SwarmSizes, n)
		}
	}
	return st
}

// gc removes expired peers and empty swarms and returns how many peers it
// removed.
func (v *view) gc(now time.Time) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for ih, s := range v.swarms {
		for _, m := range []map[netip.AddrPort]*entry{s.v4, s.v6} {
			for a, e := range m {
				if !e.expires.After(now) {
					delete(m, a)
					n++
				}
			}
		}
		if s.empty() {
			delete(v.swarms, ih)
		}
	}
	return n
}

// replace swaps in the contents of other (a resync).
func (v *view) replace(other *view) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.swarms = other.swarms
}
