package fs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"swarmfs/swarm"
)

// Background policies: when a node downloads a whole object so it seeds it.
const (
	BackgroundOnOpen = "on-open" // after the first open (default)
	BackgroundAlways = "always"  // as soon as the object is in the index
	BackgroundNever  = "never"   // only what readers ask for
)

// Config configures the filesystem.
type Config struct {
	// Mountpoint is where the namespace is mounted. Empty: no mount.
	Mountpoint string
	// Background is the background download policy: on-open (default),
	// always or never. Background work runs at normal priority, below
	// every foreground read.
	Background string
	// ReadTimeout fails a read with EIO after this long without progress.
	// 0 (default) waits forever, like a hard NFS mount: readers never see
	// errors from a slow swarm, but a dead swarm blocks them until it
	// returns, the reader is killed, or the filesystem is unmounted.
	ReadTimeout time.Duration
	// InterruptGrace is how long an interrupted read keeps waiting before
	// it returns EINTR. Go programs get spurious interrupts (SIGURG).
	// Default 3s.
	InterruptGrace time.Duration
	// BlockedWarning logs a read blocked this long. Default 30s.
	BlockedWarning time.Duration
	// MaxReadahead caps the readahead of a sequential reader. Default
	// 64 MiB; 0 after Validate only if set negative.
	MaxReadahead swarm.ByteSize
	// NoPassthrough disables FUSE passthrough for complete objects.
	NoPassthrough bool
	// ReadAheadKB is written to the mount's bdi read_ahead_kb when
	// privileged. Default 16384; -1 leaves the kernel's value.
	ReadAheadKB int
	// AllowOther lets other users read the mount.
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
}

// AddFlags registers the filesystem flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Mountpoint, "mount", "", "mount the namespace read-only at this directory")
	fs.StringVar(&c.Background, "background", BackgroundOnOpen, "background download policy: on-open, always, never")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 0, "fail a read with EIO after this long without progress (0: wait forever)")
	fs.DurationVar(&c.InterruptGrace, "interrupt-grace", 3*time.Second, "keep waiting this long after a read is interrupted before returning EINTR")
	fs.DurationVar(&c.BlockedWarning, "blocked-read-warning", 30*time.Second, "log reads blocked for this long")
	c.MaxReadahead = 64 << 20
	fs.Var(&c.MaxReadahead, "max-readahead", "readahead cap of a sequential reader")
	fs.BoolVar(&c.NoPassthrough, "no-passthrough", false, "never hand complete objects to the kernel (FUSE passthrough)")
	fs.IntVar(&c.ReadAheadKB, "bdi-read-ahead-kb", 16384, "kernel readahead of the mount in KiB when privileged (-1: leave)")
	fs.BoolVar(&c.AllowOther, "allow-other", false, "let other users read the mount")
	fs.BoolVar(&c.Debug, "fuse-debug", false, "log every FUSE request")
}

// Validate returns a copy with defaults filled in.
func (c Config) Validate() (Config, error) {
	switch c.Background {
	case "":
		c.Background = BackgroundOnOpen
	case BackgroundOnOpen, BackgroundAlways, BackgroundNever:
	default:
		return c, fmt.Errorf("fs config: background policy %q: want on-open, always or never", c.Background)
	}
	if c.ReadTimeout < 0 {
		return c, fmt.Errorf("fs config: read timeout %v is negative", c.ReadTimeout)
	}
	if c.InterruptGrace <= 0 {
		c.InterruptGrace = 3 * time.Second
	}
	if c.BlockedWarning <= 0 {
		c.BlockedWarning = 30 * time.Second
	}
	if c.MaxReadahead == 0 {
		c.MaxReadahead = 64 << 20
	}
	if c.MaxReadahead < 0 {
		c.MaxReadahead = 0
	}
	if c.ReadAheadKB == 0 {
		c.ReadAheadKB = 16384
	}
	return c, nil
}

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mountpoint", c.Mountpoint),
		slog.String("background", c.Background),
		slog.Duration("read_timeout", c.ReadTimeout),
		slog.Bool("passthrough", !c.NoPassthrough),
	)
}
