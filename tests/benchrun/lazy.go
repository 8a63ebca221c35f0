package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"swarmfs/mountctl"
	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

var lazyFlags struct {
	size, seqSize, piece, upload swarm.ByteSize
	reads                        int
}

func init() {
	register(scenario{name: "lazy", order: 20, run: runLazy, flags: func(fs *pflag.FlagSet) {
		fs.Var(&lazyFlags.size, "lazy-size", "object for the first byte and the random reads (default 256 MiB; --quick 32 MiB)")
		fs.Var(&lazyFlags.seqSize, "lazy-seq-size", "object for the sequential reads and the background download (default 512 MiB; --quick 64 MiB)")
		fs.Var(&lazyFlags.piece, "lazy-piece-length", "piece length of both objects (default 4 MiB, swarmfs's own choice at these sizes; --quick 1 MiB)")
		fs.Var(&lazyFlags.upload, "lazy-upload", "upload cap per second of every node, so that a piece's transfer time is known (default 64 MiB)")
		fs.IntVar(&lazyFlags.reads, "lazy-reads", 0, "random 4 KiB reads per measurement, each in its own piece (default 50; --quick 20)")
	}})
}

// latency is the p50/p99 of a set of reads.
type latency struct {
	P50 float64 `json:"p50_seconds"`
	P99 float64 `json:"p99_seconds"`
	N   int     `json:"reads"`
	// Fetched is how many pieces the node verified during the reads.
	Fetched int64 `json:"pieces_fetched"`
}

func latencyOf(ds []time.Duration) latency {
	return latency{P50: durQuantile(ds, 0.5).Seconds(), P99: durQuantile(ds, 0.99).Seconds(), N: len(ds)}
}

// seqRun is the sequential read of a complete object one way.
type seqRun struct {
	Name     string  `json:"name"`
	ColdMBps float64 `json:"cold_mbps"` // page cache dropped first
	// Resident is the share of the backing file in memory before the cold
	// read.
	Resident float64 `json:"resident_share"`
	WarmMBps float64 `json:"warm_mbps"` // right after the cold read
	// DaemonBytes is what swarmfsd served to FUSE reads during the cold
	// and the warm read: none with passthrough or from the page cache.
	DaemonBytesCold int64 `json:"daemon_bytes_cold"`
	DaemonBytesWarm int64 `json:"daemon_bytes_warm"`
}

// lazyReport is the scenario's report.json data.
type lazyReport struct {
	Size        int64 `json:"size"`
	SeqSize     int64 `json:"seq_size"`
	PieceLength int64 `json:"piece_length"`
	Upload      int64 `json:"upload_cap"`
	// One piece's transfer time: a fresh node's download of the whole
	// sequential object from the seeder alone (add through the API, waited
	// on, so it includes joining the swarm), over its piece count. Nominal
	// is the piece length over the upload cap.
	FullDownloadSeconds float64 `json:"full_download_seconds"`
	FullOriginBytes     int64   `json:"full_origin_bytes"`
	PieceSeconds        float64 `json:"piece_seconds"`
	NominalPieceSeconds float64 `json:"nominal_piece_seconds"`
	// Time to first byte: open and one 4 KiB read in the middle of a
	// never-read object, on a fresh node with --background never, page
	// cache dropped; the seeder is the object's only source.
	TTFBSeconds     float64 `json:"ttfb_seconds"`
	TTFBOpenSeconds float64 `json:"ttfb_open_seconds"`
	// Random 4 KiB reads, each in its own piece: cold (pieces never
	// fetched), warm (again, page cache), local (the node restarted and
	// the page cache dropped: the pieces on local disk only).
	Cold  latency `json:"cold"`
	Warm  latency `json:"warm"`
	Local latency `json:"local"`
	// LocalResident is the share of the node's data file in memory before
	// the local reads (the node restarted, the page cache dropped).
	LocalResident float64 `json:"local_resident_share"`
	// Sequential reads of the complete object: its backing file directly,
	// the seeder's mount (passthrough), a mount with --no-passthrough; the
	// nodes restarted first (see cluster.restart).
	Seq []seqRun `json:"sequential"`
	// Cold random reads of the sequential object on a fresh node without
	// (quiet) and with (busy) its background download running. Busy counts
	// only reads that ended while the download still ran; BusyAfter are
	// those that ended after it, left out.
	Quiet     latency `json:"quiet"`
	Busy      latency `json:"busy"`
	BusyAfter int     `json:"busy_reads_after_background"`
}

