package mountctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Environment variables the CLI reads to find the API.
const (
	EnvSocket    = "SWARMFS_SOCKET"         // default for --socket
	EnvURL       = "SWARMFS_API_URL"        // default for --url
	EnvTokenFile = "SWARMFS_API_TOKEN_FILE" // default for --token-file
)

// Client calls the control API of one node, over its unix socket or over
// TCP with a bearer token. Errors the server sent are *Error values with
// the server's message.
type Client struct {
	addr  string // as given
	base  string // scheme://host, no trailing slash
	hc    *http.Client
	token string
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithToken sends "Authorization: Bearer token" (for TCP addresses).
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (its transport is kept as is, so
// it must already reach the server).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// NewClient returns a client of the API at addr: a unix socket path
// (optionally "unix://" + path) or an "http://host:port" URL.
func NewClient(addr string, opts ...ClientOption) (*Client, error) {
	c := &Client{addr: addr}
	switch {
	case strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("api address %q: not a URL with a host", addr)
		}
		c.base = u.Scheme + "://" + u.Host
		c.hc = &http.Client{}
	default:
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, fmt.Errorf("api address is empty")
		}
		c.base = "http://mountctl"
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns:    2,
			IdleConnTimeout: 30 * time.Second,
		}
		c.hc = &http.Client{Transport: tr}
	}
	for _, o := range opts {
		o(c)
	}
	// The API never redirects; a redirect would replay the request
	// elsewhere.
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

// Add adds an origin object; see Controller.Add.
func (c *Client) Add(ctx context.Context, req AddRequest) (Object, error) {
	var o Object
	return o, c.do(ctx, http.MethodPost, "/v1/objects", nil, req, &o)
}

// Publish publishes a file on the node; see Controller.Publish.
func (c *Client) Publish(ctx context.Context, req PublishRequest) (Object, error) {
	var o Object
	return o, c.do(ctx, http.MethodPost, "/v1/publish", nil, req, &o)
}

// List lists objects; see Controller.List.
func (c *Client) List(ctx context.Context, req ListRequest) ([]Object, error) {
	q := url.Values{}
	if req.Prefix != "" {
		q.Set("prefix", req.Prefix)
	}
	if req.Local {
		q.Set("local", "true")
	}
	var l ObjectList
	err := c.do(ctx, http.MethodGet, "/v1/objects", q, nil, &l)
	return l.Objects, err
}

// Stat describes an object.
func (c *Client) Stat(ctx context.Context, path string) (Object, error) {
	var o Object
	return o, c.doPath(ctx, http.MethodGet, "/v1/objects/", path, nil, &o)
}

// Warm starts a full download of path, and with wait waits for it.
func (c *Client) Warm(ctx context.Context, path string, wait bool) (Object, error) {
	var o Object
	return o, c.doPath(ctx, http.MethodPost, "/v1/warm/", path, WarmRequest{Wait: wait}, &o)
}

// Evict drops this node's copy of path.
func (c *Client) Evict(ctx context.Context, path string) (Object, error) {
	var o Object
	return o, c.doPath(ctx, http.MethodPost, "/v1/evict/", path, nil, &o)
}

// Delete removes path from the index cluster-wide. It sends path as the
// confirmation: callers confirm with their user first.
func (c *Client) Delete(ctx context.Context, path string, evict bool) (DeleteResult, error) {
	var d DeleteResult
	return d, c.doPath(ctx, http.MethodDelete, "/v1/objects/", path, DeleteRequest{Confirm: path, Evict: evict}, &d)
}

// Pin keeps path's data in RAM.
func (c *Client) Pin(ctx context.Context, path string) (Object, error) {
	var o Object
	return o, c.doPath(ctx, http.MethodPost, "/v1/pin/", path, nil, &o)
}

// Unpin releases a pin.
func (c *Client) Unpin(ctx context.Context, path string) (Object, error) {
	var o Object
	return o, c.doPath(ctx, http.MethodDelete, "/v1/pin/", path, nil, &o)
}

// Status describes the node.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var s NodeStatus
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
}

// Nodes lists the cluster's live nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var l NodeList
	err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, nil, &l)
	return l.Nodes, err
}

// objectPath is the route prefix plus the escaped object path; a path the
// server would refuse is refused here with the same error.
func objectPath(prefix, p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", Invalid("path", err)
	}
	return prefix + escapePath(p), nil
}

// escapePath escapes each segment, keeping the slashes.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// maxAnswerBytes bounds what the client reads of an answer.
const maxAnswerBytes = 64 << 20

func (c *Client) doPath(ctx context.Context, method, prefix, path string, in, out any) error {
	p, err := objectPath(prefix, path)
	if err != nil {
		return err
	}
	return c.do(ctx, method, p, nil, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		return fmt.Errorf("cannot reach swarmfsd at %s (is it running? see --socket or $%s): %w", c.addr, EnvSocket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Message != "" {
			if eb.Error.Kind == "" {
				eb.Error.Kind = kindOf(resp.StatusCode)
			}
			return eb.Error
		}
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &Error{Kind: kindOf(resp.StatusCode), Message: "swarmfsd answered " + strconv.Itoa(resp.StatusCode) + ": " + msg}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}
