package tracker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"

	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

var (
	knownIH   = trackertest.IH(1)
	knownIH2  = trackertest.IH(2)
	unknownIH = trackertest.IH(99)
)

// newTestServer serves a tracker with a memory store whose registry knows
// knownIH and knownIH2, and returns its base URL.
func newTestServer(t *testing.T, cfg tracker.Config, opts ...tracker.Option) string {
	t.Helper()
	store := tracker.NewMemoryStore(time.Minute)
	t.Cleanup(func() { store.Close() })
	srv, err := tracker.New(cfg, store, tracker.StaticRegistry{knownIH: true, knownIH2: true}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// ann returns an announce for knownIH from 127.0.0.1:port.
func ann(port int, left int64) trackertest.Announce {
	return trackertest.Announce{InfoHash: knownIH, PeerID: trackertest.PeerID(fmt.Sprintf("-SW0001-%d", port)), Port: port, Left: left}
}

func with(a trackertest.Announce, f func(*trackertest.Announce)) trackertest.Announce {
	f(&a)
	return a
}

func q(a trackertest.Announce) string { return a.Query() }

// step is one request of a protocol test.
type step struct {
	path  string // default /announce
	query string
	// wantStatus defaults to 200.
	wantStatus int
	// wantFailure is a substring of the failure reason; "" wants none.
	wantFailure string
	check       func(t *testing.T, body []byte)
}

func peerAddrs(r trackertest.AnnounceResponse) []string {
	var out []string
	for _, p := range r.Peers {
		out = append(out, p.Addr.String())
	}
	slices.Sort(out)
	return out
}

func wantAnnounce(f func(t *testing.T, r trackertest.AnnounceResponse)) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		r, err := trackertest.DecodeAnnounce(body)
		if err != nil {
			t.Fatal(err)
		}
		f(t, r)
	}
}

func wantPeers(complete, incomplete int64, addrs ...string) func(t *testing.T, body []byte) {
	return wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
		t.Helper()
		slices.Sort(addrs)
		if got := peerAddrs(r); !slices.Equal(got, addrs) {
			t.Errorf("peers = %v; want %v", got, addrs)
		}
		if r.Complete != complete || r.Incomplete != incomplete {
			t.Errorf("complete, incomplete = %d, %d; want %d, %d", r.Complete, r.Incomplete, complete, incomplete)
		}
	})
}

func wantPeerCount(n int) func(t *testing.T, body []byte) {
	return wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
		t.Helper()
		if len(r.Peers) != n {
			t.Errorf("%d peers; want %d", len(r.Peers), n)
		}
	})
}

func wantScrape(ih metainfo.Hash, want *trackertest.ScrapeFile, files int) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		r, err := trackertest.DecodeScrape(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Files) != files {
			t.Errorf("scrape has %d files; want %d", len(r.Files), files)
		}
		got, ok := r.File(ih)
		if want == nil {
			if ok {
				t.Errorf("scrape lists %v: %+v; want it left out", ih, got)
			}
			return
		}
		if !ok || got != *want {
			t.Errorf("scrape of %v = %+v (present %v); want %+v", ih, got, ok, *want)
		}
	}
}

// many returns steps announcing n leechers from ports base..base+n-1.
func many(n, base int) []step {
	var out []step
	for i := range n {
		out = append(out, step{query: q(ann(base+i, 10))})
	}
	return out
}