func runLazy(ctx context.Context, e *env) (section, error) {
	size, seqSize, piece, upload, reads := int64(256<<20), int64(512<<20), int64(4<<20), int64(64<<20), 50
	if e.quick {
		size, seqSize, piece, reads = 32<<20, 64<<20, 1<<20, 20
	}
	for _, o := range []struct {
		v   swarm.ByteSize
		dst *int64
	}{{lazyFlags.size, &size}, {lazyFlags.seqSize, &seqSize}, {lazyFlags.piece, &piece}, {lazyFlags.upload, &upload}} {
		if o.v > 0 {
			*o.dst = int64(o.v)
		}
	}
	if lazyFlags.reads > 0 {
		reads = lazyFlags.reads
	}
	if piece <= 4096 {
		return section{}, fmt.Errorf("piece length %d: 4 KiB reads within one piece need more", piece)
	}
	if n := min(size, seqSize) / piece; int64(reads) >= n {
		return section{}, fmt.Errorf("%d reads, each in its own piece, need more than %d pieces", reads, n)
	}
	c, err := newCluster(e, "lazy")
	if err != nil {
		return section{}, err
	}
	defer c.close()
	data, seqData := swarmtest.Data(21, size), swarmtest.Data(22, seqSize)
	c.origin.Put("/lazy.bin", data)
	c.origin.Put("/seq.bin", seqData)
	r := lazyReport{Size: size, SeqSize: seqSize, PieceLength: piece, Upload: upload}
	r.NominalPieceSeconds = float64(piece) / float64(upload)
	nodeArgs := []string{"--piece-length", fmt.Sprint(piece), "--upload-rate", fmt.Sprint(upload)}

	// The first node only runs etcd, so that the others can be restarted.
	if _, _, err := c.start(ctx, "index", false); err != nil {
		return section{}, err
	}
	// The seeder converts both objects; its mount uses passthrough.
	seed, mntSeed, err := c.start(ctx, "seed", true, nodeArgs...)
	if err != nil {
		return section{}, err
	}
	var ih [2]string
	for i, p := range []string{"lazy.bin", "seq.bin"} {
		if _, err := add(ctx, seed, c.origin.URL("/"+p), p); err != nil {
			return section{}, err
		}
		o, err := objectStat(ctx, seed, p)
		if err != nil {
			return section{}, err
		}
		ih[i] = o.InfoHash
	}
	dataFile := func(n *harness.Node, i int) string { return filepath.Join(n.Dir, "data", ih[i], "data") }

	// One piece's transfer time: "full" downloads the sequential object
	// from the seeder, its only source.
	full, mntFull, err := c.start(ctx, "full", true, append(nodeArgs, "--no-passthrough")...)
	if err != nil {
		return section{}, err
	}
	d, err := add(ctx, full, c.origin.URL("/seq.bin"), "seq.bin")
	if err != nil {
		return section{}, err
	}
	fig, err := full.Figures(ctx)
	if err != nil {
		return section{}, err
	}
	r.FullDownloadSeconds, r.FullOriginBytes = d.Seconds(), fig.OriginBytes
	r.PieceSeconds = d.Seconds() / float64((seqSize+piece-1)/piece)

	// First byte and random reads of the other object, which only the
	// seeder holds, on a fresh node that fetches only what is read.
	cold, mntCold, err := c.start(ctx, "cold", true, append(nodeArgs, "--background", "never")...)
	if err != nil {
		return section{}, err
	}
	file := filepath.Join(mntCold, "lazy.bin")
	if err := waitFile(ctx, cold, file); err != nil {
		return section{}, err
	}
	if err := dropCaches(); err != nil {
		return section{}, err
	}
	mid := size / piece / 2 * piece
	first, err := readAt(ctx, file, mid+piece/2, 4096)
	if err != nil {
		return section{}, err
	}
	if !bytes.Equal(first.data, data[mid+piece/2:][:4096]) {
		return section{}, fmt.Errorf("first read at %d returned wrong bytes", mid+piece/2)
	}
	r.TTFBSeconds, r.TTFBOpenSeconds = (first.open + first.read).Seconds(), first.open.Seconds()
	offs := randomOffsets(size, piece, reads, mid/piece)
	if r.Cold, err = measureReads(ctx, cold, file, data, offs, piece); err != nil {
		return section{}, err
	}
	if r.Warm, err = measureReads(ctx, cold, file, data, offs, piece); err != nil {
		return section{}, err
	}
	// Local: the pieces on disk only.
	if cold, err = c.restart(ctx, cold, mntCold); err != nil {
		return section{}, err
	}
	if err := openOnly(ctx, cold, file); err != nil {
		return section{}, err
	}
	if r.LocalResident, err = resident(dataFile(cold, 0)); err != nil {
		return section{}, err
	}
	if r.Local, err = measureReads(ctx, cold, file, data, offs, piece); err != nil {
		return section{}, err
	}
	c.stop(cold, mntCold)

	// Sequential reads of the complete object, from disk.
	if seed, err = c.restart(ctx, seed, mntSeed); err != nil {
		return section{}, err
	}
	if full, err = c.restart(ctx, full, mntFull); err != nil {
		return section{}, err
	}
	for _, w := range []struct {
		n    *harness.Node
		want int
	}{{seed, 2}, {full, 1}} {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := w.n.WaitComplete(wctx, w.want)
		cancel()
		if err != nil {
			return section{}, err
		}
	}
	// Every cold read should find the data in the same place. On a VM the
	// disk may sit on the host's page cache, which drop_caches does not
	// reach, so that the first read of a file would be the only one from
	// the disk: read both data files once first.
	for _, f := range []string{dataFile(seed, 1), dataFile(full, 1)} {
		if _, err := seqRead(ctx, f); err != nil {
			return section{}, err
		}
	}
	for _, s := range []struct {
		name, file string
		n          *harness.Node // serving the mount, nil for the backing file
		backing    string
	}{
		{"backing file directly", dataFile(seed, 1), nil, dataFile(seed, 1)},
		{"mount, passthrough", filepath.Join(mntSeed, "seq.bin"), seed, dataFile(seed, 1)},
		{"mount, no passthrough", filepath.Join(mntFull, "seq.bin"), full, dataFile(full, 1)},
	} {
		run, err := measureSeq(ctx, s.n, s.file, s.backing)
		if err != nil {
			return section{}, err
		}
		run.Name = s.name
		r.Seq = append(r.Seq, run)
	}
	c.stop(full, mntFull) // the seeder stays the only source

	// Foreground reads with and without a background download.
	offs = randomOffsets(seqSize, piece, reads, 0)
	if r.Quiet, _, err = foregroundReads(ctx, c, "quiet", "never", nodeArgs, seqData, offs, piece); err != nil {
		return section{}, err
	}
	if r.Busy, r.BusyAfter, err = foregroundReads(ctx, c, "busy", "on-open", nodeArgs, seqData, offs, piece); err != nil {
		return section{}, err
	}
	if r.Busy.N == 0 {
		return section{}, fmt.Errorf("the background download ended before the first foreground read; make --lazy-seq-size larger or --lazy-upload smaller")
	}
	return section{Markdown: lazyMarkdown(&r), Data: &r}, nil
}

