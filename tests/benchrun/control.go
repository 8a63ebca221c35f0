package main

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/spf13/pflag"

	"swarmfs/index"
	"swarmfs/mountctl"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
	"swarmfs/tracker/trackertest"
)

var controlFlags struct {
	objects, adds, addConcurrency, swarms, peers, clients int
	window                                                time.Duration
}

func init() {
	register(scenario{name: "control", order: 40, run: runControl, flags: func(fs *pflag.FlagSet) {
		fs.IntVar(&controlFlags.objects, "control-objects", 0, "objects in the listed directory (default 10000; --quick 500)")
		fs.IntVar(&controlFlags.adds, "control-adds", 0, "small objects added through the API (default 1000; --quick 50)")
		fs.IntVar(&controlFlags.addConcurrency, "control-add-concurrency", 8, "adds in flight at once")
		fs.IntVar(&controlFlags.swarms, "control-swarms", 100, "swarms of the announce load")
		fs.IntVar(&controlFlags.peers, "control-peers", 5000, "peers of the announce load")
		fs.IntVar(&controlFlags.clients, "control-clients", 32, "concurrent keep-alive connections of the announce load")
		fs.DurationVar(&controlFlags.window, "control-window", 0, "length of the announce load (default 10s; --quick 1s)")
	}})
}

type controlReport struct {
	Announce struct {
		Swarms        int     `json:"swarms"`
		Peers         int     `json:"peers"`
		Clients       int     `json:"clients"`
		WindowSeconds float64 `json:"window_seconds"`
		Requests      int64   `json:"requests"`
		PerSecond     float64 `json:"per_second"`
		P50           float64 `json:"p50_seconds"`
		P99           float64 `json:"p99_seconds"`
		Failed        int64   `json:"failed"`
		// EtcdWritesPerAnnounce is etcd raft entries over announces, the
		// warm-up (one per peer) included: how well the store batches.
		EtcdWritesPerAnnounce float64 `json:"etcd_writes_per_announce"`
	} `json:"announce"`
	Objects        int     `json:"objects"`
	PublishSeconds float64 `json:"publish_seconds"` // putting them in the index, 16 at a time
	// ListReadySeconds is from the node's start until its mount lists them all.
	ListReadySeconds float64 `json:"list_ready_seconds"`
	LsColdSeconds    float64 `json:"ls_l_cold_seconds"`
	LsWarmSeconds    float64 `json:"ls_l_warm_seconds"`
	// FindSeconds is find -printf %s of the directory right after: the
	// same readdir and stats without ls -l's two getxattr calls per entry.
	FindSeconds    float64 `json:"find_size_seconds"`
	Adds           int     `json:"adds"`
	AddBytes       int     `json:"add_bytes"`
	AddConcurrency int     `json:"add_concurrency"`
	AddSeconds     float64 `json:"add_seconds"`
	AddP50         float64 `json:"add_p50_seconds"`
	AddP99         float64 `json:"add_p99_seconds"`
	// EtcdWritesPerAdd is etcd raft entries over adds.
	EtcdWritesPerAdd float64 `json:"etcd_writes_per_add"`
	// AddCPUSeconds is the CPU time of the adding node's swarmfsd (its
	// etcd member included) over the adds.
	AddCPUSeconds float64 `json:"add_cpu_seconds"`
	// VisibleSeconds is from the last add's return until another node's
	// mount lists every added object; AllVisibleSeconds from the first
	// add's start.
	VisibleSeconds    float64 `json:"visible_seconds"`
	AllVisibleSeconds float64 `json:"all_visible_seconds"`
}