func TestProtocol(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name  string
		cfg   tracker.Config
		steps []step
	}{
		{"started leecher in an empty swarm", tracker.Config{}, []step{
			{query: q(with(ann(1001, 100), func(a *trackertest.Announce) { a.Event = "started" })), check: wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
				want := []string{"complete", "incomplete", "interval", "min interval", "peers"}
				if !slices.Equal(r.Keys(), want) {
					t.Errorf("keys = %v; want %v", r.Keys(), want)
				}
				if r.Interval != 30 || r.MinInterval != 15 || r.Complete != 0 || r.Incomplete != 1 || len(r.Peers) != 0 || !r.Compact {
					t.Errorf("answer = %+v; want interval 30, min interval 15, 0 complete, 1 incomplete, no compact peers", r)
				}
			})},
		}},
		{"compact peers (BEP 23) by default", tracker.Config{}, []step{
			{query: q(ann(1001, 0))},
			{query: q(ann(1002, 5))},
			{query: q(ann(2000, 5)), check: wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
				if !r.Compact || !strings.HasPrefix(string(r.RawPeers), "12:") || len(r.RawPeers) != 15 {
					t.Errorf("peers %q; want a 12-byte compact string", r.RawPeers)
				}
				if got := peerAddrs(r); !slices.Equal(got, []string{"127.0.0.1:1001", "127.0.0.1:1002"}) {
					t.Errorf("peers = %v", got)
				}
				if r.Complete != 1 || r.Incomplete != 2 {
					t.Errorf("complete, incomplete = %d, %d; want 1, 2", r.Complete, r.Incomplete)
				}
			})},
		}},
		{"compact=0 gives dicts with peer ids", tracker.Config{}, []step{
			{query: q(ann(1001, 0))},
			{query: q(with(ann(2000, 5), func(a *trackertest.Announce) { a.Compact = "0" })), check: wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
				if r.Compact || len(r.Peers) != 1 || r.Peers[0].Addr.String() != "127.0.0.1:1001" || r.Peers[0].ID != peerIDOf(1001) {
					t.Errorf("peers = %+v (compact %v); want one dict 127.0.0.1:1001 with its peer id", r.Peers, r.Compact)
				}
			})},
			{query: q(ann(2000, 5)) + "&compact=0&no_peer_id=1", check: wantAnnounce(func(t *testing.T, r trackertest.AnnounceResponse) {
				if r.Compact || len(r.Peers) != 1 || r.Peers[0].ID != "" {
					t.Errorf("peers = %+v; want one dict without peer id", r.Peers)
				}
			})},
		}},
		{"numwant limits the peers", tracker.Config{DefaultNumWant: 20, MaxNumWant: 25}, append(many(30, 1001),
			step{query: q(with(ann(2000, 5), func(a *trackertest.Announce) { a.NumWant = "5" })), check: wantPeerCount(5)},
			step{query: q(with(ann(2000, 5), func(a *trackertest.Announce) { a.NumWant = "1000000000000" })), check: wantPeerCount(25)},
			step{query: q(with(ann(2000, 5), func(a *trackertest.Announce) { a.NumWant = "-3" })), check: wantPeerCount(20)},
			step{query: q(with(ann(2000, 5), func(a *trackertest.Announce) { a.NumWant = "lots" })), check: wantPeerCount(20)},
			step{query: q(ann(2000, 5)), check: wantPeerCount(20)},
			step{query: q(with(ann(3000, 5), func(a *trackertest.Announce) { a.NumWant = "0" })), check: wantPeers(0, 32)},
		)},
		{"seeders get only leechers", tracker.Config{}, []step{
			{query: q(ann(1001, 0))}, {query: q(ann(1002, 0))},
			{query: q(ann(1003, 9))}, {query: q(ann(1004, 9))},
			{query: q(ann(2000, 0)), check: wantPeers(3, 2, "127.0.0.1:1003", "127.0.0.1:1004")},
		}},
		{"nobody gets itself", tracker.Config{}, []step{
			{query: q(ann(1001, 9))},
			{query: q(ann(1001, 9)), check: wantPeers(0, 1)},
		}},
		{"stopped removes the peer", tracker.Config{}, []step{
			{query: q(ann(1001, 9))}, {query: q(ann(1002, 9))},
			{query: q(with(ann(1001, 9), func(a *trackertest.Announce) { a.Event = "stopped" })), check: wantPeers(0, 1)},
			{query: q(ann(2000, 9)), check: wantPeers(0, 2, "127.0.0.1:1002")},
		}},
		{"completed counts as downloaded", tracker.Config{}, []step{
			{query: q(ann(1001, 9))},
			{query: q(with(ann(1001, 0), func(a *trackertest.Announce) { a.Event = "completed" })), check: wantPeers(1, 0)},
			{query: q(ann(1001, 0))},
			{query: q(ann(1002, 0))},
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH), check: wantScrape(knownIH, &trackertest.ScrapeFile{Complete: 2, Downloaded: 1}, 1)},
		}},
		{"left missing means leecher", tracker.Config{}, []step{
			{query: q(ann(1001, -1)), check: wantPeers(0, 1)},
		}},
		{"ip parameter is ignored", tracker.Config{}, []step{
			{query: q(ann(1001, 9)) + "&ip=10.9.9.9&ipv4=10.9.9.9"},
			{query: q(ann(2000, 9)), check: wantPeers(0, 2, "127.0.0.1:1001")},
		}},
		{"ip parameter is used when trusted", tracker.Config{TrustIPParam: true}, []step{
			{query: q(ann(1001, 9)) + "&ip=10.9.9.9"},
			{query: q(ann(1002, 9)) + "&ip=0.0.0.0"}, // unusable: the source address
			{query: q(ann(2000, 9)), check: wantPeers(0, 3, "10.9.9.9:1001", "127.0.0.1:1002")},
		}},
		{"scrape (BEP 48)", tracker.Config{MaxScrapeInfoHashes: 2}, []step{
			{query: q(ann(1001, 0))}, {query: q(ann(1002, 9))}, {query: q(ann(1003, 9))},
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH, knownIH2), check: wantScrape(knownIH, &trackertest.ScrapeFile{Complete: 1, Incomplete: 2}, 2)},
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH2), check: wantScrape(knownIH2, &trackertest.ScrapeFile{}, 1)},
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH, unknownIH), check: wantScrape(unknownIH, nil, 1)},
			{path: "/scrape", query: "", wantFailure: "full scrape is not supported"},
			{path: "/scrape", query: "info_hash=abc", wantFailure: "info_hash is 3 bytes"},
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH, knownIH2, trackertest.IH(3)), wantFailure: "more than 2 info_hash"},
			{path: "/scrape", query: "info_hash=" + long, wantStatus: http.StatusBadRequest, wantFailure: "too long"},
		}},
		{"private mode refuses unknown infohashes", tracker.Config{}, []step{
			{query: q(with(ann(1001, 9), func(a *trackertest.Announce) { a.InfoHash = unknownIH })), wantFailure: "unregistered torrent: " + unknownIH.HexString()},
		}},
		{"bad input", tracker.Config{}, []step{
			{query: strings.Replace(q(ann(1001, 9)), "info_hash=", "info_hash=x", 1), wantFailure: "info_hash is 21 bytes"},
			{query: "info_hash=abc&peer_id=-SW0001-abcdefghijkl&port=1", wantFailure: "info_hash is 3 bytes"},
			{query: strings.Replace(q(ann(1001, 9)), "info_hash=", "foo=", 1), wantFailure: "missing info_hash"},
			{query: q(ann(1001, 9)) + "&" + url.Values{"info_hash": {string(knownIH2[:])}}.Encode(), wantFailure: "more than one info_hash"},
			{query: strings.Replace(q(ann(1001, 9)), "peer_id=", "peer_id=x", 1), wantFailure: "peer_id is 21 bytes"},
			{query: strings.Replace(q(ann(1001, 9)), "peer_id=", "foo=", 1), wantFailure: "missing peer_id"},
			{query: strings.Replace(q(ann(1001, 9)), "port=1001", "port=0", 1), wantFailure: "invalid port"},
			{query: strings.Replace(q(ann(1001, 9)), "port=1001", "port=65536", 1), wantFailure: "invalid port"},
			{query: strings.Replace(q(ann(1001, 9)), "port=1001", "port=-1", 1), wantFailure: "invalid port"},
			{query: strings.Replace(q(ann(1001, 9)), "port=1001", "port=http", 1), wantFailure: "invalid port"},
			{query: strings.Replace(q(ann(1001, 9)), "port=1001", "", 1), wantFailure: "missing port"},
			{query: strings.Replace(q(ann(1001, 9)), "left=9", "left=lots", 1), wantFailure: "invalid left"},
			{query: q(with(ann(1001, 9), func(a *trackertest.Announce) { a.Event = "paused" })), wantFailure: "unknown event"},
			{query: q(with(ann(1001, 9), func(a *trackertest.Announce) { a.Rack = "r 1" })), wantFailure: "invalid rack label"},
			{query: q(with(ann(1001, 9), func(a *trackertest.Announce) { a.Zone = strings.Repeat("z", 65) })), wantFailure: "invalid zone label"},
			{query: q(ann(1001, 9)) + "&%zz=1", wantFailure: "malformed query"},
			{query: q(ann(1001, 9)) + "&pad=" + long, wantStatus: http.StatusBadRequest, wantFailure: "query string too long"},
			// None of it registered anything.
			{path: "/scrape", query: trackertest.ScrapeQuery(knownIH), check: wantScrape(knownIH, &trackertest.ScrapeFile{}, 1)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := newTestServer(t, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i, st := range tt.steps {
				path := st.path
				if path == "" {
					path = "/announce"
				}
				status, body, err := trackertest.Get(ctx, base+path, st.query)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := st.wantStatus
				if want == 0 {
					want = http.StatusOK
				}
				if status != want {
					t.Errorf("step %d: GET %s?%.60q: status %d; want %d (body %q)", i, path, st.query, status, want, body)
				}
				var f struct {
					Reason string `bencode:"failure reason"`
				}
				if err := bencode.Unmarshal(body, &f); err != nil {
					t.Fatalf("step %d: body %q is not bencode: %v", i, body, err)
				}
				switch {
				case st.wantFailure == "" && f.Reason != "":
					t.Fatalf("step %d: GET %s?%.60q: failure %q; want none", i, path, st.query, f.Reason)
				case st.wantFailure != "" && !strings.Contains(f.Reason, st.wantFailure):
					t.Errorf("step %d: GET %s?%.60q: failure %q; want one containing %q", i, path, st.query, f.Reason, st.wantFailure)
				}
				if st.check != nil {
					st.check(t, body)
				}
			}
		})
	}
}