// randomOffsets picks n random 4 KiB reads of an object, each in its own
// piece, none in piece skip.
func randomOffsets(size, piece int64, n int, skip int64) []int64 {
	rng := rand.New(rand.NewPCG(uint64(size), uint64(n)))
	var offs []int64
	for _, p := range rng.Perm(int(size / piece)) { // whole pieces only
		if int64(p) == skip {
			continue
		}
		if len(offs) == n {
			break
		}
		offs = append(offs, int64(p)*piece+rng.Int64N(piece-4096))
	}
	return offs
}

// measureReads reads 4 KiB at each offset of file (in n's mount), checks
// the bytes against data and counts the pieces n fetched meanwhile.
func measureReads(ctx context.Context, n *harness.Node, file string, data []byte, offs []int64, piece int64) (latency, error) {
	before, err := received(ctx, n)
	if err != nil {
		return latency{}, err
	}
	var ds []time.Duration
	for _, off := range offs {
		rd, err := readAt(ctx, file, off, 4096)
		if err != nil {
			return latency{}, err
		}
		if !bytes.Equal(rd.data, data[off:off+4096]) {
			return latency{}, fmt.Errorf("read of %s at %d returned wrong bytes", file, off)
		}
		ds = append(ds, rd.read)
	}
	after, err := received(ctx, n)
	if err != nil {
		return latency{}, err
	}
	l := latencyOf(ds)
	l.Fetched = (after - before + piece/2) / piece
	return l, nil
}