func runControl(ctx context.Context, e *env) (section, error) {
	objects, adds, window := 10000, 1000, 10*time.Second
	if e.quick {
		objects, adds, window = 500, 50, time.Second
	}
	if controlFlags.objects > 0 {
		objects = controlFlags.objects
	}
	if controlFlags.adds > 0 {
		adds = controlFlags.adds
	}
	if controlFlags.window > 0 {
		window = controlFlags.window
	}
	if controlFlags.addConcurrency < 1 {
		return section{}, fmt.Errorf("control: --control-add-concurrency %d, want at least 1", controlFlags.addConcurrency)
	}
	// Every wait below is bounded by this, generous for the sizes asked.
	limit := 3*time.Minute + window + time.Duration(objects)*2*time.Millisecond + time.Duration(adds)*500*time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := newCluster(e, "control")
	if err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	defer c.close()
	var r controlReport
	// n0 runs the embedded etcd member: the etcd of a small swarmfs
	// cluster as the product runs it, which the tracker, the index writes
	// and the second node share.
	n0, _, err := c.start(ctx, "n0", false)
	if err != nil {
		return section{}, fmt.Errorf("control: start n0: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ix, err := index.Open(ctx, index.Config{Endpoints: []string{n0.EtcdURL}}, index.WithLogger(quiet))
	if err != nil {
		return section{}, fmt.Errorf("control: open index: %w", err)
	}
	defer ix.Close()

	// 1. Announce throughput: a real tracker process, etcd peer store,
	// private mode (the infohashes are registered in the index).
	tr, err := harness.StartTracker(e.bin, c.dir, "tracker", "", "--etcd-endpoints", n0.EtcdURL, "--log-level", "warn")
	if err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	defer tr.Stop()
	if err := tr.WaitReady(ctx); err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	shape := trackertest.LoadShape{Swarms: controlFlags.swarms, Peers: controlFlags.peers, Clients: controlFlags.clients, Window: window}
	for i := range shape.Swarms {
		if _, err := ix.Client().Put(ctx, ix.Prefix()+"info/"+trackertest.IH(i).HexString(), "bench"); err != nil {
			return section{}, fmt.Errorf("control: register swarm: %w", err)
		}
	}
	e.log.Info("control: announce load", "swarms", shape.Swarms, "peers", shape.Peers, "clients", shape.Clients, "window", window)
	raft0, err := raftIndex(ctx, ix, n0.EtcdURL)
	if err != nil {
		return section{}, err
	}
	lr, err := trackertest.AnnounceLoad(ctx, tr.AnnounceURL(""), shape)
	if err != nil {
		return section{}, fmt.Errorf("control: announce load: %w", err)
	}
	raft1, err := raftIndex(ctx, ix, n0.EtcdURL)
	if err != nil {
		return section{}, err
	}
	a := &r.Announce
	a.Swarms, a.Peers, a.Clients, a.WindowSeconds = shape.Swarms, shape.Peers, shape.Clients, window.Seconds()
	a.Requests, a.PerSecond, a.P50, a.P99, a.Failed = lr.Requests, lr.PerSecond(), lr.P50.Seconds(), lr.P99.Seconds(), lr.Failed
	a.EtcdWritesPerAnnounce = float64(raft1-raft0) / float64(int64(shape.Peers)+lr.Requests+lr.Failed)

	// 2. ls of a directory with many objects.
	r.Objects = objects
	e.log.Info("control: publish", "objects", objects)
	t := time.Now()
	if err := publishMany(ctx, ix, objects); err != nil {
		return section{}, err
	}
	r.PublishSeconds = time.Since(t).Seconds()
	t = time.Now()
	_, mnt, err := c.start(ctx, "lister", true)
	if err != nil {
		return section{}, fmt.Errorf("control: start lister: %w", err)
	}
	if err := waitEntries(ctx, filepath.Join(mnt, "bulk"), objects); err != nil {
		return section{}, err
	}
	r.ListReadySeconds = time.Since(t).Seconds()
	// The readiness polls made the kernel cache entries (for a minute);
	// drop them, so that the first ls -l asks swarmfsd about every one.
	if err := dropCaches(); err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	bulk := filepath.Join(mnt, "bulk")
	for _, run := range []struct {
		dst   *float64
		extra int // lines besides the entries
		cmd   []string
	}{
		{&r.LsColdSeconds, 1, []string{"ls", "-l", bulk}}, // "total" line
		{&r.LsWarmSeconds, 1, []string{"ls", "-l", bulk}},
		{&r.FindSeconds, 0, []string{"find", bulk, "-mindepth", "1", "-maxdepth", "1", "-printf", "%s\n"}},
	} {
		t := time.Now()
		out, err := exec.CommandContext(ctx, run.cmd[0], run.cmd[1:]...).Output()
		*run.dst = time.Since(t).Seconds()
		if err != nil {
			return section{}, fmt.Errorf("control: %s: %w", strings.Join(run.cmd, " "), err)
		}
		if n := strings.Count(string(out), "\n") - run.extra; n != objects {
			return section{}, fmt.Errorf("control: %s listed %d objects, want %d", run.cmd[0], n, objects)
		}
	}

	// 3. Adding many small objects through the API of n0; the lister's
	// mount is the second node's view.
	r.Adds, r.AddBytes, r.AddConcurrency = adds, 64<<10, controlFlags.addConcurrency
	small := swarmtest.Data(5, int64(r.AddBytes))
	for i := range adds {
		c.origin.Put(fmt.Sprintf("/small/%05d.bin", i), small) // distinct names: distinct infohashes
	}
	api, err := mountctl.NewClient(n0.Socket())
	if err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	e.log.Info("control: adds", "adds", adds, "concurrency", r.AddConcurrency)
	if raft0, err = raftIndex(ctx, ix, n0.EtcdURL); err != nil {
		return section{}, err
	}
	cpu, err := newCPUMeter(n0.Pid())
	if err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	lat := make([]time.Duration, adds)
	errs := make(chan error, adds)
	sem := make(chan struct{}, r.AddConcurrency)
	var wg sync.WaitGroup
	t = time.Now()
	for i := range adds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := time.Now()
			if _, err := api.Add(ctx, mountctl.AddRequest{URL: c.origin.URL(fmt.Sprintf("/small/%05d.bin", i)), Path: fmt.Sprintf("small/%05d.bin", i), Wait: true}); err != nil {
				errs <- fmt.Errorf("add %d: %w", i, err)
				return
			}
			lat[i] = time.Since(t)
		}()
	}
	wg.Wait()
	r.AddSeconds = time.Since(t).Seconds()
	if r.AddCPUSeconds, _, err = cpu.Used(); err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	close(errs)
	if err := <-errs; err != nil {
		return section{}, fmt.Errorf("control: %w", err)
	}
	if raft1, err = raftIndex(ctx, ix, n0.EtcdURL); err != nil {
		return section{}, err
	}
	r.EtcdWritesPerAdd = float64(raft1-raft0) / float64(adds)
	r.AddP50, r.AddP99 = durQuantile(lat, 0.5).Seconds(), durQuantile(lat, 0.99).Seconds()
	t1 := time.Now()
	if err := waitEntries(ctx, filepath.Join(mnt, "small"), adds); err != nil {
		return section{}, err
	}
	r.VisibleSeconds = time.Since(t1).Seconds()
	r.AllVisibleSeconds = time.Since(t).Seconds()
	return section{Markdown: controlMarkdown(&r, runtime.NumCPU()), Data: &r}, nil
}