// IPv6 announcers get IPv6 peers in "peers6" (BEP 7) and never IPv4 ones.
func TestAnnounceIPv6(t *testing.T) {
	store := tracker.NewMemoryStore(time.Minute)
	defer store.Close()
	srv, err := tracker.New(tracker.Config{Public: true}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	do := func(remote string, port int, compact string) trackertest.AnnounceResponse {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/announce?"+q(with(ann(port, 9), func(a *trackertest.Announce) { a.Compact = compact })), nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		resp, err := trackertest.DecodeAnnounce(w.Body.Bytes())
		if err != nil || resp.FailureReason != "" {
			t.Fatalf("announce from %s: %+v, %v", remote, resp, err)
		}
		return resp
	}
	do("10.0.0.1:5000", 1001, "")
	do("[2001:db8::1]:5000", 1002, "")
	do("[::ffff:10.0.0.3]:5000", 1003, "") // mapped: an IPv4 peer
	r6 := do("[2001:db8::2]:5000", 2000, "")
	if got := peerAddrs(r6); !slices.Equal(got, []string{"[2001:db8::1]:1002"}) || len(r6.RawPeers6) == 0 {
		t.Errorf("IPv6 announcer got %v (peers6 %q); want only [2001:db8::1]:1002 in peers6", got, r6.RawPeers6)
	}
	if r6.Incomplete != 4 {
		t.Errorf("incomplete = %d; want 4 (counts cover both families)", r6.Incomplete)
	}
	r4 := do("10.0.0.2:5000", 2001, "")
	if got := peerAddrs(r4); !slices.Equal(got, []string{"10.0.0.1:1001", "10.0.0.3:1003"}) {
		t.Errorf("IPv4 announcer got %v; want the two IPv4 peers", got)
	}
	r6d := do("[2001:db8::3]:5000", 2002, "0")
	if got := peerAddrs(r6d); len(got) != 2 || !strings.HasPrefix(got[0], "[2001:db8::") {
		t.Errorf("IPv6 non-compact announcer got %v; want the two other IPv6 peers", got)
	}
}

// A proxy header is used only when configured, and then its last address.
func TestClientIPHeader(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string
	}{{"", "127.0.0.1:1001"}, {"X-Forwarded-For", "10.1.1.1:1001"}} {
		base := newTestServer(t, tracker.Config{ClientIPHeader: tc.header})
		req, _ := http.NewRequest(http.MethodGet, base+"/announce?"+q(ann(1001, 9)), nil)
		req.Header.Set("X-Forwarded-For", "192.0.2.7, 10.1.1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r, err := trackertest.DoAnnounce(context.Background(), base+"/announce", ann(2000, 9))
		if err != nil {
			t.Fatal(err)
		}
		if got := peerAddrs(r); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("ClientIPHeader %q: peers %v; want [%s]", tc.header, got, tc.want)
		}
	}
}

