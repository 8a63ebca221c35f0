package main

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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
		trackertest.LoadShape
		PerSecond float64 `json:"per_second"`
		P50       float64 `json:"p50_seconds"`
		P99       float64 `json:"p99_seconds"`
		Failed    int64   `json:"failed"`
	} `json:"announce"`
	Objects        int     `json:"objects"`
	PublishSeconds float64 `json:"publish_seconds"` // putting them in the index, 16 at a time
	// ListReadySeconds is from the node's start until its mount lists them all.
	ListReadySeconds float64 `json:"list_ready_seconds"`
	LsColdSeconds    float64 `json:"ls_l_cold_seconds"`
	LsWarmSeconds    float64 `json:"ls_l_warm_seconds"`
	Adds             int     `json:"adds"`
	AddConcurrency   int     `json:"add_concurrency"`
	AddSeconds       float64 `json:"add_seconds"`
	AddP50           float64 `json:"add_p50_seconds"`
	AddP99           float64 `json:"add_p99_seconds"`
	// VisibleSeconds is from the last add's return until another node's
	// mount lists every added object.
	VisibleSeconds float64 `json:"visible_seconds"`
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
	c, err := newCluster(e, "control")
	if err != nil {
		return section{}, err
	}
	defer c.close()
	var r controlReport
	n0, _, err := c.start(ctx, "n0", false)
	if err != nil {
		return section{}, err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ix, err := index.Open(ctx, index.Config{Endpoints: []string{n0.EtcdURL}}, index.WithLogger(quiet))
	if err != nil {
		return section{}, err
	}
	defer ix.Close()

	// 1. Announce throughput: a real tracker process, etcd peer store,
	// private mode (the infohashes are registered in the index).
	port, err := harness.FreePort()
	if err != nil {
		return section{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tr, err := harness.StartTracker(e.bin, c.dir, "tracker", addr, "--etcd-endpoints", n0.EtcdURL, "--log-level", "warn")
	if err != nil {
		return section{}, err
	}
	defer tr.Stop()
	if err := tr.WaitReady(ctx); err != nil {
		return section{}, err
	}
	shape := trackertest.LoadShape{Swarms: controlFlags.swarms, Peers: controlFlags.peers, Clients: controlFlags.clients, Window: window}
	for i := range shape.Swarms {
		if _, err := ix.Client().Put(ctx, "/swarmfs/info/"+trackertest.IH(i).HexString(), "bench"); err != nil {
			return section{}, fmt.Errorf("control: register swarm: %w", err)
		}
	}
	lr, err := trackertest.AnnounceLoad(ctx, "http://"+addr+"/announce", shape)
	if err != nil {
		return section{}, fmt.Errorf("control: announce load: %w", err)
	}
	r.Announce.LoadShape = shape
	r.Announce.PerSecond, r.Announce.P50, r.Announce.P99, r.Announce.Failed = lr.PerSecond(), lr.P50.Seconds(), lr.P99.Seconds(), lr.Failed

	// 2. ls of a directory with many objects.
	r.Objects = objects
	t := time.Now()
	if err := publishMany(ctx, ix, objects); err != nil {
		return section{}, err
	}
	r.PublishSeconds = time.Since(t).Seconds()
	t = time.Now()
	_, mnt, err := c.start(ctx, "lister", true)
	if err != nil {
		return section{}, err
	}
	if err := waitEntries(ctx, filepath.Join(mnt, "bulk"), objects); err != nil {
		return section{}, err
	}
	r.ListReadySeconds = time.Since(t).Seconds()
	for _, dst := range []*float64{&r.LsColdSeconds, &r.LsWarmSeconds} {
		t := time.Now()
		out, err := exec.CommandContext(ctx, "ls", "-l", filepath.Join(mnt, "bulk")).Output()
		*dst = time.Since(t).Seconds()
		if err != nil {
			return section{}, fmt.Errorf("control: ls -l: %w", err)
		}
		if n := strings.Count(string(out), "\n") - 1; n != objects { // less the "total" line
			return section{}, fmt.Errorf("control: ls -l listed %d objects, want %d", n, objects)
		}
	}

	// 3. Adding many small objects through the API.
	r.Adds, r.AddConcurrency = adds, controlFlags.addConcurrency
	small := swarmtest.Data(5, 64<<10)
	for i := range adds {
		c.origin.Put(fmt.Sprintf("/small/%05d.bin", i), small)
	}
	api, err := mountctl.NewClient(n0.Socket())
	if err != nil {
		return section{}, err
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
				errs <- err
				return
			}
			lat[i] = time.Since(t)
		}()
	}
	wg.Wait()
	r.AddSeconds = time.Since(t).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return section{}, fmt.Errorf("control: add: %w", err)
	}
	r.AddP50, r.AddP99 = durQuantile(lat, 0.5).Seconds(), durQuantile(lat, 0.99).Seconds()
	t = time.Now()
	if err := waitEntries(ctx, filepath.Join(mnt, "small"), adds); err != nil {
		return section{}, err
	}
	r.VisibleSeconds = time.Since(t).Seconds()
	return section{Markdown: controlMarkdown(&r), Data: &r}, nil
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
					errs <- err
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

func controlMarkdown(r *controlReport) string {
	var b strings.Builder
	b.WriteString("### Control plane\n\n")
	t := table{head: []string{"figure", "value", "note"}}
	a := r.Announce
	t.add("announce throughput, one tracker replica, etcd store", fmt.Sprintf("%.0f req/s", a.PerSecond),
		fmt.Sprintf("p50 %s, p99 %s; %d peers in %d swarms, %d keep-alive connections, %s window, %d failed; load generator on the same cores",
			secs(a.P50), secs(a.P99), a.Peers, a.Swarms, a.Clients, a.Window, a.Failed))
	t.add(fmt.Sprintf("publish %d objects into the index", r.Objects), secs(r.PublishSeconds), fmt.Sprintf("%.0f objects/s, 16 at a time", float64(r.Objects)/r.PublishSeconds))
	t.add(fmt.Sprintf("node start until its mount lists %d objects", r.Objects), secs(r.ListReadySeconds), "")
	t.add(fmt.Sprintf("ls -l of %d objects, cold", r.Objects), secs(r.LsColdSeconds), "first listing after the mount is ready")
	t.add(fmt.Sprintf("ls -l of %d objects, warm", r.Objects), secs(r.LsWarmSeconds), "")
	t.add(fmt.Sprintf("add %d small objects (64 KiB) through the API", r.Adds), secs(r.AddSeconds),
		fmt.Sprintf("%.0f adds/s, %d in flight; one add (convert and publish) p50 %s, p99 %s", float64(r.Adds)/r.AddSeconds, r.AddConcurrency, secs(r.AddP50), secs(r.AddP99)))
	t.add("last add until another node's mount lists them all", secs(r.VisibleSeconds), "")
	b.WriteString(t.String())
	return b.String()
}
