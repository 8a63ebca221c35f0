package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
)

var lazyFlags struct {
	size, piece, seedRate swarm.ByteSize
	reads                 int
}

func init() {
	register(scenario{name: "lazy", order: 20, run: runLazy, flags: func(fs *pflag.FlagSet) {
		fs.Var(&lazyFlags.size, "lazy-size", "object size for the read benchmarks (default 256 MiB; --quick 32 MiB)")
		fs.Var(&lazyFlags.piece, "lazy-piece-length", "piece length (default 4 MiB, swarmfs's own choice; --quick 1 MiB)")
		fs.Var(&lazyFlags.seedRate, "lazy-seed-upload", "the seeding node's upload cap per second (default 64 MiB)")
		fs.IntVar(&lazyFlags.reads, "lazy-reads", 0, "random 4 KiB reads per measurement (default: up to 50, one per piece)")
	}})
}

// latency is p50/p99 in seconds.
type latency struct {
	P50 float64 `json:"p50_seconds"`
	P99 float64 `json:"p99_seconds"`
	N   int     `json:"reads"`
}

func latencyOf(ds []time.Duration) latency {
	return latency{P50: durQuantile(ds, 0.5).Seconds(), P99: durQuantile(ds, 0.99).Seconds(), N: len(ds)}
}

// lazyReport is the scenario's report.json data.
type lazyReport struct {
	Size, PieceLength, SeedUpload int64
	// PieceSeconds is one piece's transfer time: a full download's time
	// through the same seeder, over the number of pieces.
	PieceSeconds float64 `json:"piece_seconds"`
	TTFBSeconds  float64 `json:"ttfb_seconds"`
	// Random 4 KiB reads: cold (never fetched), warm (page cache), local
	// (page cache dropped, pieces on local disk).
	Cold, Warm, Local latency
	// Sequential reads of a complete object, MB/s, cold page cache.
	SeqDirect, SeqPassthrough, SeqNoPassthrough float64
	// The same, warm page cache.
	SeqDirectWarm, SeqPassthroughWarm, SeqNoPassthroughWarm float64
	// Random cold reads with and without a background download running.
	Quiet, Busy latency
}