// Metrics count announces by result and peers by tier.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	base := newTestServer(t, tracker.Config{}, tracker.WithRegisterer(reg))
	ctx := context.Background()
	for _, a := range []trackertest.Announce{ann(1001, 0), ann(1002, 9), with(ann(1003, 9), func(a *trackertest.Announce) { a.InfoHash = unknownIH })} {
		trackertest.Get(ctx, base+"/announce", a.Query())
	}
	trackertest.Get(ctx, base+"/announce", "info_hash=x")
	got := gather(t, reg)
	for k, want := range map[string]float64{
		`swarmfs_tracker_announces_total{result="ok"}`:           2,
		`swarmfs_tracker_announces_total{result="unregistered"}`: 1,
		`swarmfs_tracker_announces_total{result="bad_request"}`:  1,
		`swarmfs_tracker_peers_returned_total{tier="other"}`:     1,
		`swarmfs_tracker_swarms`:                                 1,
		`swarmfs_tracker_peers{role="seeder"}`:                   1,
		`swarmfs_tracker_peers{role="leecher"}`:                  1,
		`swarmfs_tracker_swarm_size_peers_count`:                 1,
		`swarmfs_tracker_swarm_size_peers_sum`:                   2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v; want %v", k, got[k], want)
		}
	}
}

// gather returns samples as name{labels} → value (histograms as _count and _sum).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[f.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[f.GetName()+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func peerIDOf(port int) string {
	id := ann(port, 0).PeerID
	return string(id[:])
}
