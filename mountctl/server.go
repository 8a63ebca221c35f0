package mountctl

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Controller is what the API server needs from the daemon. Every method
// takes the request's context first; it is cancelled when the caller goes
// away. Errors the caller should tell apart are *Error values (or wrap
// one); any other error reaches the caller as KindInternal with its
// message.
//
// Paths reach a Controller already checked against the API's shape rules
// (see checkPath); the Controller applies the index's full rules.
type Controller interface {
	// Add makes an origin object available at req.Path (or the URL's
	// path) on this node: converted once in the cluster, downloaded and
	// seeded here. With req.Wait it returns when this node's copy is
	// complete. The work goes on if ctx ends first.
	Add(ctx context.Context, req AddRequest) (Object, error)
	// Publish hashes a local file into this node's storage, publishes it
	// at req.Path and seeds it.
	Publish(ctx context.Context, req PublishRequest) (Object, error)
	// List lists the namespace with this node's view of each object, plus
	// objects held here that no path points to (unless req.Prefix is set).
	List(ctx context.Context, req ListRequest) ([]Object, error)
	// Stat describes the current version of path.
	Stat(ctx context.Context, path string) (Object, error)
	// Warm starts downloading every missing piece of path now; with wait
	// it returns when the copy is complete.
	Warm(ctx context.Context, path string, wait bool) (Object, error)
	// Evict drops this node's copy of path (it stops seeding it and frees
	// the disk). Evicting an object not held here succeeds.
	Evict(ctx context.Context, path string) (Object, error)
	// Delete removes path and all its versions from the index, and this
	// node's copy if evict is set.
	Delete(ctx context.Context, path string, evict bool) (DeleteResult, error)
	// Pin keeps path's data resident in RAM; Unpin releases it.
	Pin(ctx context.Context, path string) (Object, error)
	Unpin(ctx context.Context, path string) (Object, error)
	// Status describes this node. It answers even when etcd does not.
	Status(ctx context.Context) (NodeStatus, error)
	// Nodes lists the live nodes of the cluster.
	Nodes(ctx context.Context) ([]Node, error)
}

// Server serves the control API of one node: JSON over HTTP, routes under
// /v1/. Handler gives the routes; Start also listens on the configured
// unix socket and TCP address.
type Server struct {
	ctl     Controller
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	handler http.Handler

	mu      sync.Mutex
	servers []*http.Server
	tcpAddr net.Addr
}

// Option sets an injected collaborator of a Server.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the API metrics (swarmfs_mountctl_*) on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// NewServer returns a Server for ctl. cfg is validated only by Start:
// Handler needs no listener settings.
func NewServer(ctl Controller, cfg Config, opts ...Option) (*Server, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	s := &Server{ctl: ctl, cfg: cfg, log: o.log.With("component", "mountctl"), metrics: m}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the API's routes, without the token check (the unix
// socket relies on file permissions; see RequireToken for TCP).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, f func(r *http.Request) (any, error)) {
		mux.Handle(pattern, s.endpoint(pattern, f))
	}
	handle("GET /v1/status", func(r *http.Request) (any, error) {
		if err := noQuery(r); err != nil {
			return nil, err
		}
		return s.ctl.Status(r.Context())
	})
	handle("GET /v1/nodes", func(r *http.Request) (any, error) {
		if err := noQuery(r); err != nil {
			return nil, err
		}
		nodes, err := s.ctl.Nodes(r.Context())
		return NodeList{Nodes: nonNil(nodes)}, err
	})
	handle("GET /v1/objects", s.list)
	handle("POST /v1/objects", s.add)
	handle("GET /v1/objects/{path...}", s.objectOp(s.ctl.Stat))
	handle("DELETE /v1/objects/{path...}", s.delete)
	handle("POST /v1/publish", s.publish)
	handle("POST /v1/warm/{path...}", func(r *http.Request) (any, error) {
		p, err := pathValue(r)
		if err != nil {
			return nil, err
		}
		var req WarmRequest
		if err := s.decode(r, &req, true); err != nil {
			return nil, err
		}
		return s.ctl.Warm(r.Context(), p, req.Wait)
	})
	handle("POST /v1/evict/{path...}", s.objectOp(s.ctl.Evict))
	handle("POST /v1/pin/{path...}", s.objectOp(s.ctl.Pin))
	handle("DELETE /v1/pin/{path...}", s.objectOp(s.ctl.Unpin))
	return s.guard(mux)
}

// objectOp adapts a path-only operation: no query, an empty or "{}" body.
func (s *Server) objectOp(f func(context.Context, string) (Object, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		p, err := pathValue(r)
		if err != nil {
			return nil, err
		}
		if err := s.decode(r, &struct{}{}, true); err != nil {
			return nil, err
		}
		return f(r.Context(), p)
	}
}

