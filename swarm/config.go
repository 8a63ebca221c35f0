package swarm

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
)

// Defaults for Config. Sizes are bytes, rates are bytes per second.
const (
	DefaultListenAddr         = ":6881"
	DefaultDataDir            = "/var/lib/swarmfs/data"
	DefaultOriginRate         = 32 << 20
	DefaultStallTimeout       = 30 * time.Second
	DefaultMinPieceLength     = 4 << 20
	DefaultMaxPieceLength     = 256 << 20
	DefaultTargetPieces       = 8192
	DefaultMaxConnsPerObject  = 50
	DefaultHalfOpenPerObject  = 25
	DefaultDialRate           = 200
	DefaultOriginRetries      = 3
	DefaultOriginTimeout      = 30 * time.Second
	DefaultMaxInfoBytes       = 1 << 20
	minPieceLengthAllowed     = 16 << 10
	defaultRetryBackoffPeriod = 500 * time.Millisecond
)

// Config configures a Client. The zero value of each field means its default,
// filled in by Validate.
type Config struct {
	// ListenAddr is the TCP address peers connect to. An IPv4 host disables
	// IPv6 and the other way round. Default ":6881".
	ListenAddr string
	// DataDir holds object data (<infohash>/data), the piece completion
	// database and conversion scratch files. Default /var/lib/swarmfs/data.
	DataDir string

	// UploadRate caps bytes sent to peers per second. 0 means no cap.
	UploadRate ByteSize
	// DownloadRate caps bytes received from peers per second. 0 means no cap.
	DownloadRate ByteSize
	// OriginRate caps the origin fallback (bytes per second, summed over all
	// objects). It does not apply to conversions. Default 32 MiB/s.
	OriginRate ByteSize
	// StallTimeout is how long an incomplete object may go without useful
	// bytes from peers before the origin is used as a fallback. Default 30s.
	StallTimeout time.Duration
	// NoOriginFallback disables the origin fallback entirely.
	NoOriginFallback bool

	// PieceLength fixes the piece length of new objects (a power of two).
	// 0 chooses it from the object size: the smallest power of two of at
	// least MinPieceLength that gives at most TargetPieces pieces, capped at
	// MaxPieceLength.
	PieceLength ByteSize
	// MinPieceLength is the smallest automatic piece length. Default 4 MiB.
	MinPieceLength ByteSize
	// MaxPieceLength is the largest automatic piece length. Default 256 MiB.
	MaxPieceLength ByteSize
	// TargetPieces is the piece count the automatic choice stays under.
	// Default 8192, about 160 KiB of piece hashes in the info dict.
	TargetPieces int
	// MaxInfoBytes rejects objects whose bencoded info would be larger
	// (the info goes into etcd). Default 1 MiB.
	MaxInfoBytes int

	// MaxConnsPerObject caps established peer connections per object.
	// Default 50.
	MaxConnsPerObject int
	// HalfOpenPerObject caps concurrent dials per object. Default 25.
	HalfOpenPerObject int
	// DialRate caps new outgoing peer dials per second. Default 200.
	DialRate int
	// EnableUTP also listens and dials over uTP. TCP only by default: it is
	// cheaper on CPU and all swarmfs peers speak it.
	EnableUTP bool

	// OriginRetries is how many times a failed origin transfer is resumed
	// before giving up. Default 3.
	OriginRetries int
	// OriginTimeout bounds connecting to the origin and waiting for response
	// headers, and how long a body may stay silent. Default 30s.
	OriginTimeout time.Duration
}

// AddFlags registers the swarm flags on fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "listen", DefaultListenAddr, "peer (BitTorrent) listen address")
	fs.StringVar(&c.DataDir, "data-dir", DefaultDataDir, "directory for object data and piece completion")
	fs.Var(&c.UploadRate, "upload-rate", "cap on upload to peers per second, e.g. 50MiB (0: none)")
	fs.Var(&c.DownloadRate, "download-rate", "cap on download from peers per second (0: none)")
	c.OriginRate = DefaultOriginRate
	fs.Var(&c.OriginRate, "origin-rate", "cap on origin fallback reads per second, all objects together")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", DefaultStallTimeout, "time without peer progress before falling back to the origin")
	fs.BoolVar(&c.NoOriginFallback, "no-origin-fallback", false, "never read from the origin after a stall")
	fs.Var(&c.PieceLength, "piece-length", "fixed piece length for new objects (0: choose from size)")
	c.MinPieceLength = DefaultMinPieceLength
	fs.Var(&c.MinPieceLength, "min-piece-length", "smallest automatic piece length")
	c.MaxPieceLength = DefaultMaxPieceLength
	fs.Var(&c.MaxPieceLength, "max-piece-length", "largest automatic piece length")
	fs.IntVar(&c.TargetPieces, "target-pieces", DefaultTargetPieces, "automatic piece length keeps the piece count under this")
	fs.IntVar(&c.MaxConnsPerObject, "max-conns-per-object", DefaultMaxConnsPerObject, "established peer connections per object")
	fs.IntVar(&c.HalfOpenPerObject, "half-open-per-object", DefaultHalfOpenPerObject, "concurrent peer dials per object")
	fs.IntVar(&c.DialRate, "dial-rate", DefaultDialRate, "new peer dials per second")
	fs.BoolVar(&c.EnableUTP, "utp", false, "also use uTP for peers")
	fs.IntVar(&c.OriginRetries, "origin-retries", DefaultOriginRetries, "resumptions of a failed origin transfer")
	fs.DurationVar(&c.OriginTimeout, "origin-timeout", DefaultOriginTimeout, "origin connect, header and idle-body timeout")
}

