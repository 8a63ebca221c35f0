package mountctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testObjects() []Object {
	return []Object{
		{Path: "images/a.img", InfoHash: strings.Repeat("1", 40), Size: 100, State: StateComplete, Progress: 1, BytesCompleted: 100},
		{Path: "images/b.img", InfoHash: strings.Repeat("2", 40), Size: 200, State: StateAbsent},
		{Path: "models/m.bin", InfoHash: strings.Repeat("3", 40), Size: 300, State: StateDownloading, Progress: 0.5, BytesCompleted: 150},
	}
}

func newTestServer(t *testing.T, f *Fake, cfg Config) *httptest.Server {
	t.Helper()
	srv, err := NewServer(f, cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// rawRequest sends a request with a literal (unnormalised) URL path.
func rawRequest(t *testing.T, ts *httptest.Server, method, path, body string) (int, errorBody, string) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, len(body), body)
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	json.Unmarshal(b, &eb)
	return resp.StatusCode, eb, string(b)
}

func TestRoutes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(file, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		method, path string
		body         string
		fail         map[string]error // Fake method → error
		wantCode     int
		wantKind     Kind
		wantField    string
		wantIn       string // substring of the answer body
		wantCall     string // last Fake call
	}{
		{name: "status", method: "GET", path: "/v1/status", wantCode: 200, wantIn: `"id":"fake"`, wantCall: "Status"},
		{name: "status query", method: "GET", path: "/v1/status?verbose=1", wantCode: 400, wantKind: KindInvalid, wantField: "verbose"},
		{name: "status etcd down", method: "GET", path: "/v1/status", fail: map[string]error{"Status": errors.New("boom")}, wantCode: 500, wantKind: KindInternal, wantIn: "boom"},
		{name: "nodes", method: "GET", path: "/v1/nodes", wantCode: 200, wantIn: `"self":true`, wantCall: "Nodes"},
		{name: "nodes etcd down", method: "GET", path: "/v1/nodes", fail: map[string]error{"Nodes": Unavailable(errors.New("index: etcd unavailable: nodes"))}, wantCode: 503, wantKind: KindUnavailable, wantIn: "etcd unavailable"},
		{name: "list", method: "GET", path: "/v1/objects", wantCode: 200, wantIn: `"models/m.bin"`, wantCall: "List"},
		{name: "list prefix", method: "GET", path: "/v1/objects?prefix=images/&local=true", wantCode: 200, wantIn: `"images/a.img"`, wantCall: "List images"},
		{name: "list prefix traversal", method: "GET", path: "/v1/objects?prefix=../etc", wantCode: 400, wantField: "prefix"},
		{name: "list bad bool", method: "GET", path: "/v1/objects?local=maybe", wantCode: 400, wantField: "local"},
		{name: "list unknown param", method: "GET", path: "/v1/objects?sort=size", wantCode: 400, wantField: "sort"},
		{name: "add", method: "POST", path: "/v1/objects", body: `{"url":"http://o/x/a.img","path":"images/new.img","wait":true}`, wantCode: 200, wantIn: `"path":"images/new.img"`, wantCall: "Add http://o/x/a.img"},
		{name: "add no url", method: "POST", path: "/v1/objects", body: `{"path":"a"}`, wantCode: 400, wantField: "url", wantIn: "url: required"},
		{name: "add ftp url", method: "POST", path: "/v1/objects", body: `{"url":"ftp://o/a"}`, wantCode: 400, wantField: "url"},
		{name: "add url without host", method: "POST", path: "/v1/objects", body: `{"url":"http:///a"}`, wantCode: 400, wantField: "url"},
		{name: "add traversal", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a","path":"../../etc/passwd"}`, wantCode: 400, wantField: "path", wantIn: `\"..\" segment`},
		{name: "add absolute path", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a","path":"/etc/passwd"}`, wantCode: 400, wantField: "path"},
		{name: "add control char", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a","path":"a\u0007b"}`, wantCode: 400, wantField: "path"},
		{name: "add unknown field", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a","mode":"fast"}`, wantCode: 400, wantField: "mode", wantIn: "unknown field"},
		{name: "add wrong type", method: "POST", path: "/v1/objects", body: `{"url":42}`, wantCode: 400, wantField: "url"},
		{name: "add bad json", method: "POST", path: "/v1/objects", body: `{"url":`, wantCode: 400, wantField: "body"},
		{name: "add syntax error", method: "POST", path: "/v1/objects", body: `{"url" "x"}`, wantCode: 400, wantField: "body", wantIn: "bad JSON"},
		{name: "add not an object", method: "POST", path: "/v1/objects", body: `["http://o/a"]`, wantCode: 400, wantField: "body"},
		{name: "add trailing data", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a"} {"url":"http://o/b"}`, wantCode: 400, wantField: "body", wantIn: "after the JSON object"},
		{name: "add empty body", method: "POST", path: "/v1/objects", wantCode: 400, wantField: "body"},
		{name: "add huge body", method: "POST", path: "/v1/objects", body: `{"url":"http://o/` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, wantCode: 413, wantKind: KindTooLarge},
		{name: "add origin 404", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a"}`,
			fail:     map[string]error{"Add": fmt.Errorf("add: %w", OriginFailed(404, errors.New("origin http://o/a answered 404 Not Found")))},
			wantCode: 502, wantKind: KindOrigin, wantIn: `"origin_status":404`},
		{name: "add conflict", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a"}`, fail: map[string]error{"Add": Conflict(errors.New("index: path conflict: a is a directory"))}, wantCode: 409, wantKind: KindConflict},
		{name: "add etcd down", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a"}`, fail: map[string]error{"Add": Unavailable(errors.New("index: etcd unavailable"))}, wantCode: 503},
		{name: "add timeout", method: "POST", path: "/v1/objects", body: `{"url":"http://o/a"}`, fail: map[string]error{"Add": fmt.Errorf("wait: %w", context.DeadlineExceeded)}, wantCode: 504, wantKind: KindTimeout},
		{name: "stat", method: "GET", path: "/v1/objects/images/a.img", wantCode: 200, wantIn: `"infohash":"1111`, wantCall: "Stat images/a.img"},
		{name: "stat escaped slash", method: "GET", path: "/v1/objects/images%2Fa.img", wantCode: 200, wantCall: "Stat images/a.img"},
		{name: "stat unknown", method: "GET", path: "/v1/objects/images/zzz", wantCode: 404, wantKind: KindNotFound, wantIn: "images/zzz"},
		{name: "stat dotdot", method: "GET", path: "/v1/objects/images/../../etc/passwd", wantCode: 400, wantField: "path"},
		{name: "stat escaped dotdot", method: "GET", path: "/v1/objects/..%2F..%2Fetc%2Fpasswd", wantCode: 400, wantField: "path"},
		{name: "stat encoded dots", method: "GET", path: "/v1/objects/%2E%2E/x", wantCode: 400, wantField: "path"},
		{name: "stat double slash", method: "GET", path: "/v1/objects/images//a.img", wantCode: 400, wantField: "path"},
		{name: "stat empty", method: "GET", path: "/v1/objects/", wantCode: 400, wantField: "path"},
		{name: "stat control char", method: "GET", path: "/v1/objects/a%00b", wantCode: 400, wantField: "path"},
		{name: "stat query", method: "GET", path: "/v1/objects/images/a.img?x=1", wantCode: 400, wantField: "x"},
		{name: "delete", method: "DELETE", path: "/v1/objects/images/a.img", body: `{"confirm":"images/a.img","evict":true}`, wantCode: 200, wantIn: `"evicted":true`, wantCall: "Delete images/a.img evict=true"},
		{name: "delete unconfirmed", method: "DELETE", path: "/v1/objects/images/a.img", wantCode: 400, wantField: "confirm"},
		{name: "delete wrong confirm", method: "DELETE", path: "/v1/objects/images/a.img", body: `{"confirm":"images"}`, wantCode: 400, wantField: "confirm"},
		{name: "delete unknown", method: "DELETE", path: "/v1/objects/nope", body: `{"confirm":"nope"}`, wantCode: 404},
		{name: "publish", method: "POST", path: "/v1/publish", body: `{"file":"` + file + `","path":"files/f.bin"}`, wantCode: 200, wantIn: `"kind":"file"`, wantCall: "Publish " + file},
		{name: "publish relative", method: "POST", path: "/v1/publish", body: `{"file":"f.bin","path":"files/f.bin"}`, wantCode: 400, wantField: "file"},
		{name: "publish missing file", method: "POST", path: "/v1/publish", body: `{"file":"/nonexistent/f","path":"f"}`, wantCode: 400, wantField: "file"},
		{name: "publish dir", method: "POST", path: "/v1/publish", body: `{"file":"` + filepath.Dir(file) + `","path":"f"}`, wantCode: 400, wantField: "file", wantIn: "not a regular file"},
		{name: "publish no path", method: "POST", path: "/v1/publish", body: `{"file":"` + file + `"}`, wantCode: 400, wantField: "path"},
		{name: "warm", method: "POST", path: "/v1/warm/models/m.bin", wantCode: 200, wantIn: `"state":"complete"`, wantCall: "Warm models/m.bin wait=false"},
		{name: "warm wait", method: "POST", path: "/v1/warm/models/m.bin", body: `{"wait":true}`, wantCode: 200, wantCall: "Warm models/m.bin wait=true"},
		{name: "warm unknown field", method: "POST", path: "/v1/warm/models/m.bin", body: `{"priority":1}`, wantCode: 400, wantField: "priority"},
		{name: "evict", method: "POST", path: "/v1/evict/images/a.img", wantCode: 200, wantIn: `"state":"absent"`, wantCall: "Evict images/a.img"},
		{name: "evict body", method: "POST", path: "/v1/evict/images/a.img", body: `{"force":true}`, wantCode: 400, wantField: "force"},
		{name: "pin", method: "POST", path: "/v1/pin/images/a.img", wantCode: 200, wantIn: `"pinned":true`, wantCall: "Pin images/a.img"},
		{name: "pin not built", method: "POST", path: "/v1/pin/images/a.img", fail: map[string]error{"Pin": NotImplemented("pinning needs the FUSE layer (not built yet)")},
			wantCode: 501, wantKind: KindNotImplemented, wantIn: "pinning needs the FUSE layer"},
		{name: "unpin", method: "DELETE", path: "/v1/pin/images/a.img", wantCode: 200, wantIn: `"pinned":false`, wantCall: "Unpin images/a.img"},
		{name: "wrong method", method: "PUT", path: "/v1/status", wantCode: 405, wantKind: KindMethod},
		{name: "unknown route", method: "GET", path: "/v2/status", wantCode: 404, wantKind: KindNotFound, wantIn: "no route"},
		{name: "root", method: "GET", path: "/", wantCode: 404, wantKind: KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(testObjects()...)
			for m, err := range tt.fail {
				f.SetErr(m, err)
			}
			ts := newTestServer(t, f, Config{})
			code, eb, body := rawRequest(t, ts, tt.method, tt.path, tt.body)
			if code != tt.wantCode {
				t.Fatalf("%s %s = %d %s; want %d", tt.method, tt.path, code, body, tt.wantCode)
			}
			if code != 200 {
				if eb.Error == nil || eb.Error.Message == "" {
					t.Fatalf("%s %s: error body %q has no error message", tt.method, tt.path, body)
				}
				if tt.wantKind != "" && eb.Error.Kind != tt.wantKind {
					t.Errorf("kind = %q; want %q", eb.Error.Kind, tt.wantKind)
				}
				if tt.wantField != "" && eb.Error.Field != tt.wantField {
					t.Errorf("field = %q (%s); want %q", eb.Error.Field, eb.Error.Message, tt.wantField)
				}
				if tt.wantField != "" && !strings.HasPrefix(eb.Error.Message, tt.wantField+": ") {
					t.Errorf("message %q does not start with the field %q", eb.Error.Message, tt.wantField)
				}
			}
			if tt.wantIn != "" && !strings.Contains(body, tt.wantIn) {
				t.Errorf("body %s; want it to contain %s", body, tt.wantIn)
			}
			calls := f.CallLog()
			if tt.wantCall != "" && (len(calls) == 0 || calls[len(calls)-1] != tt.wantCall) {
				t.Errorf("calls = %q; want last %q", calls, tt.wantCall)
			}
			if tt.wantCode == 400 && len(calls) > 0 {
				t.Errorf("bad input reached the controller: %q", calls)
			}
		})
	}
}

func TestPublishDirs(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "pub")
	os.MkdirAll(allowed, 0o755)
	in := filepath.Join(allowed, "in.bin")
	out := filepath.Join(root, "out.bin")
	link := filepath.Join(allowed, "link.bin")
	for _, p := range []string{in, out} {
		os.WriteFile(p, []byte("x"), 0o644)
	}
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, NewFake(), Config{PublishDirs: []string{allowed}})
	for _, tt := range []struct {
		file string
		want int
	}{{in, 200}, {out, 400}, {link, 400}, {allowed + "/../out.bin", 400}} {
		code, eb, _ := rawRequest(t, ts, "POST", "/v1/publish", `{"file":"`+tt.file+`","path":"p"}`)
		if code != tt.want {
			t.Errorf("publish %s = %d %+v; want %d", tt.file, code, eb.Error, tt.want)
		}
	}
}

// The Client returns the server's typed error with the same message.
func TestClientErrors(t *testing.T) {
	f := NewFake(testObjects()...)
	ts := newTestServer(t, f, Config{})
	c, err := NewClient(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	origin := OriginFailed(503, errors.New("origin http://o/a answered 503 Service Unavailable"))
	f.SetErr("Add", origin)
	_, err = c.Add(ctx, AddRequest{URL: "http://o/a"})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindOrigin || e.OriginStatus != 503 || e.Error() != origin.Message || e.HTTPStatus() != 502 {
		t.Errorf("Add error = %#v; want origin error %q with status 503", err, origin.Message)
	}
	_, err = c.Add(ctx, AddRequest{URL: "http://o/a", Path: "a/../b"})
	if !errors.As(err, &e) || e.Kind != KindInvalid || e.Field != "path" {
		t.Errorf("Add with traversal = %v; want invalid path", err)
	}
	// The client escapes segments; ".." still reaches the guard, not a cleaned path.
	if _, err := c.Stat(ctx, "images/../models/m.bin"); !errors.As(err, &e) || e.Field != "path" {
		t.Errorf("Stat(images/../models/m.bin) = %v; want invalid path", err)
	}
	if o, err := c.Stat(ctx, "images/a.img"); err != nil || o.InfoHash != strings.Repeat("1", 40) {
		t.Errorf("Stat = %+v, %v", o, err)
	}
	objs, err := c.List(ctx, ListRequest{Prefix: "images", Local: true})
	if err != nil || len(objs) != 1 || objs[0].Path != "images/a.img" {
		t.Errorf("List(images, local) = %+v, %v; want images/a.img", objs, err)
	}
	if d, err := c.Delete(ctx, "images/a.img", false); err != nil || d.InfoHash != strings.Repeat("1", 40) {
		t.Errorf("Delete = %+v, %v", d, err)
	}
	if _, err := c.Stat(ctx, "images/a.img"); !errors.As(err, &e) || e.Kind != KindNotFound {
		t.Errorf("Stat after delete = %v; want not found", err)
	}
	f.SetErr("Pin", NotImplemented("pinning needs the FUSE layer (not built yet)"))
	if _, err := c.Pin(ctx, "images/b.img"); err == nil || err.Error() != "pinning needs the FUSE layer (not built yet)" {
		t.Errorf("Pin = %v", err)
	}
	for name, call := range map[string]func() error{
		"warm":   func() error { _, err := c.Warm(ctx, "models/m.bin", true); return err },
		"evict":  func() error { _, err := c.Evict(ctx, "models/m.bin"); return err },
		"unpin":  func() error { _, err := c.Unpin(ctx, "models/m.bin"); return err },
		"status": func() error { _, err := c.Status(ctx); return err },
		"nodes":  func() error { _, err := c.Nodes(ctx); return err },
		"publish": func() error {
			_, err := c.Publish(ctx, PublishRequest{File: "/nonexistent", Path: "x"})
			if errors.As(err, &e) && e.Field == "file" {
				return nil
			}
			return fmt.Errorf("want invalid file, got %v", err)
		},
	} {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A non-JSON error answer (a proxy, say) still becomes an *Error.
func TestClientForeignError(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from proxy", http.StatusBadGateway)
	}))
	defer ts.Close()
	c, _ := NewClient(ts.URL)
	_, err := c.Status(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindOrigin || !strings.Contains(e.Message, "bad gateway from proxy") {
		t.Errorf("Status via a proxy = %#v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s", SocketFileName)
	f := NewFake(testObjects()...)
	srv, err := NewServer(f, Config{Socket: sock}, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v; want a socket with 0660", fi.Mode())
	}
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Status(context.Background()); err != nil || s.ID != "fake" {
		t.Errorf("Status over the socket = %+v, %v", s, err)
	}
	// A second server on a live socket is refused.
	srv2, _ := NewServer(f, Config{Socket: sock}, WithLogger(slog.New(slog.DiscardHandler)))
	if err := srv2.Start(); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Start on a live socket = %v; want refusal", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Shutdown: %v; want it removed", err)
	}
	// A stale socket (its server died without removing it) is replaced.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := srv2.Start(); err != nil {
		t.Fatalf("Start over a stale socket: %v", err)
	}
	srv2.Shutdown(ctx)
	// Any other file is left alone.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	srv3, _ := NewServer(f, Config{Socket: plain}, WithLogger(slog.New(slog.DiscardHandler)))
	if err := srv3.Start(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Start on a regular file = %v; want refusal", err)
	}
}

func TestTokenRules(t *testing.T) {
	dir := t.TempDir()
	const token = "s3cret-token-value"
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sock := filepath.Join(dir, SocketFileName)
	srv, err := NewServer(NewFake(testObjects()...), Config{Socket: sock, Listen: "127.0.0.1:0", TokenFile: tokFile}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := "http://" + srv.TCPAddr().String() + "/v1/status"
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"token prefix", "Bearer " + token[:5], 401},
		{"token with suffix", "Bearer " + token + "x", 401},
		{"basic scheme", "Basic " + token, 401},
		{"right token", "Bearer " + token, 200},
	} {
		req, _ := http.NewRequest("GET", url, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb errorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d; want %d", tt.name, resp.StatusCode, tt.want)
		}
		if tt.want == 401 && (eb.Error == nil || eb.Error.Kind != KindUnauthorized || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("%s: answer %+v, WWW-Authenticate %q; want an unauthorized error", tt.name, eb.Error, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// The Go client with and without the token; the socket needs none.
	c, _ := NewClient("http://"+srv.TCPAddr().String(), WithToken(token))
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("client with token: %v", err)
	}
	c, _ = NewClient("http://" + srv.TCPAddr().String())
	var e *Error
	if _, err := c.Status(context.Background()); !errors.As(err, &e) || e.Kind != KindUnauthorized {
		t.Errorf("client without token = %v; want unauthorized", err)
	}
	c, _ = NewClient("unix://" + sock)
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("socket client without token: %v", err)
	}
	if strings.Contains(logs.String(), token[:8]) {
		t.Errorf("the token appears in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "api request refused") {
		t.Errorf("refusals are not logged:\n%s", logs.String())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		werr string
	}{
		{"socket only", Config{Socket: "/run/s.sock"}, ""},
		{"nothing", Config{}, "no socket"},
		{"listen without token", Config{Socket: "/s", Listen: "127.0.0.1:0"}, "needs --api-token-file"},
		{"long socket", Config{Socket: "/" + strings.Repeat("x", 200)}, "longer than"},
		{"relative publish dir", Config{Socket: "/s", PublishDirs: []string{"data"}}, "not absolute"},
	} {
		_, err := tt.cfg.Validate()
		if (err == nil) != (tt.werr == "") || (err != nil && !strings.Contains(err.Error(), tt.werr)) {
			t.Errorf("%s: Validate() = %v; want %q", tt.name, err, tt.werr)
		}
	}
	if _, err := ReadToken(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("ReadToken(missing file) succeeded")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	if _, err := ReadToken(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("ReadToken(empty) = %v", err)
	}
}