func runLazy(ctx context.Context, e *env) (section, error) {
	size, piece, seedRate := int64(256<<20), int64(4<<20), int64(64<<20)
	if e.quick {
		size, piece = 32<<20, 1<<20
	}
	for _, o := range []struct {
		v   swarm.ByteSize
		dst *int64
	}{{lazyFlags.size, &size}, {lazyFlags.piece, &piece}, {lazyFlags.seedRate, &seedRate}} {
		if o.v > 0 {
			*o.dst = int64(o.v)
		}
	}
	pieces := int((size + piece - 1) / piece)
	reads := lazyFlags.reads
	if reads <= 0 {
		reads = min(50, pieces-2)
	}
	if reads < 1 || reads > pieces-2 {
		return section{}, fmt.Errorf("lazy: %d reads in distinct pieces need more than %d pieces", reads, pieces)
	}
	c, err := newCluster(e, "lazy")
	if err != nil {
		return section{}, err
	}
	defer c.close()
	c.origin.Put("/lazy.bin", swarmtest.Data(21, size))
	url := c.origin.URL("/lazy.bin")
	r := lazyReport{Size: size, PieceLength: piece, SeedUpload: seedRate}
	pl := fmt.Sprint(piece)

	// The seeder: converts, mounted (passthrough on), upload capped.
	a, mntA, err := c.start(ctx, "seed", true, "--piece-length", pl, "--upload-rate", fmt.Sprint(seedRate))
	if err != nil {
		return section{}, err
	}
	if _, err := add(ctx, a, url, "lazy.bin"); err != nil {
		return section{}, err
	}
	// One piece's transfer time, from a full download through the seeder.
	full, mntNoPT, err := c.start(ctx, "full", true, "--no-passthrough")
	if err != nil {
		return section{}, err
	}
	d, err := add(ctx, full, url, "lazy.bin")
	if err != nil {
		return section{}, err
	}
	r.PieceSeconds = d.Seconds() / float64(pieces)

	// Cold node: nothing in the background, so only reads fetch.
	_, mntCold, err := c.start(ctx, "cold", true, "--background", "never")
	if err != nil {
		return section{}, err
	}
	file := filepath.Join(mntCold, "lazy.bin")
	if err := waitFile(ctx, file); err != nil {
		return section{}, err
	}
	if err := dropCaches(); err != nil {
		return section{}, err
	}
	mid := int64(pieces/2) * piece
	ttfb, err := preadTime(file, mid+piece/2, 4096)
	if err != nil {
		return section{}, err
	}
	r.TTFBSeconds = ttfb.Seconds()
	// Random reads, one per piece, never the middle piece read above.
	rng := rand.New(rand.NewPCG(7, 7))
	var offs []int64
	for _, p := range rng.Perm(pieces) {
		if p == pieces/2 || int64(p)*piece+4096 > size {
			continue
		}
		if len(offs) == reads {
			break
		}
		offs = append(offs, int64(p)*piece+rng.Int64N(min(piece, size-int64(p)*piece)-4096))
	}
	measure := func(file string) ([]time.Duration, error) {
		var ds []time.Duration
		for _, off := range offs {
			d, err := preadTime(file, off, 4096)
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	cold, err := measure(file)
	if err != nil {
		return section{}, err
	}
	warm, err := measure(file)
	if err != nil {
		return section{}, err
	}
	if err := dropCaches(); err != nil {
		return section{}, err
	}
	local, err := measure(file)
	if err != nil {
		return section{}, err
	}
	r.Cold, r.Warm, r.Local = latencyOf(cold), latencyOf(warm), latencyOf(local)

	// Sequential reads of the complete object.
	backing, err := filepath.Glob(filepath.Join(a.Dir, "data", "*", "data"))
	if err != nil || len(backing) != 1 {
		return section{}, fmt.Errorf("lazy: seeder data file: %v (%d found)", err, len(backing))
	}
	seq := func(file string) (cold, warm float64, err error) {
		if err := dropCaches(); err != nil {
			return 0, 0, err
		}
		if cold, err = seqRead(file); err != nil {
			return 0, 0, err
		}
		warm, err = seqRead(file)
		return cold, warm, err
	}
	if r.SeqDirect, r.SeqDirectWarm, err = seq(backing[0]); err != nil {
		return section{}, err
	}
	if r.SeqPassthrough, r.SeqPassthroughWarm, err = seq(filepath.Join(mntA, "lazy.bin")); err != nil {
		return section{}, err
	}
	if r.SeqNoPassthrough, r.SeqNoPassthroughWarm, err = seq(filepath.Join(mntNoPT, "lazy.bin")); err != nil {
		return section{}, err
	}

	// Foreground reads with and without a background download.
	fg := func(name, policy string) (latency, error) {
		_, mnt, err := c.start(ctx, name, true, "--background", policy)
		if err != nil {
			return latency{}, err
		}
		f := filepath.Join(mnt, "lazy.bin")
		if err := waitFile(ctx, f); err != nil {
			return latency{}, err
		}
		// Opening the file starts the on-open background download.
		if _, err := preadTime(f, 0, 1); err != nil {
			return latency{}, err
		}
		ds, err := measure(f)
		return latencyOf(ds), err
	}
	if r.Quiet, err = fg("quiet", "never"); err != nil {
		return section{}, err
	}
	if r.Busy, err = fg("busy", "on-open"); err != nil {
		return section{}, err
	}
	return section{Markdown: lazyMarkdown(&r), Data: &r}, nil
}

func lazyMarkdown(r *lazyReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Lazy reads through the mount\n\n%s object, %s pieces, seeder upload %s/s; %d random 4 KiB reads per row, one per piece.\n\n",
		humanize.IBytes(uint64(r.Size)), humanize.IBytes(uint64(r.PieceLength)), humanize.IBytes(uint64(r.SeedUpload)), r.Cold.N)
	t := table{head: []string{"figure", "value", "bound", "ratio"}}
	t.add("one piece's transfer time (full download / pieces)", secs(r.PieceSeconds), "", "")
	t.add("time to first byte, never-read object", secs(r.TTFBSeconds), "≤ 2× one piece", ratio(r.TTFBSeconds, r.PieceSeconds))
	for _, l := range []struct {
		name string
		l    latency
	}{{"random 4 KiB, cold", r.Cold}, {"random 4 KiB, warm (page cache)", r.Warm}, {"random 4 KiB, local (page cache dropped)", r.Local},
		{"random 4 KiB, cold, no background", r.Quiet}, {"random 4 KiB, cold, during background download", r.Busy}} {
		t.add(l.name, "p50 "+secs(l.l.P50)+", p99 "+secs(l.l.P99), "", "")
	}
	t.add("foreground p50 during / without background", "", "", ratio(r.Busy.P50, r.Quiet.P50))
	mb := func(v float64) string { return fmt.Sprintf("%.0f MB/s", v) }
	t.add("sequential, backing file directly (cold / warm)", mb(r.SeqDirect)+" / "+mb(r.SeqDirectWarm), "", "")
	t.add("sequential, mount with passthrough (cold / warm)", mb(r.SeqPassthrough)+" / "+mb(r.SeqPassthroughWarm), "≥ 0.9× direct", ratio(r.SeqPassthrough, r.SeqDirect)+" / "+ratio(r.SeqPassthroughWarm, r.SeqDirectWarm))
	t.add("sequential, mount without passthrough (cold / warm)", mb(r.SeqNoPassthrough)+" / "+mb(r.SeqNoPassthroughWarm), "≥ 0.9× direct", ratio(r.SeqNoPassthrough, r.SeqDirect)+" / "+ratio(r.SeqNoPassthroughWarm, r.SeqDirectWarm))
	b.WriteString(t.String())
	return b.String()
}