func (s *Server) list(r *http.Request) (any, error) {
	var req ListRequest
	for k, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "prefix":
			req.Prefix = strings.TrimSuffix(v, "/")
			if req.Prefix != "" {
				if err := checkPath(req.Prefix); err != nil {
					return nil, Invalid("prefix", err)
				}
			}
		case "local":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, Invalidf("local", "%q is not a boolean", v)
			}
			req.Local = b
		default:
			return nil, Invalidf(k, "unknown query parameter")
		}
	}
	objs, err := s.ctl.List(r.Context(), req)
	return ObjectList{Objects: nonNil(objs)}, err
}

func (s *Server) add(r *http.Request) (any, error) {
	var req AddRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, err
	}
	if err := checkURL(req.URL); err != nil {
		return nil, err
	}
	if req.Path != "" {
		if err := checkPath(req.Path); err != nil {
			return nil, Invalid("path", err)
		}
	}
	return s.ctl.Add(r.Context(), req)
}

func (s *Server) publish(r *http.Request) (any, error) {
	var req PublishRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, err
	}
	if err := checkPath(req.Path); err != nil {
		return nil, Invalid("path", err)
	}
	file, err := s.checkFile(req.File)
	if err != nil {
		return nil, err
	}
	req.File = file
	return s.ctl.Publish(r.Context(), req)
}

// checkFile resolves a file to publish and applies Config.PublishDirs.
func (s *Server) checkFile(file string) (string, error) {
	switch {
	case file == "":
		return "", Invalidf("file", "required")
	case !filepath.IsAbs(file):
		return "", Invalidf("file", "%q is not an absolute path", file)
	case strings.ContainsRune(file, 0):
		return "", Invalidf("file", "contains a NUL byte")
	}
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return "", Invalid("file", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", Invalid("file", err)
	}
	if !fi.Mode().IsRegular() {
		return "", Invalidf("file", "%s is not a regular file", file)
	}
	if len(s.cfg.PublishDirs) == 0 {
		return real, nil
	}
	for _, d := range s.cfg.PublishDirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil {
			d = rd
		}
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return real, nil
		}
	}
	return "", Invalidf("file", "%s is outside the publish dirs (--api-publish-dir)", file)
}

func (s *Server) delete(r *http.Request) (any, error) {
	p, err := pathValue(r)
	if err != nil {
		return nil, err
	}
	var req DeleteRequest
	if err := s.decode(r, &req, true); err != nil {
		return nil, err
	}
	if req.Confirm != p {
		return nil, Invalidf("confirm", "must repeat the path %q to delete it from the index cluster-wide", p)
	}
	return s.ctl.Delete(r.Context(), p, req.Evict)
}

// endpoint runs f and writes its result as JSON, or its error with the
// status of its kind, and records the request.
func (s *Server) endpoint(route string, f func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		v, err := f(r)
		code := http.StatusOK
		if err != nil {
			e := classify(err)
			code = e.HTTPStatus()
			writeJSON(w, code, errorBody{Error: e})
			lv := slog.LevelDebug
			if code >= 500 && code != http.StatusNotImplemented {
				lv = slog.LevelWarn
			}
			s.log.Log(r.Context(), lv, "api request failed", "route", route, "status", code, "err", err, "duration", time.Since(start))
		} else {
			writeJSON(w, code, v)
			s.log.Debug("api request", "route", route, "status", code, "duration", time.Since(start))
		}
		s.metrics.observe(route, code, time.Since(start))
	})
}

// classify is asError plus context errors.
func classify(err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return Timeout(err)
		case errors.Is(err, context.Canceled):
			return &Error{Kind: KindTimeout, Message: "request cancelled: " + err.Error(), err: err}
		}
	}
	return asError(err)
}

// guard rejects requests the routes must never see (URL paths with empty,
// "." or ".." segments, which ServeMux would otherwise redirect to a
// cleaned path) and answers unknown routes in JSON.
func (s *Server) guard(mux *http.ServeMux) http.Handler {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
			strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
			e := Invalidf("path", "URL path %q has an empty, \".\" or \"..\" segment", p)
			writeJSON(w, e.HTTPStatus(), errorBody{Error: e})
			s.metrics.observe("invalid", e.HTTPStatus(), 0)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			e := &Error{Kind: KindNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)}
			for _, m := range methods {
				r2 := r.Clone(r.Context())
				r2.Method = m
				if _, p := mux.Handler(r2); p != "" && m != r.Method {
					e = &Error{Kind: KindMethod, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)}
					break
				}
			}
			writeJSON(w, e.HTTPStatus(), errorBody{Error: e})
			s.metrics.observe("none", e.HTTPStatus(), 0)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// decode reads the JSON body into v (endpoint limits it to MaxBodyBytes): no unknown
