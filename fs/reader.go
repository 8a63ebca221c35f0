package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/anacrolix/torrent"

	"swarmfs/swarm"
)

var (
	// ErrDestroyed means the filesystem is shutting down; blocked reads
	// fail with it (EIO).
	ErrDestroyed = errors.New("fs: filesystem destroyed")
	// ErrReadTimeout means a read made no progress for Config.ReadTimeout
	// (EIO).
	ErrReadTimeout = errors.New("fs: read timed out without progress")
	// ErrInterrupted means the reader's request was interrupted and the
	// data did not arrive within the grace period (EINTR).
	ErrInterrupted = errors.New("fs: read interrupted")
)

// objectReader reads verified bytes of one object. Reads of complete
// pieces go straight to the backing file. Reads of missing pieces raise
// exactly those pieces to the top priority and wait for them to be
// verified; the demand outlives an interrupted request, so a retry finds
// the data on its way.
type objectReader struct {
	o      *swarm.Object
	t      *torrent.Torrent
	pl     int64
	size   int64
	cfg    Config
	log    *slog.Logger
	m      *metrics
	closed <-chan struct{}

	mu     sync.Mutex
	file   *os.File
	notify chan struct{} // closed and replaced on every piece state change
	stop   func()

	// Foreground over background: while any read waits, the background
	// download (normal-priority pieces) is paused so the swarm serves the
	// waiting pieces first; it resumes when no read waits.
	bgMu       sync.Mutex
	background bool // the whole object was asked for
	waiting    int  // reads blocked on pieces
}

// startBackground asks for the whole object at normal priority (paused
// while reads wait).
func (r *objectReader) startBackground() {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	r.background = true
	if r.waiting == 0 {
		r.o.DownloadAll()
	}
}

func (r *objectReader) enterWait() {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	r.waiting++
	if r.waiting == 1 && r.background {
		// Drop background pieces to no priority: anacrolix cancels their
		// outstanding requests, so the waiting pieces are next in line.
		// One lock for the piece states; only background runs (normal,
		// and high for the spreading window) are touched.
		i := 0
		for _, run := range r.t.PieceStateRuns() {
			if !run.Complete && (run.Priority == torrent.PiecePriorityNormal || run.Priority == torrent.PiecePriorityHigh) {
				for j := i; j < i+run.Length; j++ {
					r.t.Piece(j).SetPriority(torrent.PiecePriorityNone)
				}
			}
			i += run.Length
		}
	}
}

func (r *objectReader) leaveWait() {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	r.waiting--
	if r.waiting == 0 && r.background {
		r.o.DownloadAll() // raises only: read priorities stay
	}
}

func newObjectReader(o *swarm.Object, cfg Config, log *slog.Logger, m *metrics, closed <-chan struct{}) *objectReader {
	r := &objectReader{
		o: o, t: o.Torrent(), pl: o.PieceLength(), size: o.Size(),
		cfg: cfg, log: log.With("infohash", o.InfoHash().HexString()), m: m, closed: closed,
		notify: make(chan struct{}),
	}
	sub := r.t.SubscribePieceStateChanges()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case _, ok := <-sub.Values:
				if !ok {
					return
				}
				r.bump()
			case <-done:
				return
			}
		}
	}()
	r.stop = func() { close(done); sub.Close() }
	return r
}

func (r *objectReader) close() {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

func (r *objectReader) bump() {
	r.mu.Lock()
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
}

func (r *objectReader) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notify
}

// backing returns the open backing file.
func (r *objectReader) backing() (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == nil {
		f, err := os.Open(r.o.DataPath())
		if err != nil {
			return nil, fmt.Errorf("open backing data: %w", err)
		}
		r.file = f
	}
	return r.file, nil
}

func (r *objectReader) pieceRange(off, n int64) (first, last int) {
	return int(off / r.pl), int((off + n - 1) / r.pl)
}

// missing returns the incomplete pieces of [first, last].
func (r *objectReader) missing(first, last int) []int {
	if r.t.Complete().Bool() {
		return nil
	}
	var out []int
	for i := first; i <= last; i++ {
		if !r.t.PieceState(i).Complete {
			out = append(out, i)
		}
	}
	return out
}

// stream tracks one sequential reader within a handle for readahead.
type stream struct {
	next    int64 // where the next sequential read starts
	run     int64 // bytes read sequentially so far
	raised  int   // highest piece raised to readahead priority
	lastUse time.Time
}

// streams are a handle's sequential-read trackers. A read continuing one
// of them grows its readahead; any other read starts a new one (evicting
// the least recently used), with no readahead until it proves sequential.
type streams struct {
	mu sync.Mutex
	s  [4]stream
}

// maxSeqGap tolerates small out-of-order gaps of async kernel reads.
const maxSeqGap = 256 << 10

