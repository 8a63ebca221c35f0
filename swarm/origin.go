package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Validators identify one version of an origin object. Empty fields and a
// negative Size are unknown.
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"`
}

// check compares a response's validators against v and reports
// ErrOriginChanged on a mismatch. Fields unknown on either side are skipped.
func (v Validators) check(got Validators) error {
	switch {
	case v.ETag != "" && got.ETag != "" && v.ETag != got.ETag:
		return fmt.Errorf("%w: etag %s, now %s", ErrOriginChanged, v.ETag, got.ETag)
	case v.ETag == "" && v.LastModified != "" && got.LastModified != "" && v.LastModified != got.LastModified:
		return fmt.Errorf("%w: last-modified %q, now %q", ErrOriginChanged, v.LastModified, got.LastModified)
	case v.Size >= 0 && got.Size >= 0 && v.Size != got.Size:
		return fmt.Errorf("%w: size %d, now %d", ErrOriginChanged, v.Size, got.Size)
	}
	return nil
}

func newOriginHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = timeout
	// Bytes must arrive exactly as the origin stores them.
	tr.DisableCompression = true
	tr.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: tr}
}

// Head asks the origin for an object's validators without its body.
func Head(ctx context.Context, client *http.Client, url string) (Validators, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return Validators{}, fmt.Errorf("head %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Validators{}, fmt.Errorf("head %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Validators{}, &OriginError{URL: url, Status: resp.StatusCode}
	}
	return responseValidators(resp, 0), nil
}

// responseValidators reads validators from a 200 or 206 response to a
// request that started at off.
func responseValidators(resp *http.Response, off int64) Validators {
	v := Validators{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Size:         -1,
	}
	if resp.StatusCode == http.StatusPartialContent {
		if _, _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			v.Size = total
		}
	} else if resp.ContentLength >= 0 && off == 0 {
		v.Size = resp.ContentLength
	}
	return v
}

// parseContentRange parses "bytes first-last/total". total is -1 for "*".
func parseContentRange(s string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad content-range %q", s)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad content-range %q", s)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad content-range %q", s)
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("bad content-range %q: %w", s, err)
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, fmt.Errorf("bad content-range %q", s)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("bad content-range %q: %w", s, err)
		}
	}
	return first, last, total, nil
}

// errRangeIgnored means the origin answered a piece request with the whole
// body (200).
var errRangeIgnored = errors.New("origin ignored the range request")

// originRange fetches [off, off+n) (n < 0: to the end) of url. want holds the
// validators the response must match; if ETag or Last-Modified are known they
// are sent as If-Range (resumes) or If-Match (fallback pieces), so a changed
// object is detected by the origin too. The returned body is bounded to the
// expected length and fails if the origin goes silent for idle.
//
// from is where the body starts: off, or 0 if the origin ignored the range
// of an open-ended request (n < 0) and sent the whole, unchanged object.
func originRange(ctx context.Context, client *http.Client, url string, off, n int64, want Validators, idle time.Duration, ifMatch bool) (body io.ReadCloser, got Validators, from int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, Validators{}, 0, permanent(fmt.Errorf("origin request %s: %w", url, err))
	}
	if off > 0 || n >= 0 {
		if n >= 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		}
		validator := want.ETag
		if validator == "" {
			validator = want.LastModified
		}
		switch {
		case ifMatch && want.ETag != "":
			req.Header.Set("If-Match", want.ETag)
		case validator != "":
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, Validators{}, 0, fmt.Errorf("origin get %s: %w", url, err)
	}
	fail := func(err error) (io.ReadCloser, Validators, int64, error) {
		resp.Body.Close()
		cancel()
		return nil, Validators{}, 0, err
	}
	got = responseValidators(resp, 0)
	from = off
	switch resp.StatusCode {
	case http.StatusOK:
		if err := want.check(got); err != nil {
			return fail(err)
		}
		if n >= 0 && (off != 0 || n != got.Size) {
			return fail(errRangeIgnored)
		}
		from = 0
	case http.StatusPartialContent:
		if err := want.check(got); err != nil {
			return fail(err)
		}
		first, last, _, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail(fmt.Errorf("origin %s: %w", url, err))
		}
		if first != off || (n >= 0 && last != off+n-1) {
			return fail(fmt.Errorf("origin %s sent range %d-%d, asked from %d", url, first, last, off))
		}
	case http.StatusPreconditionFailed:
		return fail(fmt.Errorf("%w: origin %s no longer matches etag %s", ErrOriginChanged, url, want.ETag))
	default:
		return fail(&OriginError{URL: url, Status: resp.StatusCode})
	}
	return newIdleBody(resp.Body, idle, cancel), got, from, nil
}

// idleBody cancels a response when no bytes arrive for a while.
type idleBody struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	idle   time.Duration
	timer  *time.Timer
	once   sync.Once
}

func newIdleBody(rc io.ReadCloser, idle time.Duration, cancel context.CancelFunc) *idleBody {
	b := &idleBody{rc: rc, cancel: cancel, idle: idle}
	b.timer = time.AfterFunc(idle, cancel)
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	var err error
	b.once.Do(func() {
		b.timer.Stop()
		err = b.rc.Close()
		b.cancel()
	})
	return err
}

// limitedReader applies a shared rate limit to reads, honouring ctx.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (lr limitedReader) Read(p []byte) (int, error) {
	if lr.l == nil || lr.l.Limit() == rate.Inf {
		return lr.r.Read(p)
	}
	if b := lr.l.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
