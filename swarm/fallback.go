package swarm

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/anacrolix/torrent"
)

// The origin fallback.
//
// anacrolix web seeds run alongside peers from the moment they are added and
// cannot be removed, so the origin would compete with the swarm. Instead
// each incomplete object with an origin URL has a watcher. When the object
// wants pieces and no useful byte has come from a peer for StallTimeout, the
// watcher fetches missing pieces from the origin itself, one Range request
// per piece (highest priority first, so blocked readers are served first),
// through one limiter shared by all objects (Config.OriginRate). Each piece
// is checked against its hash before it is written, written through the
// torrent's storage, and then verified by the torrent like any downloaded
// piece. As soon as a peer delivers useful bytes again, the watcher stops
// using the origin. Requests carry If-Match, so a changed origin stops the
// fallback with ErrOriginChanged instead of feeding bad pieces.

// maxFallbackMismatches stops the fallback after this many pieces in a row
// whose origin bytes did not match their hash.
const maxFallbackMismatches = 3

func (o *Object) startFallback() {
	if !o.fallbackStarted.CompareAndSwap(false, true) {
		return
	}
	o.c.wg.Add(1)
	go func() {
		defer o.c.wg.Done()
		o.fallbackLoop(o.c.ctx)
	}()
}

func (o *Object) peerBytes() int64 {
	s := o.t.Stats()
	return s.PeerConns.BytesReadUsefulData.Int64()
}

func (o *Object) fallbackLoop(ctx context.Context) {
	timeout := o.c.cfg.StallTimeout
	tick := time.NewTicker(min(timeout/4, time.Second))
	defer tick.Stop()
	lastPeer, lastProgress := o.peerBytes(), time.Now()
	stalled := false
	failures, mismatches := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.t.Closed():
			return
		case <-tick.C:
		}
		for {
			if o.Complete() {
				return
			}
			if pb := o.peerBytes(); pb > lastPeer {
				lastPeer, lastProgress = pb, time.Now()
				if stalled {
					o.log.Info("peers delivering again, origin fallback paused")
					stalled = false
				}
				break
			}
			i, ok := o.fallbackPiece()
			if !ok {
				lastProgress = time.Now() // nothing wanted is not a stall
				break
			}
			if time.Since(lastProgress) < timeout {
				break
			}
			if !stalled {
				stalled = true
				o.c.fallbacks.Add(1)
				o.log.Warn("no peer progress, reading missing pieces from the origin", "stall", time.Since(lastProgress).Round(time.Second), "url", o.origin.url)
			}
			err := o.fetchFromOrigin(ctx, i)
			switch {
			case err == nil:
				failures, mismatches = 0, 0
				continue
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrOriginChanged):
				o.log.Error("origin fallback stopped: the origin no longer serves this version", "err", err)
				return
			case errors.Is(err, errOriginPieceMismatch):
				mismatches++
				if mismatches >= maxFallbackMismatches {
					o.log.Error("origin fallback stopped: origin data does not match the piece hashes", "err", err)
					return
				}
			}
			failures++
			o.log.Warn("origin fallback read failed", "piece", i, "err", err)
			if sleepCtx(ctx, backoff(min(failures, 6))) != nil {
				return
			}
			break
		}
	}
}

// fallbackPiece picks the wanted, missing piece of highest priority that is
// not being hashed (lowest index first).
func (o *Object) fallbackPiece() (int, bool) {
	best, bestPrio := -1, torrent.PiecePriorityNone
	i := 0
	for _, run := range o.t.PieceStateRuns() {
		if !run.Complete && !run.Hashing && !run.QueuedForHash && !run.Marking && run.Priority > bestPrio {
			best, bestPrio = i, run.Priority
		}
		i += run.Length
	}
	return best, best >= 0
}

var errOriginPieceMismatch = errors.New("origin bytes do not match the piece hash")

// fetchFromOrigin reads piece i from the origin at the capped rate, checks
// it, writes it and has the torrent verify it.
func (o *Object) fetchFromOrigin(ctx context.Context, i int) error {
	p := o.info.Piece(i)
	body, _, _, err := originRange(ctx, o.c.origin, o.origin.url, p.Offset(), p.Length(), o.origin.want, o.c.cfg.OriginTimeout, true)
	if err != nil {
		return fmt.Errorf("piece %d: %w", i, err)
	}
	defer body.Close()
	buf := make([]byte, p.Length())
	n, err := io.ReadFull(limitedReader{ctx, body, o.c.originLimiter}, buf)
	o.originBytes.Add(int64(n))
	o.c.originBytes.Add(int64(n))
	if err != nil {
		return fmt.Errorf("piece %d: read origin body: %w", i, err)
	}
	want := p.V1Hash()
	if sum := sha1.Sum(buf); !want.Ok || !bytes.Equal(sum[:], want.Value[:]) {
		return fmt.Errorf("piece %d: %w", i, errOriginPieceMismatch)
	}
	if err := o.c.store.writePiece(o.ih, p, buf); err != nil {
		return err
	}
	if err := o.t.Piece(i).VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("piece %d: verify: %w", i, err)
	}
	// VerifyData returns once the hash ran; marking the piece complete
	// follows. Wait for that, boundedly.
	for range 200 {
		ps := o.t.PieceState(i)
		if ps.Complete {
			return nil
		}
		if !ps.Hashing && !ps.QueuedForHash && !ps.Marking && !ps.Partial {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	if o.t.PieceState(i).Complete {
		return nil
	}
	return fmt.Errorf("piece %d: written from origin but not complete after verification", i)
}