// openOnly opens and closes file, so that a measured read does not pay
// for n joining the object after a restart.
func openOnly(ctx context.Context, n *harness.Node, file string) error {
	if err := waitFile(ctx, n, file); err != nil {
		return err
	}
	_, err := bounded(ctx, readTimeout, "open "+file, func() (struct{}, error) {
		f, err := os.Open(file)
		if err == nil {
			f.Close()
		}
		return struct{}{}, err
	})
	return err
}

// measureSeq reads file sequentially cold, then warm; n is the node whose
// mount holds file (nil: not a mount), backing the data file underneath.
func measureSeq(ctx context.Context, n *harness.Node, file, backing string) (seqRun, error) {
	var run seqRun
	served := func() (int64, error) {
		if n == nil {
			return 0, nil
		}
		m, err := n.Metrics(ctx)
		return int64(m["swarmfs_fuse_read_bytes_total"]), err
	}
	for _, cold := range []bool{true, false} {
		if cold {
			if err := dropCaches(); err != nil {
				return run, err
			}
			var err error
			if run.Resident, err = resident(backing); err != nil {
				return run, err
			}
		}
		before, err := served()
		if err != nil {
			return run, err
		}
		mbps, err := seqRead(ctx, file)
		if err != nil {
			return run, err
		}
		after, err := served()
		if err != nil {
			return run, err
		}
		if cold {
			run.ColdMBps, run.DaemonBytesCold = mbps, after-before
		} else {
			run.WarmMBps, run.DaemonBytesWarm = mbps, after-before
		}
	}
	return run, nil
}

// foregroundReads starts a fresh node with the background policy, opens
// the sequential object (which starts an on-open download) and reads 4 KiB
// at each offset, then stops the node so that it serves no later node.
// It returns the latency of the reads that ended while the object was
// still incomplete, and how many ended after.
func foregroundReads(ctx context.Context, c *cluster, name, policy string, nodeArgs []string, data []byte, offs []int64, piece int64) (latency, int, error) {
	n, mnt, err := c.start(ctx, name, true, append(nodeArgs, "--background", policy)...)
	if err != nil {
		return latency{}, 0, err
	}
	defer c.stop(n, mnt)
	api, err := mountctl.NewClient(n.Socket())
	if err != nil {
		return latency{}, 0, err
	}
	file := filepath.Join(mnt, "seq.bin")
	if err := waitFile(ctx, n, file); err != nil {
		return latency{}, 0, err
	}
	if err := dropCaches(); err != nil {
		return latency{}, 0, err
	}
	// The first byte: piece 0, which no offset is in.
	if _, err := readAt(ctx, file, 0, 1); err != nil {
		return latency{}, 0, err
	}
	start, err := received(ctx, n)
	if err != nil {
		return latency{}, 0, err
	}
	var (
		during []time.Duration
		after  int
		o      mountctl.Object
	)
	for _, off := range offs {
		rd, err := readAt(ctx, file, off, 4096)
		if err != nil {
			return latency{}, 0, err
		}
		if !bytes.Equal(rd.data, data[off:off+4096]) {
			return latency{}, 0, fmt.Errorf("read of %s at %d returned wrong bytes", file, off)
		}
		if o, err = api.Stat(ctx, "seq.bin"); err != nil {
			return latency{}, 0, fmt.Errorf("stat seq.bin on %s: %w", name, err)
		}
		if o.BytesCompleted < o.Size {
			during = append(during, rd.read)
		} else {
			after++
		}
	}
	l := latencyOf(during)
	end, err := received(ctx, n)
	if err != nil {
		return latency{}, 0, err
	}
	l.Fetched = (end - start + piece/2) / piece
	return l, after, nil
}

