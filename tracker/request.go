package tracker

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/anacrolix/torrent/metainfo"
)

// ClientError is an error the client sees: its text becomes the bencoded
// "failure reason".
type ClientError string

func (e ClientError) Error() string { return string(e) }

// errQueryTooLong is answered with 400.
var errQueryTooLong = ClientError("query string too long")

// Event is the announce event (BEP 3).
type Event int

// Announce events.
const (
	EventNone Event = iota
	EventStarted
	EventStopped
	EventCompleted
)

func (e Event) String() string {
	switch e {
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	case EventCompleted:
		return "completed"
	}
	return "none"
}

// maxLabel is the longest rack or zone label.
const maxLabel = 64

// AnnounceRequest is a parsed and validated announce.
type AnnounceRequest struct {
	InfoHash metainfo.Hash
	PeerID   [20]byte
	// Addr is where the peer listens: the request's source address (or a
	// trusted ip parameter or proxy header) and the port parameter.
	Addr  netip.AddrPort
	Event Event
	// Left is the bytes the peer still needs; -1 if not sent.
	Left int64
	// NumWant is the number of peers wanted, already defaulted and capped.
	NumWant  int
	Compact  bool
	NoPeerID bool
	// Rack and Zone are the peer's location labels ("" if not sent).
	Rack, Zone string
}

// Seeder reports whether the peer has the whole object.
func (r *AnnounceRequest) Seeder() bool { return r.Left == 0 }

// rangeQuery calls fn for each key=value pair of a raw query string, both
// unescaped. A pair without "=" has an empty value.
func rangeQuery(raw string, fn func(k, v string) error) error {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return ClientError("malformed query string")
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return ClientError(fmt.Sprintf("malformed query parameter %q", k))
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func validLabel(s string) bool {
	if len(s) > maxLabel {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// parseAnnounce parses a raw announce query from a client at remote. cfg
// must be validated. Every error is a ClientError.
func parseAnnounce(raw string, remote netip.Addr, cfg *Config) (AnnounceRequest, error) {
	req := AnnounceRequest{Left: -1, NumWant: cfg.DefaultNumWant, Compact: true}
	if len(raw) > cfg.MaxQueryBytes {
		return req, errQueryTooLong
	}
	var haveIH, havePeerID, havePort bool
	var port uint64
	var ipParam string
	err := rangeQuery(raw, func(k, v string) error {
		switch k {
		case "info_hash":
			if haveIH {
				return ClientError("more than one info_hash")
			}
			if len(v) != 20 {
				return ClientError(fmt.Sprintf("info_hash is %d bytes, want 20", len(v)))
			}
			copy(req.InfoHash[:], v)
			haveIH = true
		case "peer_id":
			if len(v) != 20 {
				return ClientError(fmt.Sprintf("peer_id is %d bytes, want 20", len(v)))
			}
			copy(req.PeerID[:], v)
			havePeerID = true
		case "port":
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return ClientError(fmt.Sprintf("invalid port %.20q", v))
			}
			port, havePort = p, true
		case "left":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ClientError(fmt.Sprintf("invalid left %.20q", v))
			}
			req.Left = max(n, -1)
		case "event":
			switch v {
			case "", "empty":
				req.Event = EventNone
			case "started":
				req.Event = EventStarted
			case "stopped":
				req.Event = EventStopped
			case "completed":
				req.Event = EventCompleted
			default:
				return ClientError(fmt.Sprintf("unknown event %.20q", v))
			}
		case "numwant":
			// Lenient: a bad or negative numwant means the default.
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				req.NumWant = int(min(n, int64(cfg.MaxNumWant)))
			}
		case "compact":
			req.Compact = v != "0"
		case "no_peer_id":
			req.NoPeerID = v == "1"
		case "ip":
			if ipParam == "" {
				ipParam = v
			}
		case "rack", "zone":
			if !validLabel(v) {
				return ClientError(fmt.Sprintf("invalid %s label (at most %d of A-Z a-z 0-9 . _ : -)", k, maxLabel))
			}
			if k == "rack" {
				req.Rack = v
			} else {
				req.Zone = v
			}
		}
		return nil
	})
	if err != nil {
		return req, err
	}
	switch {
	case !haveIH:
		return req, ClientError("missing info_hash")
	case !havePeerID:
		return req, ClientError("missing peer_id")
	case !havePort:
		return req, ClientError("missing port")
	}
	ip := remote.Unmap().WithZone("")
	if cfg.TrustIPParam && ipParam != "" {
		if a, err := netip.ParseAddr(ipParam); err == nil && usableIP(a) {
			ip = a.Unmap().WithZone("")
		}
	}
	if !usableIP(ip) {
		return req, ClientError("cannot determine your address")
	}
	req.Addr = netip.AddrPortFrom(ip, uint16(port))
	return req, nil
}

// usableIP reports whether peers could dial a.
func usableIP(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
}

// parseScrape returns the distinct info_hash values of a raw scrape query.
func parseScrape(raw string, cfg *Config) ([]metainfo.Hash, error) {
	if len(raw) > cfg.MaxQueryBytes {
		return nil, errQueryTooLong
	}
	var ihs []metainfo.Hash
	seen := map[metainfo.Hash]bool{}
	err := rangeQuery(raw, func(k, v string) error {
		if k != "info_hash" {
			return nil
		}
		if len(v) != 20 {
			return ClientError(fmt.Sprintf("info_hash is %d bytes, want 20", len(v)))
		}
		ih := metainfo.Hash([]byte(v))
		if !seen[ih] {
			if len(ihs) == cfg.MaxScrapeInfoHashes {
				return ClientError(fmt.Sprintf("more than %d info_hash values", cfg.MaxScrapeInfoHashes))
			}
			seen[ih] = true
			ihs = append(ihs, ih)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ihs) == 0 {
		return nil, ClientError("full scrape is not supported: give info_hash")
	}
	return ihs, nil
}

// isClientError reports whether err is a ClientError and returns it.
func isClientError(err error) (ClientError, bool) {
	var ce ClientError
	ok := errors.As(err, &ce)
	return ce, ok
}