// Validate returns a copy of c with defaults filled in, or an error naming
// the first invalid field.
func (c Config) Validate() (Config, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return c, fmt.Errorf("swarm config: listen address %q: %w", c.ListenAddr, err)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.UploadRate < 0 || c.DownloadRate < 0 || c.OriginRate < 0 {
		return c, errors.New("swarm config: rates must not be negative")
	}
	if c.OriginRate == 0 {
		c.OriginRate = DefaultOriginRate
	}
	if c.StallTimeout < 0 {
		return c, fmt.Errorf("swarm config: stall timeout %v is negative", c.StallTimeout)
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MinPieceLength == 0 {
		c.MinPieceLength = DefaultMinPieceLength
	}
	if c.MaxPieceLength == 0 {
		c.MaxPieceLength = DefaultMaxPieceLength
	}
	for _, pl := range []struct {
		name string
		v    ByteSize
	}{{"piece length", c.PieceLength}, {"min piece length", c.MinPieceLength}, {"max piece length", c.MaxPieceLength}} {
		if pl.v == 0 && pl.name == "piece length" {
			continue
		}
		if pl.v < minPieceLengthAllowed || bits.OnesCount64(uint64(pl.v)) != 1 {
			return c, fmt.Errorf("swarm config: %s %v must be a power of two of at least 16 KiB", pl.name, pl.v)
		}
	}
	if c.MinPieceLength > c.MaxPieceLength {
		return c, fmt.Errorf("swarm config: min piece length %v is above max piece length %v", c.MinPieceLength, c.MaxPieceLength)
	}
	if c.TargetPieces < 0 || c.MaxConnsPerObject < 0 || c.HalfOpenPerObject < 0 || c.DialRate < 0 || c.OriginRetries < 0 || c.MaxInfoBytes < 0 {
		return c, errors.New("swarm config: counts must not be negative")
	}
	if c.TargetPieces == 0 {
		c.TargetPieces = DefaultTargetPieces
	}
	if c.MaxInfoBytes == 0 {
		c.MaxInfoBytes = DefaultMaxInfoBytes
	}
	if c.MaxConnsPerObject == 0 {
		c.MaxConnsPerObject = DefaultMaxConnsPerObject
	}
	if c.HalfOpenPerObject == 0 {
		c.HalfOpenPerObject = DefaultHalfOpenPerObject
	}
	if c.DialRate == 0 {
		c.DialRate = DefaultDialRate
	}
	if c.OriginTimeout < 0 {
		return c, fmt.Errorf("swarm config: origin timeout %v is negative", c.OriginTimeout)
	}
	if c.OriginTimeout == 0 {
		c.OriginTimeout = DefaultOriginTimeout
	}
	return c, nil
}

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", c.ListenAddr),
		slog.String("data_dir", c.DataDir),
		slog.String("upload_rate", c.UploadRate.String()),
		slog.String("download_rate", c.DownloadRate.String()),
		slog.String("origin_rate", c.OriginRate.String()),
		slog.Duration("stall_timeout", c.StallTimeout),
		slog.Bool("origin_fallback", !c.NoOriginFallback),
	)
}

// ChoosePieceLength returns the piece length for an object of size bytes
// (size < 0: unknown).
func (c Config) ChoosePieceLength(size int64) int64 {
	if c.PieceLength != 0 {
		return int64(c.PieceLength)
	}
	pl := int64(c.MinPieceLength)
	if size < 0 {
		return pl
	}
	for pl < int64(c.MaxPieceLength) && (size+pl-1)/pl > int64(c.TargetPieces) {
		pl *= 2
	}
	return pl
}

// listenIPFamilies reports which IP families the listen address allows.
func (c Config) listenIPFamilies() (v4, v6 bool) {
	host, _, _ := net.SplitHostPort(c.ListenAddr)
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.IsUnspecified() && host == "" {
		return true, true
	}
	if addr.Is4() || addr.Is4In6() {
		return true, false
	}
	if addr.IsUnspecified() { // "::"
		return true, true
	}
	return false, true
}

// ByteSize is a byte count that reads and prints as "64MiB" or "1.5GB" in
// flags.
type ByteSize int64

// String formats b with IEC units.
func (b ByteSize) String() string {
	if b == 0 {
		return "0"
	}
	return humanize.IBytes(uint64(b))
}

// Set parses s ("64MiB", "1G", "1048576").
func (b *ByteSize) Set(s string) error {
	v, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("parse size %q: %w", s, err)
	}
	if v > 1<<62 {
		return fmt.Errorf("size %q is too large", s)
	}
	*b = ByteSize(v)
	return nil
}

// Type implements pflag.Value.
func (b *ByteSize) Type() string { return "bytes" }
