// Package swarmtest holds test fixtures for swarm and its users: an HTTP
// origin with Range and ETag support, counters and faults on demand, and
// deterministic object data.
package swarmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int64) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	r := rand.NewChaCha8(key)
	r.Read(b)
	return b
}

// SHA256 returns the hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Fault changes how the origin answers the next GET requests of a path.
type Fault struct {
	// Status, if set, is returned instead of the body.
	Status int
	// DropAfter, if > 0, aborts the connection after this many body bytes.
	DropAfter int64
	// Short, if > 0, announces the full length but sends this many bytes
	// fewer, then closes the connection.
	Short int64
	// Extra, if > 0, sends the body without Content-Length and with this
	// many extra bytes at the end.
	Extra int64
	// IgnoreRange answers range requests with the whole body.
	IgnoreRange bool
	// Then runs when the fault has fired (e.g. to replace the object).
	Then func()
}

type object struct {
	data    []byte
	etag    string
	modTime time.Time
	faults  []Fault
}

// OriginStats are counters over every request served.
type OriginStats struct {
	Requests    int64 // all requests
	Gets        int64 // GET requests
	FullGets    int64 // GET requests without a Range header
	RangeGets   int64 // GET requests with a Range header
	BodyBytes   int64 // body bytes written
	FailedFault int64 // requests answered by a fault
}

// Origin is a real HTTP server on loopback serving in-memory objects.
type Origin struct {
	srv *http.Server
	ln  net.Listener
	url string

	mu      sync.Mutex
	objects map[string]*object
	version int
	limiter *rate.Limiter
	stats   struct {
		requests, gets, fullGets, rangeGets, bodyBytes, faults atomic.Int64
	}
}

// NewOrigin starts an origin on 127.0.0.1 with a random port. Close it when
// done.
func NewOrigin() (*Origin, error) {
	return NewOriginOn("127.0.0.1:0")
}

// NewOriginOn starts an origin listening on addr.
func NewOriginOn(addr string) (*Origin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("origin listen: %w", err)
	}
	o := &Origin{ln: ln, url: "http://" + ln.Addr().String(), objects: map[string]*object{}}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o, nil
}

// URL returns the URL of path (which starts with "/").
func (o *Origin) URL(path string) string { return o.url + path }

// Close stops the server.
func (o *Origin) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(ctx); err != nil {
		return o.srv.Close()
	}
	return nil
}

// Put serves data at path with a new ETag.
func (o *Origin) Put(path string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.version++
	o.objects[path] = &object{
		data:    data,
		etag:    fmt.Sprintf(`"v%d-%s"`, o.version, SHA256(data)[:12]),
		modTime: time.Date(2026, 1, 1, 0, 0, o.version, 0, time.UTC),
	}
}

// ETag returns the current ETag of path.
func (o *Origin) ETag(path string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ob, ok := o.objects[path]; ok {
		return ob.etag
	}
	return ""
}

// Inject queues faults for the next GET requests of path, one per request.
func (o *Origin) Inject(path string, faults ...Fault) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ob, ok := o.objects[path]; ok {
		ob.faults = append(ob.faults, faults...)
	}
}

// SetRate caps the body bytes per second of all responses (0: no cap).
func (o *Origin) SetRate(bytesPerSec int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if bytesPerSec <= 0 {
		o.limiter = nil
		return
	}
	o.limiter = rate.NewLimiter(rate.Limit(bytesPerSec), int(min(bytesPerSec, 256<<10)))
}

// Stats returns the counters.
func (o *Origin) Stats() OriginStats {
	return OriginStats{
		Requests:    o.stats.requests.Load(),
		Gets:        o.stats.gets.Load(),
		FullGets:    o.stats.fullGets.Load(),
		RangeGets:   o.stats.rangeGets.Load(),
		BodyBytes:   o.stats.bodyBytes.Load(),
		FailedFault: o.stats.faults.Load(),
	}
}

var errDropped = errors.New("origin: connection dropped on purpose")

// ServeHTTP implements http.Handler.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.stats.requests.Add(1)
	o.mu.Lock()
	ob, ok := o.objects[r.URL.Path]
	var fault Fault
	var hasFault bool
	var data []byte
	var etag string
	var mod time.Time
	if ok {
		data, etag, mod = ob.data, ob.etag, ob.modTime
		if r.Method == http.MethodGet && len(ob.faults) > 0 {
			fault, hasFault = ob.faults[0], true
			ob.faults = ob.faults[1:]
		}
	}
	limiter := o.limiter
	o.mu.Unlock()
	if r.Method == http.MethodGet {
		o.stats.gets.Add(1)
		if r.Header.Get("Range") == "" {
			o.stats.fullGets.Add(1)
		} else {
			o.stats.rangeGets.Add(1)
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if hasFault {
		o.stats.faults.Add(1)
		if fault.Then != nil {
			defer fault.Then()
		}
	}
	cw := &countingWriter{ResponseWriter: w, o: o, ctx: r.Context(), limiter: limiter, dropAfter: -1}
	switch {
	case hasFault && fault.Status != 0:
		http.Error(w, http.StatusText(fault.Status), fault.Status)
		return
	case hasFault && fault.Short > 0:
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		cw.Write(data[:max(0, int64(len(data))-fault.Short)])
		panic(http.ErrAbortHandler)
	case hasFault && fault.Extra > 0:
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // no Content-Length: chunked
		cw.Write(data)
		cw.Write(make([]byte, fault.Extra))
		return
	case hasFault && fault.IgnoreRange:
		r.Header.Del("Range")
	}
	if hasFault && fault.DropAfter > 0 {
		cw.dropAfter = fault.DropAfter
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(cw, r, "", mod, bytes.NewReader(data))
	if cw.dropped {
		panic(http.ErrAbortHandler)
	}
}

type countingWriter struct {
	http.ResponseWriter
	o         *Origin
	ctx       context.Context
	limiter   *rate.Limiter
	dropAfter int64
	written   int64
	dropped   bool
}

func (w *countingWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if w.dropAfter >= 0 && w.written >= w.dropAfter {
			w.dropped = true
			return total, errDropped
		}
		chunk := p[:min(len(p), 64<<10)]
		if w.dropAfter >= 0 {
			chunk = chunk[:min(int64(len(chunk)), w.dropAfter-w.written)]
		}
		if w.limiter != nil {
			chunk = chunk[:min(len(chunk), w.limiter.Burst())]
			if err := w.limiter.WaitN(w.ctx, len(chunk)); err != nil {
				return total, err
			}
		}
		n, err := w.ResponseWriter.Write(chunk)
		total += n
		w.written += int64(n)
		w.o.stats.bodyBytes.Add(int64(n))
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}