// fields, one object. An empty body is allowed if optional.
func (s *Server) decode(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errTrailing
		}
	}
	if err == nil || (optional && errors.Is(err, io.EOF)) {
		return nil
	}
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	switch {
	case errors.As(err, &mbe):
		return &Error{Kind: KindTooLarge, Message: fmt.Sprintf("request body is over %d bytes", mbe.Limit), err: err}
	case errors.Is(err, errTrailing):
		return Invalidf("body", "data after the JSON object")
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return Invalidf(field, "JSON %s where %s belongs", ute.Value, ute.Type)
	case errors.As(err, &se):
		return Invalidf("body", "bad JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF):
		return Invalidf("body", "empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalidf("body", "truncated JSON")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f, _ = strconv.Unquote(f)
		return Invalidf(f, "unknown field")
	}
	return Invalid("body", err)
}

var errTrailing = errors.New("trailing data")

func noQuery(r *http.Request) error {
	for k := range r.URL.Query() {
		return Invalidf(k, "unknown query parameter")
	}
	return nil
}

func pathValue(r *http.Request) (string, error) {
	for k := range r.URL.Query() {
		return "", Invalidf(k, "unknown query parameter")
	}
	p := r.PathValue("path")
	if err := checkPath(p); err != nil {
		return "", Invalid("path", err)
	}
	return p, nil
}

// checkPath applies the API's shape rules to an object path: relative,
// no empty, "." or ".." segments, no control characters, valid UTF-8, at
// most 4 KiB. The index applies its stricter rules after this.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("required")
	case len(p) > 4096:
		return errors.New("longer than 4096 bytes")
	case !utf8.ValidString(p):
		return errors.New("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q starts with /", p)
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Errorf("%q holds control character %U", p, c)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%q has an empty segment", p)
		case ".", "..":
			return fmt.Errorf("%q has a %q segment", p, seg)
		}
	}
	return nil
}

// checkURL checks an origin URL: absolute http or https with a host.
func checkURL(raw string) error {
	if raw == "" {
		return Invalidf("url", "required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Invalid("url", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Invalidf("url", "%q is not http or https", raw)
	}
	if u.Host == "" {
		return Invalidf("url", "%q has no host", raw)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: &Error{Kind: KindInternal, Message: "encode answer: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// RequireToken wraps h so that every request must carry
// "Authorization: Bearer <token>". Others get 401. Neither the expected
// nor the presented token is ever logged.
func RequireToken(token string, h http.Handler, log *slog.Logger) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || token == "" || subtle.ConstantTimeCompare(want[:], sum[:]) != 1 {
			msg := "missing bearer token"
			if ok {
				msg = "wrong bearer token"
			}
			if log != nil {
				log.Warn("api request refused", "reason", msg, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="swarmfs"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: &Error{Kind: KindUnauthorized, Message: msg}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ReadToken reads a bearer token file: its content without surrounding
// white space, which must not be empty.
func ReadToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read api token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("api token file %s is empty", file)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("api token file %s holds more than one line", file)
	}
	return tok, nil
}

// Start validates the config, listens on the unix socket (mode 0660) and,
// if configured, on the TCP address (token required), and serves in the
// background until Shutdown.
func (s *Server) Start() error {
	cfg, err := s.cfg.Validate()
	if err != nil {
		return err
	}
	s.cfg = cfg
	var lns []net.Listener
	var handlers []http.Handler
	fail := func(err error) error {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	if cfg.Listen != "" {
		token, err := ReadToken(cfg.TokenFile)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(cfg.TokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			s.log.Warn("api token file is readable by group or others", "file", cfg.TokenFile, "mode", fi.Mode().Perm())
		}
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("api listen on %s: %w", cfg.Listen, err)
		}
		if ap, ok := ln.Addr().(*net.TCPAddr); ok && !ap.IP.IsLoopback() {
			s.log.Warn("api served on a non-loopback address without TLS: the token travels in clear text", "addr", ln.Addr().String())
		}
		lns = append(lns, ln)
		handlers = append(handlers, RequireToken(token, s.handler, s.log))
	}
	if cfg.Socket != "" {
		ln, err := ListenUnix(cfg.Socket)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, ln)
		handlers = append(handlers, s.handler)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ln := range lns {
		// No write timeout: waiting calls (add and warm with wait) last
		// as long as the download.
		srv := &http.Server{Handler: handlers[i], ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		s.servers = append(s.servers, srv)
		if _, ok := ln.Addr().(*net.TCPAddr); ok {
			s.tcpAddr = ln.Addr()
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("api server", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	s.log.Info("control api serving", "config", cfg)
	return nil
}

// TCPAddr returns the TCP address the API listens on, or nil.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

// Shutdown stops the listeners (removing the socket) and waits for open
// requests until ctx ends, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, srv.Close())
		}
	}
	return errors.Join(errs...)
}

// ListenUnix listens on a unix socket at path with mode 0660. A stale
// socket left by a dead process is replaced; a live one, or any other
// file, is an error. The socket is removed when the listener closes.
func ListenUnix(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("api socket path %q is longer than %d bytes", path, maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another process serves it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale api socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api socket dir: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api listen on %s: %w", path, err)
	}
	// The socket is created with the umask's mode; the state dir (0750)
	// keeps others out until this chmod.
	if err := os.Chmod(path, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod api socket: %w", err)
	}
	return ln, nil
}
