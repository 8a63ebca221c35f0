package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Server answers BitTorrent HTTP tracker requests (announce and scrape)
// from a PeerStore.
type Server struct {
	cfg   Config
	store PeerStore
	reg   Registry
	log   *slog.Logger
	m     *serverMetrics
	mux   *http.ServeMux
}

// New returns a Server on store. reg says which infohashes are tracked; it
// may be nil only with cfg.Public. The caller owns store and reg.
func New(cfg Config, store PeerStore, reg Registry, opts ...Option) (*Server, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("tracker: no peer store")
	}
	if !cfg.Public && reg == nil {
		return nil, errors.New("tracker: private mode needs a registry of known infohashes (or set Public)")
	}
	o := applyOptions(opts)
	s := &Server{cfg: cfg, store: store, reg: reg, log: o.log.With("component", "tracker"), m: newServerMetrics(store)}
	if err := o.register(s.m.collectors()...); err != nil {
		return nil, fmt.Errorf("register tracker metrics: %w", err)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /announce", s.announce)
	s.mux.HandleFunc("GET /scrape", s.scrape)
	return s, nil
}

// Config returns the validated configuration.
func (s *Server) Config() Config { return s.cfg }

// Handler serves GET /announce and GET /scrape.
func (s *Server) Handler() http.Handler { return s.mux }

// Announce results, the label values of swarmfs_tracker_announces_total.
const (
	resultOK           = "ok"
	resultBadRequest   = "bad_request"
	resultUnregistered = "unregistered"
	resultError        = "error"
)

type announceResponse struct {
	Interval    int64  `bencode:"interval"`
	MinInterval int64  `bencode:"min interval"`
	Complete    int64  `bencode:"complete"`
	Incomplete  int64  `bencode:"incomplete"`
	Peers       any    `bencode:"peers"`
	Peers6      string `bencode:"peers6,omitempty"`
}

type peerDict struct {
	ID   string `bencode:"peer id,omitempty"`
	IP   string `bencode:"ip"`
	Port int    `bencode:"port"`
}

type failureResponse struct {
	Reason string `bencode:"failure reason"`
}

type scrapeFile struct {
	Complete   int64 `bencode:"complete"`
	Downloaded int64 `bencode:"downloaded"`
	Incomplete int64 `bencode:"incomplete"`
}

type scrapeResponse struct {
	Files map[string]scrapeFile `bencode:"files"`
}