func lazyMarkdown(r *lazyReport) string {
	var b strings.Builder
	ib := func(v int64) string { return humanize.IBytes(uint64(v)) }
	pct := func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }
	fmt.Fprintf(&b, "### Lazy reads through the mount\n\n"+
		"Objects of %s (first byte, random reads) and %s (sequential, background), %s pieces, every node's upload capped at %s/s. "+
		"One piece's transfer time is a fresh node's download of the %s object from the seeder alone (%s), over its pieces; the cap alone gives %s. "+
		"benchrun reads the mounts itself, %d random 4 KiB reads a row, each in its own piece; cold reads fetched %d pieces, warm and local %d and %d. "+
		"swarmfsd keeps its data files mapped (anacrolix's mmap storage) and drop_caches spares mapped pages, so before the local and the cold sequential reads "+
		"the nodes were restarted and the page cache dropped: %s of the data file was then in memory for the local reads, %s, %s and %s for the sequential ones. "+
		"Each data file was read once before the cold sequential reads, so that all of them read it from the same place (a VM's disk may be cached by its host).\n\n",
		ib(r.Size), ib(r.SeqSize), ib(r.PieceLength), ib(r.Upload),
		ib(r.SeqSize), secs(r.FullDownloadSeconds), secs(r.NominalPieceSeconds),
		r.Cold.N, r.Cold.Fetched, r.Warm.Fetched, r.Local.Fetched,
		pct(r.LocalResident), pct(r.Seq[0].Resident), pct(r.Seq[1].Resident), pct(r.Seq[2].Resident))
	t := table{head: []string{"figure", "value", "bound", "ratio"}}
	t.add("one piece's transfer time", secs(r.PieceSeconds), "", "")
	t.add("time to first byte, never-read object (open + 4 KiB read)", secs(r.TTFBSeconds)+" (open "+secs(r.TTFBOpenSeconds)+")", "≤ 2× one piece", ratio(r.TTFBSeconds, r.PieceSeconds))
	pp := func(l latency) string { return "p50 " + secs(l.P50) + ", p99 " + secs(l.P99) }
	t.add("random 4 KiB, cold", pp(r.Cold), "", ratio(r.Cold.P50, r.PieceSeconds)+" one piece (p50)")
	t.add("random 4 KiB, warm (page cache)", pp(r.Warm), "", "")
	t.add("random 4 KiB, local (from disk)", pp(r.Local), "", "")
	mb := func(v float64) string { return fmt.Sprintf("%.0f MB/s", v) }
	direct := r.Seq[0]
	for i, s := range r.Seq {
		bound, rt := "", ""
		if i > 0 {
			bound, rt = "≥ 0.9× direct", ratio(s.ColdMBps, direct.ColdMBps)+" / "+ratio(s.WarmMBps, direct.WarmMBps)
		}
		t.add("sequential, "+s.Name+" (cold / warm)", mb(s.ColdMBps)+" / "+mb(s.WarmMBps), bound, rt)
	}
	t.add(fmt.Sprintf("random 4 KiB, cold, no background download (%d reads)", r.Quiet.N), pp(r.Quiet), "", "")
	t.add(fmt.Sprintf("random 4 KiB, cold, during the background download (%d reads)", r.Busy.N), pp(r.Busy), "", ratio(r.Busy.P50, r.Quiet.P50)+" / "+ratio(r.Busy.P99, r.Quiet.P99)+" quiet")
	b.WriteString(t.String())
	fmt.Fprintf(&b, "\nswarmfsd served %s (passthrough) and %s (no passthrough) of the cold sequential reads itself, %s and %s of the warm ones.",
		ib(r.Seq[1].DaemonBytesCold), ib(r.Seq[2].DaemonBytesCold), ib(r.Seq[1].DaemonBytesWarm), ib(r.Seq[2].DaemonBytesWarm))
	fmt.Fprintf(&b, " During the %d reads under the background download the node fetched %d pieces (%d with no background download): the background got the difference.",
		r.Busy.N, r.Busy.Fetched, r.Quiet.Fetched)
	if r.BusyAfter > 0 {
		fmt.Fprintf(&b, " %d reads ended after the background download and are left out.", r.BusyAfter)
	}
	if r.FullOriginBytes > 0 {
		fmt.Fprintf(&b, " The full download took %s from the origin, not only from the seeder.", ib(r.FullOriginBytes))
	}
	b.WriteString("\n")
	return b.String()
}
