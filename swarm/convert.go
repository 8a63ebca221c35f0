package swarm

import (
	"context"
	"crypto/sha1"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// ConvertSpec names an origin object to convert.
type ConvertSpec struct {
	// URL is the origin object (http or https).
	URL string
	// Name goes into the info dict; default: the last URL path segment.
	Name string
	// Expect, if set, holds validators from an earlier HEAD. The transfer
	// fails with ErrOriginChanged if the origin no longer matches them.
	Expect *Validators
}

// Conversion is the result of a conversion: the seeded object and the
// origin version it was made from.
type Conversion struct {
	*Object
	Source Validators
}

// Convert streams the origin body once into storage, hashing pieces as bytes
// arrive, and seeds the result. A dropped transfer is resumed with a Range
// request bound to the first response's validators (OriginRetries times).
// On failure nothing is left behind and nothing is seeded.
func (c *Client) Convert(ctx context.Context, spec ConvertSpec) (*Conversion, error) {
	start := time.Now()
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("convert %q: not an http(s) url", spec.URL)
	}
	name := spec.Name
	if name == "" {
		name = path.Base(u.Path)
		if name == "/" || name == "." || name == "" {
			name = "object"
		}
	}
	want := Validators{Size: -1}
	if spec.Expect != nil {
		want = *spec.Expect
	}
	log := c.log.With("url", spec.URL)
	tmp, err := c.newScratch("convert-*")
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", spec.URL, err)
	}
	defer tmp.discard()

	var w *pieceWriter
	var got int64
	for attempt := 0; ; attempt++ {
		var off int64
		if w != nil {
			off = w.off
		}
		err = func() error {
			body, rv, from, err := originRange(ctx, c.origin, spec.URL, off, -1, want, c.cfg.OriginTimeout, false)
			if err != nil {
				return err
			}
			defer body.Close()
			if from != off {
				log.Warn("origin ignored the range request, restarting from byte 0", "offset", off)
				if err := w.reset(); err != nil {
					return permanent(err)
				}
			}
			if w == nil {
				// The first response fixes the version; resumes must match it.
				want = mergeValidators(want, rv)
				w = newPieceWriter(tmp.f, c.cfg.ChoosePieceLength(want.Size))
			}
			n, err := w.copyFrom(body, want.Size)
			got += n
			c.originBytes.Add(n)
			return err
		}()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("convert %s: %w", spec.URL, ctx.Err())
		}
		if !retryable(err) || attempt >= c.cfg.OriginRetries {
			return nil, fmt.Errorf("convert %s after %d attempts: %w", spec.URL, attempt+1, err)
		}
		log.Warn("origin transfer failed, resuming", "attempt", attempt+1, "offset", w.offset(), "err", err)
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return nil, fmt.Errorf("convert %s: %w", spec.URL, err)
		}
	}
	o, err := c.finishObject(ctx, tmp, w, name)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", spec.URL, err)
	}
	o.originBytes.Add(got)
	c.convDuration.Observe(time.Since(start).Seconds())
	log.Info("converted", "infohash", o.ih.HexString(), "size", o.Size(), "piece_length", o.PieceLength(), "origin_bytes", got, "duration", time.Since(start))
	return &Conversion{Object: o, Source: want}, nil
}

// Publish copies a local file into storage, hashing it on the way, and
// seeds it. name defaults to the file's base name.
func (c *Client) Publish(ctx context.Context, file, name string) (*Object, error) {
	start := time.Now()
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", file, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("publish %s: not a regular file", file)
	}
	if name == "" {
		name = filepath.Base(file)
	}
	tmp, err := c.newScratch("publish-*")
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", file, err)
	}
	defer tmp.discard()
	w := newPieceWriter(tmp.f, c.cfg.ChoosePieceLength(fi.Size()))
	if _, err := w.copyFrom(ctxReader{ctx, f}, fi.Size()); err != nil {
		return nil, fmt.Errorf("publish %s: %w", file, err)
	}
	o, err := c.finishObject(ctx, tmp, w, name)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", file, err)
	}
	c.convDuration.Observe(time.Since(start).Seconds())
	c.log.Info("published", "file", file, "infohash", o.ih.HexString(), "size", o.Size(), "duration", time.Since(start))
	return o, nil
}

