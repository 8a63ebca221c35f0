package tracker

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

func validQuery(extra string) string {
	q := url.Values{}
	q.Set("info_hash", "aaaaaaaaaaaaaaaaaaaa")
	q.Set("peer_id", "-SW0001-abcdefghijkl")
	q.Set("port", "6881")
	q.Set("left", "100")
	s := q.Encode()
	if extra != "" {
		s += "&" + extra
	}
	return s
}

// FuzzParseAnnounce feeds arbitrary queries and source addresses to the
// announce parser and to the whole handler: neither may panic, every
// rejection is a ClientError, and every accepted request is usable.
func FuzzParseAnnounce(f *testing.F) {
	seeds := []string{
		validQuery(""),
		validQuery("event=started&numwant=50&compact=1&rack=r1&zone=z1"),
		validQuery("event=stopped"),
		validQuery("event=completed&left=0"),
		validQuery("numwant=99999999999999999999"),
		validQuery("numwant=-1&compact=0&no_peer_id=1"),
		validQuery("ip=10.0.0.1"),
		validQuery("ip=::ffff:1.2.3.4&ipv6=::1"),
		validQuery("rack=" + strings.Repeat("x", 65)),
		validQuery("event=bogus"),
		validQuery("left=-7"),
		"info_hash=short&peer_id=-SW0001-abcdefghijkl&port=1",
		"info_hash=%zz",
		"port=0",
		"port=65536",
		"&&&=&=",
		"",
		strings.Repeat("a=b&", 2000),
	}
	for _, s := range seeds {
		f.Add(s, "127.0.0.1")
	}
	f.Add(validQuery(""), "::1")
	f.Add(validQuery(""), "0.0.0.0")
	f.Add(validQuery(""), "garbage")

	cfgs := make([]Config, 2)
	for i := range cfgs {
		c, err := Config{Public: true, TrustIPParam: i == 1, MaxNumWant: 30}.Validate()
		if err != nil {
			f.Fatal(err)
		}
		cfgs[i] = c
	}
	store := NewMemoryStore(time.Minute)
	f.Cleanup(func() { store.Close() })
	srv, err := New(cfgs[0], store, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, raw, remote string) {
		ip, _ := netip.ParseAddr(remote)
		for _, cfg := range cfgs {
			req, err := parseAnnounce(raw, ip, &cfg)
			if err != nil {
				if _, ok := isClientError(err); !ok {
					t.Fatalf("parseAnnounce(%q) error %v is not a ClientError", raw, err)
				}
				continue
			}
			switch {
			case len(raw) > cfg.MaxQueryBytes:
				t.Fatalf("parseAnnounce accepted a %d-byte query; limit %d", len(raw), cfg.MaxQueryBytes)
			case req.Addr.Port() == 0 || !usableIP(req.Addr.Addr()) || req.Addr.Addr().Is4In6():
				t.Fatalf("parseAnnounce(%q, %q) accepted address %v", raw, remote, req.Addr)
			case req.NumWant < 0 || req.NumWant > cfg.MaxNumWant:
				t.Fatalf("parseAnnounce(%q) numwant %d outside [0, %d]", raw, req.NumWant, cfg.MaxNumWant)
			case req.Left < -1:
				t.Fatalf("parseAnnounce(%q) left %d", raw, req.Left)
			case !validLabel(req.Rack) || !validLabel(req.Zone):
				t.Fatalf("parseAnnounce(%q) labels %q %q", raw, req.Rack, req.Zone)
			case !cfg.TrustIPParam && req.Addr.Addr() != ip.Unmap().WithZone(""):
				t.Fatalf("parseAnnounce(%q) used address %v; the request came from %v", raw, req.Addr.Addr(), ip)
			}
		}

		// The handler answers anything with a bencoded body.
		r := httptest.NewRequest(http.MethodGet, "/announce", nil)
		r.URL.RawQuery = raw
		r.RemoteAddr = netip.AddrPortFrom(ip, 40000).String()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("announce %q: status %d; want 200 or 400", raw, w.Code)
		}
		var v map[string]any
		if err := bencode.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("announce %q: body %q is not a bencoded dict: %v", raw, w.Body.Bytes(), err)
		}
		if _, ok := v["failure reason"]; !ok {
			if _, ok := v["interval"]; !ok {
				t.Fatalf("announce %q: body %q has neither failure reason nor interval", raw, w.Body.Bytes())
			}
		}
	})
}

func TestParseScrape(t *testing.T) {
	cfg, _ := Config{MaxScrapeInfoHashes: 2}.Validate()
	a, b := strings.Repeat("a", 20), strings.Repeat("b", 20)
	q := func(ihs ...string) string {
		v := url.Values{}
		for _, ih := range ihs {
			v.Add("info_hash", ih)
		}
		return v.Encode()
	}
	for _, tc := range []struct {
		raw     string
		want    int
		wantErr string
	}{
		{q(a), 1, ""},
		{q(a, b, a), 2, ""},
		{q(a, b, "c"), 0, "1 bytes"},
		{q(a, b, strings.Repeat("c", 20)), 0, "more than 2"},
		{"", 0, "full scrape"},
		{"info_hash=%zz", 0, "malformed"},
		{strings.Repeat("x", 5000), 0, "too long"},
	} {
		got, err := parseScrape(tc.raw, &cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseScrape(%.40q) = %v; want error containing %q", tc.raw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tc.want {
			t.Errorf("parseScrape(%.40q) = %d infohashes, %v; want %d", tc.raw, len(got), err, tc.want)
		}
		if len(got) > 0 && got[0] != metainfo.Hash([]byte(a)) {
			t.Errorf("parseScrape(%.40q)[0] = %v; want the first info_hash", tc.raw, got[0])
		}
	}
}