// readahead updates the trackers for a read of [off, off+n) and returns
// the readahead window in bytes and the highest piece already raised.
func (ss *streams) readahead(off, n, limit int64) (window int64, raised *int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := time.Now()
	best := -1
	for i := range ss.s {
		s := &ss.s[i]
		if !s.lastUse.IsZero() && off >= s.next-maxSeqGap && off <= s.next+maxSeqGap {
			best = i
			break
		}
	}
	if best < 0 {
		for i := range ss.s {
			if best < 0 || ss.s[i].lastUse.Before(ss.s[best].lastUse) {
				best = i
			}
		}
		ss.s[best] = stream{raised: -1}
	} else {
		ss.s[best].run += n
	}
	s := &ss.s[best]
	s.next = max(s.next, off+n)
	s.lastUse = now
	// Linear growth, like anacrolix's default: as much ahead as has been
	// read sequentially, capped.
	return min(s.run, limit), &s.raised
}

// ReadAt fills dest from off (fully, unless at end of object) with
// verified bytes. ss may be nil (no readahead).
func (r *objectReader) ReadAt(ctx context.Context, dest []byte, off int64, ss *streams) (int, error) {
	start := time.Now()
	r.m.lastRead.Store(start.UnixNano())
	if off >= r.size || len(dest) == 0 {
		return 0, nil
	}
	n := min(int64(len(dest)), r.size-off)
	first, last := r.pieceRange(off, n)
	hit := true
	if ss != nil && r.cfg.MaxReadahead > 0 {
		if w, raised := ss.readahead(off, n, int64(r.cfg.MaxReadahead)); w > 0 {
			r.raiseReadahead(last, (min(off+n+w, r.size)-1)/r.pl, raised)
		}
	}
	if miss := r.missing(first, last); len(miss) > 0 {
		hit = false
		if err := r.wait(ctx, miss, off, n); err != nil {
			return 0, err
		}
	}
	f, err := r.backing()
	if err != nil {
		return 0, err
	}
	got, err := f.ReadAt(dest[:n], off)
	if err != nil && int64(got) < n {
		return got, fmt.Errorf("read backing data at %d: %w", off, err)
	}
	r.m.observeRead(hit, time.Since(start), got)
	return got, nil
}

// raiseReadahead gives pieces (after, upTo] readahead priority, once.
func (r *objectReader) raiseReadahead(after int, upTo int64, raised *int) {
	lo := max(after+1, *raised+1)
	for i := lo; i <= int(upTo); i++ {
		if !r.t.PieceState(i).Complete {
			r.t.Piece(i).SetPriority(torrent.PiecePriorityReadahead)
		}
	}
	if int(upTo) > *raised {
		*raised = int(upTo)
	}
}

// wait raises the missing pieces to the top priority and blocks until they
// are verified, the filesystem is destroyed, the read times out, or the
// request is interrupted and the grace period passes.
func (r *objectReader) wait(ctx context.Context, miss []int, off, n int64) error {
	for _, i := range miss {
		r.t.Piece(i).SetPriority(torrent.PiecePriorityNow)
	}
	r.m.blocked.Inc()
	r.m.blockedNow.Add(1)
	r.enterWait()
	defer func() {
		r.leaveWait()
		r.m.blocked.Dec()
		r.m.blockedNow.Add(-1)
	}()
	var (
		interrupted  <-chan time.Time
		lastProgress = time.Now()
		warned       bool
		tick         = time.NewTicker(time.Second)
	)
	defer tick.Stop()
	remaining := len(miss)
	for {
		ch := r.changed()
		still := miss[:0]
		for _, i := range miss {
			if !r.t.PieceState(i).Complete {
				still = append(still, i)
			}
		}
		miss = still
		if len(miss) == 0 {
			return nil
		}
		if len(miss) < remaining {
			remaining, lastProgress = len(miss), time.Now()
		}
		done := ctx.Done()
		if interrupted != nil {
			done = nil
		}
		select {
		case <-ch:
		case <-r.closed:
			return ErrDestroyed
		case <-done:
			// Spurious interrupts (Go's SIGURG) are common: keep waiting a
			// little before giving up on the request. The piece demand
			// stays either way.
			interrupted = time.After(r.cfg.InterruptGrace)
		case <-interrupted:
			return ErrInterrupted
		case <-tick.C:
			stalled := time.Since(lastProgress)
			if r.cfg.ReadTimeout > 0 && stalled > r.cfg.ReadTimeout {
				r.log.Error("read failed: no progress", "offset", off, "length", n, "missing_pieces", len(miss), "waited", stalled.Round(time.Second), "peers", r.o.Stats().Peers)
				return ErrReadTimeout
			}
			if !warned && stalled > r.cfg.BlockedWarning {
				warned = true
				st := r.o.Stats()
				r.log.Warn("read blocked: the swarm has not supplied the data yet", "offset", off, "length", n,
					"missing_pieces", len(miss), "first_missing", miss[0], "waited", stalled.Round(time.Second),
					"peers", st.Peers, "seeders", st.Seeders, "origin_bytes", st.OriginBytes)
			}
		}
	}
}
