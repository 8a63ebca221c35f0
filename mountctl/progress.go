package mountctl

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// pollInterval is how often a wait asks the daemon for progress.
const pollInterval = 250 * time.Millisecond

// waitComplete polls path until this node's copy of o is complete, showing
// progress on stderr: a live bar on a terminal, a line every c.interval
// otherwise, nothing with -o json. It returns the last answer.
func (c *cli) waitComplete(ctx context.Context, o Object) (Object, error) {
	if o.State == StateComplete {
		return o, nil
	}
	var show progressView = nopView{}
	switch {
	case c.output == "json":
	case c.io.Terminal:
		show = newBarView(c.io.Stderr, o)
	default:
		show = &lineView{w: c.io.Stderr, every: c.interval}
	}
	defer show.done()
	path := o.Path
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("gave up waiting for %s (%s of %s here): %w", path, bytesStr(o.BytesCompleted), bytesStr(o.Size), ctx.Err())
		case <-tick.C:
		}
		next, err := c.client.Stat(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported by the select
			}
			return o, err
		}
		if next.InfoHash != o.InfoHash {
			return next, fmt.Errorf("%s now names another version (infohash %s, was %s)", path, next.InfoHash, o.InfoHash)
		}
		o = next
		if o.State == StateAbsent {
			return o, fmt.Errorf("%s is no longer held on this node (evicted?)", path)
		}
		show.update(o)
		if o.State == StateComplete {
			return o, nil
		}
	}
}

type progressView interface {
	update(Object)
	done()
}

type nopView struct{}

func (nopView) update(Object) {}
func (nopView) done()         {}

// lineView prints a plain line every so often: for logs and pipes.
type lineView struct {
	w        io.Writer
	every    time.Duration
	last     time.Time
	lastDone int64
	rate     float64
}

func (v *lineView) update(o Object) {
	now := time.Now()
	if v.last.IsZero() {
		v.last, v.lastDone = now, o.BytesCompleted
		v.print(o)
		return
	}
	if now.Sub(v.last) < v.every && o.State != StateComplete {
		return
	}
	v.rate = float64(o.BytesCompleted-v.lastDone) / now.Sub(v.last).Seconds()
	v.last, v.lastDone = now, o.BytesCompleted
	v.print(o)
}

func (v *lineView) print(o Object) {
	eta := "-"
	if o.State == StateComplete {
		eta = "0s"
	} else if v.rate > 0 {
		eta = time.Duration(float64(o.Size-o.BytesCompleted) / v.rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(v.w, "%s: %s / %s (%s), %s/s, ETA %s, %s\n", o.Path, bytesStr(o.BytesCompleted), bytesStr(o.Size),
		percent(o.Progress), bytesStr(int64(v.rate)), eta, share(o))
}

func (v *lineView) done() {}

// barView is a live bar (vbauerster/mpb): bytes, rate and ETA from an
// exponentially weighted average of the polled progress, and the split of
// the bytes received between peers and the origin. Bytes already here when
// the wait began show as a refill.
type barView struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	last  time.Time
	share atomic.Pointer[string] // read by mpb's render goroutine
}

func newBarView(w io.Writer, o Object) *barView {
	v := &barView{last: time.Now()}
	sh := share(o)
	v.share.Store(&sh)
	// The caller checked that w is a terminal; auto refresh is forced so
	// that a writer mpb cannot inspect (a pty wrapper) still animates.
	v.p = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh())
	// A simple EWMA (age 0) shows a rate from the second sample on; the
	// variable one would show 0 for its first ten.
	v.bar = v.p.AddBar(max(o.Size, 1),
		mpb.PrependDecorators(decor.Name(o.Path+" ")),
		mpb.AppendDecorators(
			decor.CountersKibiByte(" % .1f / % .1f"),
			decor.EwmaSpeed(decor.SizeB1024(0), "  % .1f", 0),
			decor.Name("  ETA "), decor.EwmaETA(decor.ET_STYLE_GO, 0),
			decor.Any(func(decor.Statistics) string { return "  " + *v.share.Load() }),
		),
	)
	v.bar.SetCurrent(o.BytesCompleted)
	v.bar.SetRefill(o.BytesCompleted)
	return v
}

func (v *barView) update(o Object) {
	now := time.Now()
	sh := share(o)
	v.share.Store(&sh)
	v.bar.EwmaSetCurrent(o.BytesCompleted, now.Sub(v.last))
	v.last = now
	if o.State == StateComplete {
		v.bar.SetTotal(-1, true)
	}
}

func (v *barView) done() {
	if !v.bar.Completed() {
		v.bar.Abort(false)
	}
	v.p.Wait()
}
