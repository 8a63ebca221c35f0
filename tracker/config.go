package tracker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Defaults for Config and EtcdConfig.
const (
	DefaultListenAddr          = ":6969"
	DefaultInterval            = 30 * time.Second
	DefaultNumWant             = 50
	DefaultMaxNumWant          = 200
	DefaultMaxQueryBytes       = 4096
	DefaultMaxScrapeInfoHashes = 64
	DefaultPrefix              = "/swarmfs/"
	DefaultDialTimeout         = 5 * time.Second
	DefaultRequestTimeout      = 5 * time.Second
	DefaultFlushInterval       = 50 * time.Millisecond
	DefaultMaxBatch            = 128 // etcd's default --max-txn-ops
	DefaultMaxPending          = 1 << 16
	DefaultKnownTTL            = 10 * time.Minute
	DefaultUnknownTTL          = 2 * time.Second
	DefaultLookupRate          = 200
)

// Config configures a tracker: the HTTP protocol, peer selection, and (for
// Run) where it listens, its etcd and its logs. The zero value of each field
// means its default, filled in by Validate.
type Config struct {
	// ListenAddr is the HTTP address for announce, scrape, /metrics and
	// /healthz (Run only). Default ":6969".
	ListenAddr string

	// Interval is the re-announce interval sent to clients. Default 30s.
	Interval time.Duration
	// MinInterval is the "min interval" sent to clients. Default Interval/2.
	MinInterval time.Duration
	// PeerTTL is how long a peer stays listed after its last announce.
	// Default 3×Interval.
	PeerTTL time.Duration

	// DefaultNumWant is the number of peers returned when the client sends
	// no numwant. Default 50.
	DefaultNumWant int
	// MaxNumWant caps numwant. Default 200.
	MaxNumWant int
	// MaxCrossZonePeers caps the peers from other known zones in one
	// response. 0 (default) means no cap; a negative value allows none.
	// Peers of unknown zone, and announcers of unknown zone, are never
	// capped.
	MaxCrossZonePeers int

	// Public tracks any infohash. By default (private mode) only infohashes
	// in the index (<prefix>info/<infohash> in etcd) are tracked.
	Public bool
	// TrustIPParam uses the "ip" query parameter as the peer's address.
	// Off by default: a client could register someone else's address.
	TrustIPParam bool
	// ClientIPHeader, if set, names a header (e.g. X-Forwarded-For) set by
	// a trusted reverse proxy; its last address is the peer's address.
	ClientIPHeader string
	// MaxQueryBytes rejects longer query strings with 400. Default 4096.
	MaxQueryBytes int
	// MaxScrapeInfoHashes caps the info_hash values of one scrape.
	// Default 64.
	MaxScrapeInfoHashes int

	// Etcd is where replicas share peers and read the index. Without
	// endpoints Run keeps peers in memory (one replica only), and private
	// mode is then not available.
	Etcd EtcdConfig

	// LogLevel is debug, info, warn or error (Run only). Default info.
	LogLevel string
	// LogFormat is text or json (Run only). Default text.
	LogFormat string
}

// EtcdConfig configures the etcd peer store and registry.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs.
	Endpoints []string
	// Prefix is the key prefix shared with the index. Default "/swarmfs/".
	Prefix string
	// DialTimeout bounds connecting to etcd at start. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each etcd request. Default 5s.
	RequestTimeout time.Duration
	// FlushInterval is the longest a peer write waits before it is sent to
	// etcd. Default 50ms.
	FlushInterval time.Duration
	// MaxBatch is the most operations in one etcd transaction; a full
	// batch is sent at once. It must not exceed etcd's --max-txn-ops.
	// Default 128.
	MaxBatch int
	// MaxPending is the most peer writes waiting for etcd; beyond it
	// announces wait. Default 65536.
	MaxPending int
	// KnownTTL is how long the registry caches an infohash found in the
	// index. Default 10m.
	KnownTTL time.Duration
	// UnknownTTL is how long the registry caches an infohash not found.
	// Default 2s.
	UnknownTTL time.Duration
	// LookupRate caps registry lookups that miss the cache, per second.
	// Default 200.
	LookupRate int
}

