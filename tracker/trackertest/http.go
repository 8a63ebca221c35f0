// Package trackertest holds tests shared by tracker implementations and
// their users: the PeerStore contract suite (TestPeerStore) and an HTTP
// tracker client that builds announce and scrape requests and decodes the
// bencoded answers with the bencode library.
package trackertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Announce describes an announce request. Zero fields are left out of the
// query, except info_hash, peer_id and port.
type Announce struct {
	InfoHash metainfo.Hash
	PeerID   [20]byte
	Port     int
	// Left is sent unless negative; 0 announces a seeder.
	Left    int64
	Event   string
	NumWant string // sent as is when not empty
	Compact string // "0", "1" or "" (not sent)
	Rack    string
	Zone    string
	// Extra parameters, sent as is.
	Extra url.Values
}

// PeerID returns a 20-byte peer_id made from s.
func PeerID(s string) [20]byte {
	var id [20]byte
	copy(id[:], fmt.Sprintf("%-20s", s))
	return id
}

// Query returns the encoded query string.
func (a Announce) Query() string {
	q := url.Values{}
	q.Set("info_hash", string(a.InfoHash[:]))
	q.Set("peer_id", string(a.PeerID[:]))
	q.Set("port", strconv.Itoa(a.Port))
	if a.Left >= 0 {
		q.Set("left", strconv.FormatInt(a.Left, 10))
	}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("event", a.Event)
	set("numwant", a.NumWant)
	set("compact", a.Compact)
	set("rack", a.Rack)
	set("zone", a.Zone)
	for k, vs := range a.Extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	return q.Encode()
}

// AnnounceResponse is a decoded announce answer.
type AnnounceResponse struct {
	FailureReason string        `bencode:"failure reason"`
	Interval      int64         `bencode:"interval"`
	MinInterval   int64         `bencode:"min interval"`
	Complete      int64         `bencode:"complete"`
	Incomplete    int64         `bencode:"incomplete"`
	RawPeers      bencode.Bytes `bencode:"peers"`
	RawPeers6     bencode.Bytes `bencode:"peers6"`
	// Peers are the decoded peers of "peers" and "peers6", in order.
	Peers []ResponsePeer `bencode:"-"`
	// Compact reports that "peers" was a compact string.
	Compact bool     `bencode:"-"`
	keys    []string `bencode:"-"`
}

// ResponsePeer is one peer of an announce answer.
type ResponsePeer struct {
	Addr netip.AddrPort
	ID   string // non-compact form only
}

// Keys returns the top-level keys of the answer, sorted.
func (r *AnnounceResponse) Keys() []string { return r.keys }

// DecodeAnnounce decodes an announce answer, compact or not.
func DecodeAnnounce(body []byte) (AnnounceResponse, error) {
	var r AnnounceResponse
	if err := bencode.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("decode announce answer %q: %w", body, err)
	}
	var top map[string]bencode.Bytes
	if err := bencode.Unmarshal(body, &top); err != nil {
		return r, fmt.Errorf("decode announce answer %q: %w", body, err)
	}
	for k := range top {
		r.keys = append(r.keys, k)
	}
	slices.Sort(r.keys)
	if len(r.RawPeers) > 0 {
		var s string
		if err := bencode.Unmarshal(r.RawPeers, &s); err == nil {
			r.Compact = true
			ps, err := compactPeers([]byte(s), 4)
			if err != nil {
				return r, err
			}
			r.Peers = append(r.Peers, ps...)
		} else {
			var list []struct {
				ID   string `bencode:"peer id"`
				IP   string `bencode:"ip"`
				Port int    `bencode:"port"`
			}
			if err := bencode.Unmarshal(r.RawPeers, &list); err != nil {
				return r, fmt.Errorf("decode peers %q: %w", r.RawPeers, err)
			}
			for _, p := range list {
				a, err := netip.ParseAddr(p.IP)
				if err != nil || p.Port <= 0 || p.Port > 65535 {
					return r, fmt.Errorf("decode peers: bad peer %+v", p)
				}
				r.Peers = append(r.Peers, ResponsePeer{Addr: netip.AddrPortFrom(a, uint16(p.Port)), ID: p.ID})
			}
		}
	}
	if len(r.RawPeers6) > 0 {
		var s string
		if err := bencode.Unmarshal(r.RawPeers6, &s); err != nil {
			return r, fmt.Errorf("decode peers6: %w", err)
		}
		ps, err := compactPeers([]byte(s), 16)
		if err != nil {
			return r, err
		}
		r.Peers = append(r.Peers, ps...)
	}
	return r, nil
}

func compactPeers(b []byte, ipLen int) ([]ResponsePeer, error) {
	n := ipLen + 2
	if len(b)%n != 0 {
		return nil, fmt.Errorf("compact peers: %d bytes is not a multiple of %d", len(b), n)
	}
	var out []ResponsePeer
	for i := 0; i < len(b); i += n {
		a, _ := netip.AddrFromSlice(b[i : i+ipLen])
		out = append(out, ResponsePeer{Addr: netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[i+ipLen:]))})
	}
	return out, nil
}

// ScrapeFile is one infohash of a scrape answer.
type ScrapeFile struct {
	Complete   int64 `bencode:"complete"`
	Downloaded int64 `bencode:"downloaded"`
	Incomplete int64 `bencode:"incomplete"`
}

// ScrapeResponse is a decoded scrape answer.
type ScrapeResponse struct {
	FailureReason string                `bencode:"failure reason"`
	Files         map[string]ScrapeFile `bencode:"files"`
}

// File returns the entry of ih.
func (r ScrapeResponse) File(ih metainfo.Hash) (ScrapeFile, bool) {
	f, ok := r.Files[string(ih[:])]
	return f, ok
}

// DecodeScrape decodes a scrape answer.
func DecodeScrape(body []byte) (ScrapeResponse, error) {
	var r ScrapeResponse
	if err := bencode.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("decode scrape answer %q: %w", body, err)
	}
	return r, nil
}

// ScrapeQuery returns a scrape query for ihs.
func ScrapeQuery(ihs ...metainfo.Hash) string {
	q := url.Values{}
	for _, ih := range ihs {
		q.Add("info_hash", string(ih[:]))
	}
	return q.Encode()
}

// Get requests base+"?"+query (base may hold a query already) and returns
// the status and body.
func Get(ctx context.Context, base, query string) (int, []byte, error) {
	u := base
	if query != "" {
		if strings.Contains(u, "?") {
			u += "&" + query
		} else {
			u += "?" + query
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// DoAnnounce sends a and decodes the answer; a non-200 status is an error.
func DoAnnounce(ctx context.Context, announceURL string, a Announce) (AnnounceResponse, error) {
	status, body, err := Get(ctx, announceURL, a.Query())
	if err != nil {
		return AnnounceResponse{}, err
	}
	if status != http.StatusOK {
		return AnnounceResponse{}, fmt.Errorf("announce: status %d: %q", status, body)
	}
	return DecodeAnnounce(body)
}
