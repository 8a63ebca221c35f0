// Command demo runs swarmfs on one machine with embedded defaults: a local
// HTTP origin serving a generated object, one converting node and several
// downloading nodes (real swarmfsd processes on loopback). It prints, per
// node, the time to a verified copy, bytes from peers and from the origin,
// and whether the copy's sha256 matches the origin's.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

func main() {
	var (
		dir        = pflag.String("dir", "demo", "state directory of the demo nodes (emptied first)")
		bin        = pflag.String("bin", "bin", "directory holding swarmfsd")
		size       swarm.ByteSize
		originRate swarm.ByteSize
		uploadRate swarm.ByteSize
		nodes      = pflag.Int("nodes", 4, "downloading nodes")
		timeout    = pflag.Duration("timeout", 5*time.Minute, "give up after this long")
	)
	size, originRate, uploadRate = 256<<20, 64<<20, 0
	pflag.Var(&size, "size", "object size")
	pflag.Var(&originRate, "origin-rate", "origin's send rate per second (0: unlimited)")
	pflag.Var(&uploadRate, "upload-rate", "each node's upload cap per second (0: none)")
	pflag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, *dir, *bin, int64(size), int64(originRate), int64(uploadRate), *nodes); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type row struct {
	node       *harness.Node
	role       string
	done       time.Duration
	figs       harness.Figures
	sha        string
	shaMatches bool
}

func waitHealthy(ctx context.Context, n *harness.Node) error {
	for {
		resp, err := http.Get("http://" + n.MetricsAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ok, err := n.Exited(); ok {
			return fmt.Errorf("%s exited: %v\n%s", n.Name, err, n.Log())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w", n.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func run(ctx context.Context, dir, bin string, size, originRate, uploadRate int64, nodes int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(bin, "swarmfsd")); err != nil {
		return fmt.Errorf("%w (run 'make build' first)", err)
	}

	fmt.Printf("generating a %s object…\n", humanize.IBytes(uint64(size)))
	data := swarmtest.Data(42, size)
	want := swarmtest.SHA256(data)
	origin, err := swarmtest.NewOrigin()
	if err != nil {
		return err
	}
	defer origin.Close()
	origin.Put("/images/demo.img", data)
	origin.SetRate(originRate)
	url := origin.URL("/images/demo.img")
	fmt.Printf("origin  %s  sha256 %s…\n", url, want[:16])

	common := []string{"--stall-timeout", "10s", "--add", "images/demo.img=" + url}
	if uploadRate > 0 {
		common = append(common, "--upload-rate", fmt.Sprint(uploadRate))
	}
	var all []*harness.Node
	defer func() {
		// node0 holds etcd: stop it last.
		for i := len(all) - 1; i >= 0; i-- {
			all[i].Stop()
		}
	}()
	// node0 runs the embedded etcd member; the others use it. All of them
	// add the same URL at once: one converts, the rest fetch from peers.
	n0, err := harness.StartNode(bin, dir, "node0", common...)
	if err != nil {
		return err
	}
	all = append(all, n0)
	if err := waitHealthy(ctx, n0); err != nil {
		return err
	}
	fmt.Printf("node0   embedded etcd %s, metrics http://%s/metrics\n", n0.EtcdURL, n0.MetricsAddr)
	for i := 1; i <= nodes; i++ {
		n, err := harness.StartNode(bin, dir, fmt.Sprintf("node%d", i), append(common, "--etcd-endpoints", n0.EtcdURL)...)
		if err != nil {
			return err
		}
		all = append(all, n)
	}
	fmt.Printf("node0‥%d all added %s at once…\n", nodes, url)
	var rows []*row
	for _, n := range all {
		t, err := n.WaitComplete(ctx, 1)
		if err != nil {
			return err
		}
		rows = append(rows, &row{node: n, done: t.Sub(n.Started)})
	}
	ok := true
	for _, r := range rows {
		if r.figs, err = r.node.Figures(ctx); err != nil {
			return err
		}
		files, _ := filepath.Glob(filepath.Join(r.node.Dir, "data", "*", "data"))
		if len(files) != 1 {
			return fmt.Errorf("%s holds %d data files; want 1", r.node.Name, len(files))
		}
		if r.sha, err = harness.FileSHA256(files[0]); err != nil {
			return err
		}
		r.role = "downloader"
		if r.figs.OriginBytes >= size {
			r.role = "converter"
		}
		r.shaMatches = r.sha == want
		ok = ok && r.shaMatches
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\trole\ttime\tfrom peers\tfrom origin\tsent\tsha256 matches\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.2fs\t%s\t%s\t%s\t%v\t\n", r.node.Name, r.role, r.done.Seconds(),
			humanize.IBytes(uint64(r.figs.PeerBytes)), humanize.IBytes(uint64(r.figs.OriginBytes)),
			humanize.IBytes(uint64(r.figs.SentBytes)), r.shaMatches)
	}
	tw.Flush()
	os := origin.Stats()
	fmt.Printf("\norigin sent %s in %d GET requests (%d full): %.3f× the object for %d nodes\n",
		humanize.IBytes(uint64(os.BodyBytes)), os.Gets, os.FullGets, float64(os.BodyBytes)/float64(size), nodes+1)
	fmt.Printf("node state and logs: %s\n", dir)
	if !ok {
		return fmt.Errorf("a copy does not match the origin")
	}
	fmt.Println("result: OK")
	return nil
}