// AddFlags registers the tracker flags on fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "listen", DefaultListenAddr, "HTTP address for announce, scrape, /metrics and /healthz")
	fs.DurationVar(&c.Interval, "interval", DefaultInterval, "re-announce interval sent to clients")
	fs.DurationVar(&c.MinInterval, "min-interval", 0, "min interval sent to clients (0: interval/2)")
	fs.DurationVar(&c.PeerTTL, "peer-ttl", 0, "how long a peer stays listed after its last announce (0: 3×interval)")
	fs.IntVar(&c.DefaultNumWant, "numwant", DefaultNumWant, "peers returned when the client sends no numwant")
	fs.IntVar(&c.MaxNumWant, "max-numwant", DefaultMaxNumWant, "cap on numwant")
	fs.IntVar(&c.MaxCrossZonePeers, "max-cross-zone-peers", 0, "cap on peers from other known zones per response (0: no cap; negative: none at all)")
	fs.BoolVar(&c.Public, "public", false, "track any infohash, not only those in the index")
	fs.BoolVar(&c.TrustIPParam, "trust-ip-param", false, "use the announce ip parameter as the peer address")
	fs.StringVar(&c.ClientIPHeader, "client-ip-header", "", "header carrying the client address from a trusted proxy, e.g. X-Forwarded-For")
	fs.IntVar(&c.MaxQueryBytes, "max-query-bytes", DefaultMaxQueryBytes, "longest accepted query string")
	fs.IntVar(&c.MaxScrapeInfoHashes, "max-scrape-infohashes", DefaultMaxScrapeInfoHashes, "most info_hash values in one scrape")
	fs.StringSliceVar(&c.Etcd.Endpoints, "etcd-endpoints", nil, "etcd client URLs (comma-separated); none: peers in memory, one replica")
	fs.StringVar(&c.Etcd.Prefix, "etcd-prefix", DefaultPrefix, "etcd key prefix shared with the index")
	fs.DurationVar(&c.Etcd.DialTimeout, "etcd-dial-timeout", DefaultDialTimeout, "etcd connect timeout")
	fs.DurationVar(&c.Etcd.RequestTimeout, "etcd-request-timeout", DefaultRequestTimeout, "etcd request timeout")
	fs.DurationVar(&c.Etcd.FlushInterval, "etcd-flush-interval", DefaultFlushInterval, "longest wait before peer writes go to etcd")
	fs.IntVar(&c.Etcd.MaxBatch, "etcd-max-batch", DefaultMaxBatch, "operations per etcd transaction (at most etcd's --max-txn-ops)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
}

// Validate returns a copy of c with defaults filled in, or an error naming
// the first invalid field.
func (c Config) Validate() (Config, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return c, fmt.Errorf("tracker config: listen address %q: %w", c.ListenAddr, err)
	}
	if c.Interval < 0 || c.MinInterval < 0 || c.PeerTTL < 0 {
		return c, errors.New("tracker config: intervals must not be negative")
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < time.Second {
		return c, fmt.Errorf("tracker config: interval %v is below 1s", c.Interval)
	}
	if c.MinInterval == 0 {
		c.MinInterval = max(c.Interval/2, time.Second)
	}
	if c.MinInterval > c.Interval {
		return c, fmt.Errorf("tracker config: min interval %v is above interval %v", c.MinInterval, c.Interval)
	}
	if c.PeerTTL == 0 {
		c.PeerTTL = 3 * c.Interval
	}
	if c.PeerTTL < c.Interval {
		return c, fmt.Errorf("tracker config: peer ttl %v is below interval %v: peers would vanish between announces", c.PeerTTL, c.Interval)
	}
	if c.DefaultNumWant < 0 || c.MaxNumWant < 0 || c.MaxQueryBytes < 0 || c.MaxScrapeInfoHashes < 0 {
		return c, errors.New("tracker config: counts must not be negative")
	}
	if c.MaxNumWant == 0 {
		c.MaxNumWant = DefaultMaxNumWant
	}
	if c.DefaultNumWant == 0 {
		c.DefaultNumWant = min(DefaultNumWant, c.MaxNumWant)
	}
	if c.DefaultNumWant > c.MaxNumWant {
		return c, fmt.Errorf("tracker config: numwant %d is above max numwant %d", c.DefaultNumWant, c.MaxNumWant)
	}
	if c.MaxQueryBytes == 0 {
		c.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if c.MaxScrapeInfoHashes == 0 {
		c.MaxScrapeInfoHashes = DefaultMaxScrapeInfoHashes
	}
	var err error
	if c.Etcd, err = c.Etcd.validate(); err != nil {
		return c, err
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	return c, nil
}

func (c EtcdConfig) validate() (EtcdConfig, error) {
	if c.DialTimeout < 0 || c.RequestTimeout < 0 || c.FlushInterval < 0 || c.KnownTTL < 0 || c.UnknownTTL < 0 {
		return c, errors.New("tracker config: etcd durations must not be negative")
	}
	if c.MaxBatch < 0 || c.MaxPending < 0 || c.LookupRate < 0 {
		return c, errors.New("tracker config: etcd counts must not be negative")
	}
	c = c.withDefaults()
	if !strings.HasPrefix(c.Prefix, "/") {
		return c, fmt.Errorf("tracker config: etcd prefix %q must start with /", c.Prefix)
	}
	return c, nil
}

// withDefaults fills zero fields.
func (c EtcdConfig) withDefaults() EtcdConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.KnownTTL <= 0 {
		c.KnownTTL = DefaultKnownTTL
	}
	if c.UnknownTTL <= 0 {
		c.UnknownTTL = DefaultUnknownTTL
	}
	if c.LookupRate <= 0 {
		c.LookupRate = DefaultLookupRate
	}
	return c
}

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", c.ListenAddr),
		slog.Duration("interval", c.Interval),
		slog.Duration("min_interval", c.MinInterval),
		slog.Duration("peer_ttl", c.PeerTTL),
		slog.Int("numwant", c.DefaultNumWant),
		slog.Int("max_numwant", c.MaxNumWant),
		slog.Int("max_cross_zone_peers", c.MaxCrossZonePeers),
		slog.Bool("private", !c.Public),
		slog.Bool("trust_ip_param", c.TrustIPParam),
		slog.String("client_ip_header", c.ClientIPHeader),
		slog.Any("etcd_endpoints", c.Etcd.Endpoints),
		slog.String("etcd_prefix", c.Etcd.Prefix),
	)
}
