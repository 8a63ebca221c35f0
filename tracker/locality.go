package tracker

import "math/rand/v2"

// Tier is a peer's locality relative to the announcer.
type Tier int

// Locality tiers, nearest first.
const (
	// TierRack: same rack (and same zone, or both zones unknown).
	TierRack Tier = iota
	// TierZone: same known zone, other rack.
	TierZone
	// TierOther: another known zone, or unknown locality on either side.
	TierOther
)

func (t Tier) String() string {
	switch t {
	case TierRack:
		return "rack"
	case TierZone:
		return "zone"
	}
	return "other"
}

// tierOf classifies p for an announcer with labels rack and zone. cross is
// set when both zones are known and differ (the peers MaxCrossZonePeers
// caps).
func tierOf(rack, zone string, p *Peer) (t Tier, cross bool) {
	switch {
	case rack != "" && p.Rack == rack && p.Zone == zone:
		return TierRack, false
	case zone != "" && p.Zone == zone:
		return TierZone, false
	case zone != "" && p.Zone != "":
		return TierOther, true
	}
	return TierOther, false
}

// reservoir keeps a uniform random sample of at most size items.
type reservoir struct {
	size  int
	seen  int
	items []Peer
}

func (r *reservoir) add(p Peer) {
	if r.size <= 0 {
		return
	}
	r.seen++
	if len(r.items) < r.size {
		r.items = append(r.items, p)
		return
	}
	if j := rand.IntN(r.seen); j < r.size {
		r.items[j] = p
	}
}

func shuffle(ps []Peer) {
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
}

// selector picks up to n peers in one pass: the same rack first, then the
// same zone, then the rest, each tier in random order, with at most
// crossMax peers from other known zones (crossMax < 0: no cap).
type selector struct {
	rack, zone string
	n          int
	tiers      [3]reservoir // rack, zone, unknown locality
	cross      reservoir    // other known zones
}

func newSelector(rack, zone string, n, crossMax int) *selector {
	s := &selector{rack: rack, zone: zone, n: n}
	for i := range s.tiers {
		s.tiers[i].size = n
	}
	s.cross.size = n
	if crossMax >= 0 {
		s.cross.size = min(n, crossMax)
	}
	return s
}

func (s *selector) add(p Peer) {
	t, cross := tierOf(s.rack, s.zone, &p)
	if cross {
		s.cross.add(p)
		return
	}
	s.tiers[t].add(p)
}

// result returns the chosen peers, nearest tier first, and how many came
// from each tier.
func (s *selector) result() ([]Peer, [3]int) {
	var perTier [3]int
	out := make([]Peer, 0, s.n)
	for _, t := range []Tier{TierRack, TierZone} {
		ps := s.tiers[t].items
		shuffle(ps)
		ps = ps[:min(len(ps), s.n-len(out))]
		out = append(out, ps...)
		perTier[t] = len(ps)
	}
	rest := append(s.tiers[TierOther].items, s.cross.items...)
	shuffle(rest)
	rest = rest[:min(len(rest), s.n-len(out))]
	out = append(out, rest...)
	perTier[TierOther] = len(rest)
	return out, perTier
}
