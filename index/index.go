package index

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
)

// Defaults for Config.
const (
	DefaultPrefix         = "/swarmfs/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultSessionTTL     = 10 * time.Second
)

var (
	// ErrNotFound means no record, info or node has that name.
	ErrNotFound = errors.New("index: not found")
	// ErrExists means a create-if-absent write found the key taken.
	ErrExists = errors.New("index: already exists")
	// ErrConflict means a path clashes with the tree (an object where a
	// directory is, or the other way round).
	ErrConflict = errors.New("index: path conflict")
	// ErrUnavailable means etcd could not be reached in time.
	ErrUnavailable = errors.New("index: etcd unavailable")
)

// Config configures the etcd client of the index.
type Config struct {
	// Endpoints are etcd client URLs. Empty: the caller runs an embedded
	// member (swarmfsd does) and passes its URL.
	Endpoints []string
	// Prefix is the key prefix of everything swarmfs stores. Default
	// /swarmfs/.
	Prefix string
	// DialTimeout bounds connecting to etcd. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each etcd request. Default 10s.
	RequestTimeout time.Duration
	// SessionTTL is the lease TTL of node registrations and conversion
	// elections: how long a dead node keeps them. Default 10s.
	SessionTTL time.Duration
	// CertFile, KeyFile and CAFile enable TLS (client certificate
	// optional).
	CertFile, KeyFile, CAFile string
	// Username and Password enable etcd authentication. PasswordFile, if
	// set, is read for the password.
	Username, Password, PasswordFile string
}

// AddFlags registers the index flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Endpoints, "etcd-endpoints", nil, "etcd client URLs (empty: run an embedded etcd member)")
	fs.StringVar(&c.Prefix, "etcd-prefix", DefaultPrefix, "key prefix for swarmfs data in etcd")
	fs.DurationVar(&c.DialTimeout, "etcd-dial-timeout", DefaultDialTimeout, "etcd connect timeout")
	fs.DurationVar(&c.RequestTimeout, "etcd-request-timeout", DefaultRequestTimeout, "etcd request timeout")
	fs.DurationVar(&c.SessionTTL, "etcd-session-ttl", DefaultSessionTTL, "lease TTL of node registrations and conversion elections")
	fs.StringVar(&c.CertFile, "etcd-cert", "", "TLS client certificate for etcd")
	fs.StringVar(&c.KeyFile, "etcd-key", "", "TLS client key for etcd")
	fs.StringVar(&c.CAFile, "etcd-ca", "", "CA bundle for etcd (enables TLS)")
	fs.StringVar(&c.Username, "etcd-user", "", "etcd user name")
	fs.StringVar(&c.PasswordFile, "etcd-password-file", "", "file holding the etcd password")
}

// Validate returns a copy of c with defaults filled in.
func (c Config) Validate() (Config, error) {
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
	if c.SessionTTL <= 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionTTL < time.Second {
		return c, fmt.Errorf("index config: session ttl %v is under 1s", c.SessionTTL)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, errors.New("index config: etcd cert and key go together")
	}
	if len(c.Endpoints) == 0 {
		return c, errors.New("index config: no etcd endpoints")
	}
	return c, nil
}

// Index is the swarmfs namespace in etcd.
type Index struct {
	cfg     Config
	log     *slog.Logger
	cli     *clientv3.Client
	kv      clientv3.KV
	watcher clientv3.Watcher
	lease   clientv3.Lease
	metrics *metrics
}

// Option sets an injected collaborator.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the index metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// Open connects to etcd. It fails with ErrUnavailable if no endpoint
// answers within the dial timeout.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Index, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	ccfg := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(),
		Context:     context.WithoutCancel(ctx),
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd password: %w", err)
		}
		ccfg.Password = strings.TrimSpace(string(b))
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		ccfg.TLS = tc
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %v: %w", ErrUnavailable, cfg.Endpoints, err)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		cli.Close()
		return nil, err
	}
	ix := &Index{
		cfg:     cfg,
		log:     o.log.With("component", "index"),
		cli:     cli,
		kv:      namespace.NewKV(cli.KV, cfg.Prefix),
		watcher: namespace.NewWatcher(cli.Watcher, cfg.Prefix),
		lease:   namespace.NewLease(cli.Lease, cfg.Prefix),
		metrics: m,
	}
	// Fail early and clearly when etcd is not there.
	sctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Status(sctx, cfg.Endpoints[0]); err != nil {
		if _, err2 := ix.kv.Get(sctx, "health", clientv3.WithCountOnly()); err2 != nil {
			cli.Close()
			return nil, fmt.Errorf("%w: %v: %w", ErrUnavailable, cfg.Endpoints, err2)
		}
	}
	return ix, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd ca %s holds no certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Close closes the etcd client.
func (ix *Index) Close() error { return ix.cli.Close() }

// Client returns the underlying etcd client (not namespaced).
func (ix *Index) Client() *clientv3.Client { return ix.cli }

// Prefix returns the key prefix.
func (ix *Index) Prefix() string { return ix.cfg.Prefix }

// Healthy reports whether etcd answers a read.
func (ix *Index) Healthy(ctx context.Context) error {
	_, err := ix.get(ctx, "health", "health", clientv3.WithCountOnly())
	return err
}

// op runs f with the request timeout and records its latency.
func (ix *Index) op(ctx context.Context, name string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, ix.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	ix.metrics.observe(name, time.Since(start), err)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, name, err)
	}
	return err
}

func (ix *Index) get(ctx context.Context, name, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	var resp *clientv3.GetResponse
	err := ix.op(ctx, name, func(ctx context.Context) (err error) {
		resp, err = ix.kv.Get(ctx, key, opts...)
		return err
	})
	return resp, err
}

func (ix *Index) txn(ctx context.Context, name string, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	var resp *clientv3.TxnResponse
	err := ix.op(ctx, name, func(ctx context.Context) (err error) {
		resp, err = ix.kv.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
		return err
	})
	return resp, err
}