// raftIndex returns the raft index of the etcd member at endpoint: it
// grows by one for every write (transaction, lease grant or revoke).
func raftIndex(ctx context.Context, ix *index.Index, endpoint string) (uint64, error) {
	st, err := ix.Client().Status(ctx, endpoint)
	if err != nil {
		return 0, fmt.Errorf("control: etcd status: %w", err)
	}
	return st.RaftIndex, nil
}

// publishMany puts n small objects under bulk/ in the index, 16 at a time.
// Each has a real info dict (one piece), so the mount can list and stat it.
func publishMany(ctx context.Context, ix *index.Index, n int) error {
	jobs := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				data := []byte(fmt.Sprintf("object %d", i))
				sum := sha1.Sum(data)
				info := metainfo.Info{Name: fmt.Sprintf("o%05d.bin", i), PieceLength: 16 << 10, Length: int64(len(data)), Pieces: sum[:]}
				b, err := bencode.Marshal(info)
				if err != nil {
					errs <- fmt.Errorf("control: encode info: %w", err)
					return
				}
				rec := index.Record{Path: fmt.Sprintf("bulk/o%05d.bin", i), InfoHash: metainfo.HashBytes(b).HexString(), Size: info.Length, PieceLength: info.PieceLength,
					Source: index.Source{Kind: index.SourceFile, File: "/bench/" + info.Name, Node: "benchrun"}}
				if _, err := ix.Publish(ctx, rec, b); err != nil {
					errs <- fmt.Errorf("control: publish %s: %w", rec.Path, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case jobs <- i:
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
	default:
	}
	return err
}

// waitEntries waits until dir lists want entries (bounded).
func waitEntries(ctx context.Context, dir string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got := 0
	for {
		if ents, err := os.ReadDir(dir); err == nil {
			if got = len(ents); got == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control: %s lists %d entries, want %d: %w", dir, got, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func controlMarkdown(r *controlReport, cores int) string {
	var b strings.Builder
	b.WriteString("### Control plane\n\n")
	fmt.Fprintf(&b, "One swarmfsd node runs the embedded etcd member (as a small cluster does; fsync on every write) that the tracker, "+
		"the index writes and a second, mounted node share; every process and the load generators run on the same %d cores, on loopback.\n\n", cores)
	t := table{head: []string{"figure", "value", "note"}}
	a := r.Announce
	t.add("announce throughput, one tracker replica, etcd store", fmt.Sprintf("%.0f req/s", a.PerSecond),
		fmt.Sprintf("p50 %s, p99 %s; %d peers in %d registered swarms (private mode), %d keep-alive connections, %gs window, %d failed; %.2f etcd writes per announce",
			secs(a.P50), secs(a.P99), a.Peers, a.Swarms, a.Clients, a.WindowSeconds, a.Failed, a.EtcdWritesPerAnnounce))
	t.add(fmt.Sprintf("publish %d objects into the index", r.Objects), secs(r.PublishSeconds), fmt.Sprintf("%.0f objects/s, 16 at a time, from the benchmark process", float64(r.Objects)/r.PublishSeconds))
	t.add(fmt.Sprintf("node start until its mount lists %d objects", r.Objects), secs(r.ListReadySeconds), "start, mount, index sync, readdir")
	t.add(fmt.Sprintf("ls -l of %d objects, cold", r.Objects), secs(r.LsColdSeconds), "kernel caches dropped first (drop_caches)")
	t.add(fmt.Sprintf("ls -l of %d objects, warm", r.Objects), secs(r.LsWarmSeconds), "right after; entries and attributes of unopened objects are cached for a minute")
	t.add(fmt.Sprintf("find -printf %%s of %d objects, warm", r.Objects), secs(r.FindSeconds), "the same stats without ls -l's two getxattr calls per entry, which FUSE does not cache")
	t.add(fmt.Sprintf("add %d small objects (%d KiB) through the API", r.Adds, r.AddBytes>>10), secs(r.AddSeconds),
		fmt.Sprintf("%.0f adds/s, %d in flight; one add (convert, publish, complete) p50 %s, p99 %s; %.1f etcd writes and %s of the node's CPU (etcd included) per add",
			float64(r.Adds)/r.AddSeconds, r.AddConcurrency, secs(r.AddP50), secs(r.AddP99), r.EtcdWritesPerAdd, secs(r.AddCPUSeconds/float64(r.Adds))))
	t.add("first add until another node's mount lists them all", secs(r.AllVisibleSeconds), fmt.Sprintf("%s after the last add returned", secs(r.VisibleSeconds)))
	b.WriteString(t.String())
	return b.String()
}