// finishObject turns a fully written scratch file into a seeded object. The
// converter hashed every byte itself, so it records all pieces complete.
func (c *Client) finishObject(ctx context.Context, tmp *scratch, w *pieceWriter, name string) (*Object, error) {
	info := metainfo.Info{Name: name, Length: w.off, PieceLength: w.pl, Pieces: w.finish()}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	if len(infoBytes) > c.cfg.MaxInfoBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d (raise the piece length)", ErrTooLarge, len(infoBytes), c.cfg.MaxInfoBytes)
	}
	ih := metainfo.HashBytes(infoBytes)
	if o, ok := c.Object(ih); ok {
		return o, nil // same content already held
	}
	if err := tmp.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync scratch file: %w", err)
	}
	dir := c.store.objectDir(ih)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create object dir: %w", err)
	}
	if err := tmp.commit(c.store.dataPath(ih)); err != nil {
		return nil, err
	}
	if err := c.store.setCompletion(ih, info.NumPieces(), true); err != nil {
		return nil, err
	}
	return c.addObject(ctx, ih, infoBytes, &info)
}

func mergeValidators(want, got Validators) Validators {
	if want.ETag == "" {
		want.ETag = got.ETag
	}
	if want.LastModified == "" {
		want.LastModified = got.LastModified
	}
	if want.Size < 0 {
		want.Size = got.Size
	}
	return want
}

// scratch is a file under the data dir's scratch area that is removed
// unless committed.
type scratch struct {
	f    *os.File
	done bool
}

func (c *Client) newScratch(pattern string) (*scratch, error) {
	if err := os.MkdirAll(c.store.tmpDir(), 0o750); err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	f, err := os.CreateTemp(c.store.tmpDir(), pattern)
	if err != nil {
		return nil, fmt.Errorf("create scratch file: %w", err)
	}
	return &scratch{f: f}, nil
}

// commit moves the scratch file to dst atomically.
func (s *scratch) commit(dst string) error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close scratch file: %w", err)
	}
	if err := os.Rename(s.f.Name(), dst); err != nil {
		return fmt.Errorf("move object into place: %w", err)
	}
	s.done = true
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *scratch) discard() {
	if s.done {
		return
	}
	s.f.Close()
	os.Remove(s.f.Name())
}

// pieceWriter writes a stream sequentially to a file and hashes each piece
// as its bytes go by, so no second pass over the data is needed.
type pieceWriter struct {
	f       *os.File
	pl      int64
	off     int64
	h       hash.Hash
	inPiece int64
	pieces  []byte
}

func newPieceWriter(f *os.File, pieceLength int64) *pieceWriter {
	return &pieceWriter{f: f, pl: pieceLength, h: sha1.New()}
}

func (w *pieceWriter) offset() int64 {
	if w == nil {
		return 0
	}
	return w.off
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	if err != nil {
		return n, permanent(fmt.Errorf("write scratch file: %w", err))
	}
	w.off += int64(n)
	for len(p) > 0 {
		k := min(int64(len(p)), w.pl-w.inPiece)
		w.h.Write(p[:k])
		w.inPiece += k
		p = p[k:]
		if w.inPiece == w.pl {
			w.pieces = w.h.Sum(w.pieces)
			w.h.Reset()
			w.inPiece = 0
		}
	}
	return n, nil
}

// copyFrom appends r to the file. With size >= 0 it fails if r ends early
// (io.ErrUnexpectedEOF, resumable) or holds more bytes (ErrOriginLength).
func (w *pieceWriter) copyFrom(r io.Reader, size int64) (int64, error) {
	if size >= 0 {
		r = io.LimitReader(r, size-w.off+1)
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(w, r, buf)
	if err != nil {
		return n, err
	}
	switch {
	case size < 0:
	case w.off > size:
		return n, fmt.Errorf("%w: more than the %d bytes announced", ErrOriginLength, size)
	case w.off < size:
		return n, fmt.Errorf("body ended at byte %d of %d: %w", w.off, size, io.ErrUnexpectedEOF)
	}
	return n, nil
}

// reset starts over from byte 0.
func (w *pieceWriter) reset() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate scratch file: %w", err)
	}
	w.off, w.inPiece, w.pieces = 0, 0, nil
	w.h.Reset()
	return nil
}

// finish returns the concatenated piece hashes, including a final short
// piece.
func (w *pieceWriter) finish() []byte {
	if w.inPiece > 0 {
		w.pieces = w.h.Sum(w.pieces)
		w.h.Reset()
		w.inPiece = 0
	}
	return w.pieces
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func backoff(attempt int) time.Duration {
	return defaultRetryBackoffPeriod << min(attempt, 5)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