func writeBencode(w http.ResponseWriter, status int, v any) {
	b, err := bencode.Marshal(v)
	if err != nil {
		// Only our own response types are encoded; this is a bug.
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// fail writes a bencoded failure reason. Client errors are answered with
// 200 (clients show the reason), an oversized query with 400, a throttled
// registry with 503, anything else with 500 and a generic reason.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) string {
	if errors.Is(err, ErrLookupThrottled) {
		writeBencode(w, http.StatusServiceUnavailable, failureResponse{Reason: "tracker busy, try again later"})
		return resultError
	}
	if ce, ok := isClientError(err); ok {
		status := http.StatusOK
		if errors.Is(err, errQueryTooLong) {
			status = http.StatusBadRequest
		}
		writeBencode(w, status, failureResponse{Reason: string(ce)})
		return resultBadRequest
	}
	s.log.WarnContext(r.Context(), "tracker request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	writeBencode(w, http.StatusInternalServerError, failureResponse{Reason: "internal tracker error, try again later"})
	return resultError
}

// remoteIP returns the client's address: the last address of the trusted
// proxy header if configured and valid, else the connection's source.
func (s *Server) remoteIP(r *http.Request) netip.Addr {
	if h := s.cfg.ClientIPHeader; h != "" {
		if vs := r.Header.Values(h); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// known checks private mode for ih.
func (s *Server) known(ctx context.Context, ih metainfo.Hash) (bool, error) {
	if s.cfg.Public {
		return true, nil
	}
	return s.reg.Known(ctx, ih)
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := s.serveAnnounce(w, r)
	s.m.announces.WithLabelValues(result).Inc()
	s.m.duration.WithLabelValues("announce").Observe(time.Since(start).Seconds())
}

func (s *Server) serveAnnounce(w http.ResponseWriter, r *http.Request) string {
	ctx := r.Context()
	req, err := parseAnnounce(r.URL.RawQuery, s.remoteIP(r), &s.cfg)
	if err != nil {
		return s.fail(w, r, err)
	}
	ok, err := s.known(ctx, req.InfoHash)
	if err != nil {
		return s.fail(w, r, err)
	}
	if !ok {
		writeBencode(w, http.StatusOK, failureResponse{Reason: "unregistered torrent: " + req.InfoHash.HexString() + " is not in the swarmfs index"})
		return resultUnregistered
	}
	var peers []Peer
	if req.Event == EventStopped {
		err = s.store.DeletePeer(ctx, req.InfoHash, req.Addr)
	} else {
		err = s.store.PutPeer(ctx, req.InfoHash, Peer{
			Addr: req.Addr, ID: req.PeerID, Seeder: req.Seeder(),
			Completed: req.Event == EventCompleted, Rack: req.Rack, Zone: req.Zone,
		})
		if err == nil && req.NumWant > 0 {
			peers, err = s.selectPeers(ctx, &req)
		}
	}
	if err != nil {
		return s.fail(w, r, err)
	}
	counts, err := s.store.Counts(ctx, req.InfoHash)
	if err != nil {
		return s.fail(w, r, err)
	}
	resp := announceResponse{
		Interval:    int64(s.cfg.Interval / time.Second),
		MinInterval: int64(s.cfg.MinInterval / time.Second),
		Complete:    int64(counts.Seeders),
		Incomplete:  int64(counts.Leechers),
	}
	v6 := req.Addr.Addr().Is6()
	if req.Compact {
		b := make([]byte, 0, len(peers)*18)
		for _, p := range peers {
			b = append(b, p.Addr.Addr().AsSlice()...)
			b = append(b, byte(p.Addr.Port()>>8), byte(p.Addr.Port()))
		}
		if v6 {
			resp.Peers, resp.Peers6 = "", string(b)
		} else {
			resp.Peers = string(b)
		}
	} else {
		list := make([]peerDict, 0, len(peers))
		for _, p := range peers {
			d := peerDict{IP: p.Addr.Addr().String(), Port: int(p.Addr.Port())}
			if !req.NoPeerID {
				d.ID = string(p.ID[:])
			}
			list = append(list, d)
		}
		resp.Peers = list
	}
	writeBencode(w, http.StatusOK, resp)
	return resultOK
}

// selectPeers picks up to req.NumWant peers of the announcer's address
// family, by locality. Seeders get only leechers; nobody gets itself.
func (s *Server) selectPeers(ctx context.Context, req *AnnounceRequest) ([]Peer, error) {
	crossMax := -1
	switch {
	case s.cfg.MaxCrossZonePeers > 0:
		crossMax = s.cfg.MaxCrossZonePeers
	case s.cfg.MaxCrossZonePeers < 0:
		crossMax = 0
	}
	sel := newSelector(req.Rack, req.Zone, req.NumWant, crossMax)
	seeder := req.Seeder()
	err := s.store.RangePeers(ctx, req.InfoHash, req.Addr.Addr().Is6(), func(p Peer) bool {
		if p.Addr != req.Addr && !(seeder && p.Seeder) {
			sel.add(p)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	peers, perTier := sel.result()
	for t, n := range perTier {
		if n > 0 {
			s.m.returned.WithLabelValues(Tier(t).String()).Add(float64(n))
		}
	}
	s.m.perResponse.Observe(float64(len(peers)))
	return peers, nil
}

func (s *Server) scrape(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := s.serveScrape(w, r)
	s.m.scrapes.WithLabelValues(result).Inc()
	s.m.duration.WithLabelValues("scrape").Observe(time.Since(start).Seconds())
}

func (s *Server) serveScrape(w http.ResponseWriter, r *http.Request) string {
	ctx := r.Context()
	ihs, err := parseScrape(r.URL.RawQuery, &s.cfg)
	if err != nil {
		return s.fail(w, r, err)
	}
	resp := scrapeResponse{Files: make(map[string]scrapeFile, len(ihs))}
	for _, ih := range ihs {
		// In private mode unknown infohashes are left out, as if absent.
		ok, err := s.known(ctx, ih)
		if err != nil {
			return s.fail(w, r, err)
		}
		if !ok {
			continue
		}
		c, err := s.store.Counts(ctx, ih)
		if err != nil {
			return s.fail(w, r, err)
		}
		resp.Files[string(ih[:])] = scrapeFile{Complete: int64(c.Seeders), Incomplete: int64(c.Leechers), Downloaded: int64(c.Completed)}
	}
	writeBencode(w, http.StatusOK, resp)
	return resultOK
}
