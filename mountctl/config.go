package mountctl

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/pflag"
)

// Defaults for Config.
const (
	// DefaultSocket is where the CLI looks for the daemon's socket; the
	// daemon puts it at <state-dir>/mountctl.sock, and its default state
	// dir is /var/lib/swarmfs.
	DefaultSocket = "/var/lib/swarmfs/mountctl.sock"
	// SocketFileName is the socket's name inside the daemon's state dir.
	SocketFileName = "mountctl.sock"
	// DefaultMaxBodyBytes bounds request bodies.
	DefaultMaxBodyBytes = 64 << 10
	// SocketMode is the unix socket's permission: owner and group may
	// connect. Whoever may connect controls the node.
	SocketMode = 0o660
	// maxSocketPath is the longest unix socket path Linux accepts.
	maxSocketPath = 107
)

// Config configures the control API server.
type Config struct {
	// Socket is the unix socket path (mode 0660). The daemon defaults it
	// to <state-dir>/mountctl.sock. Requests on the socket need no token:
	// file permissions decide who may connect.
	Socket string
	// Listen, if set, also serves the API on this TCP address. Every
	// request there must carry "Authorization: Bearer <token>". The token
	// travels in clear text: bind to loopback or a trusted network.
	Listen string
	// TokenFile holds the bearer token for Listen (required with it;
	// surrounding white space is ignored). The token is never logged.
	TokenFile string
	// PublishDirs, if set, are the only directories whose files may be
	// published (symlinks resolved). Empty: any file the daemon can read,
	// so access to the API is then read access to the daemon's files.
	PublishDirs []string
	// MaxBodyBytes bounds request bodies. Default 64 KiB.
	MaxBodyBytes int64
}

// AddFlags registers the API flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Socket, "api-socket", "", "control API unix socket, mode 0660 (default <state-dir>/"+SocketFileName+")")
	fs.StringVar(&c.Listen, "api-listen", "", "also serve the control API on this TCP address; needs --api-token-file")
	fs.StringVar(&c.TokenFile, "api-token-file", "", "file holding the bearer token required on --api-listen")
	fs.StringArrayVar(&c.PublishDirs, "api-publish-dir", nil, "only files below this directory may be published through the API (repeatable; default: any)")
}

// Validate returns a copy of c with defaults filled in, or an error naming
// the bad setting.
func (c Config) Validate() (Config, error) {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Socket == "" && c.Listen == "" {
		return c, errors.New("api config: no socket and no listen address")
	}
	if len(c.Socket) > maxSocketPath {
		return c, fmt.Errorf("api config: socket path %q is longer than %d bytes", c.Socket, maxSocketPath)
	}
	if c.Listen != "" && c.TokenFile == "" {
		return c, errors.New("api config: --api-listen needs --api-token-file")
	}
	dirs := make([]string, 0, len(c.PublishDirs))
	for _, d := range c.PublishDirs {
		if !filepath.IsAbs(d) {
			return c, fmt.Errorf("api config: publish dir %q is not absolute", d)
		}
		dirs = append(dirs, filepath.Clean(d))
	}
	c.PublishDirs = dirs
	return c, nil
}

// LogValue implements slog.LogValuer. It has no secret to hide: the token
// stays in its file.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("socket", c.Socket),
		slog.String("listen", c.Listen),
		slog.String("token_file", c.TokenFile),
		slog.Any("publish_dirs", c.PublishDirs),
	)
}
