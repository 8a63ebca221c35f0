// Command demo runs swarmfs on one machine with embedded defaults: a local
// HTTP origin serving a generated dataset file, nodes (real swarmfsd
// processes on loopback; node0 runs the embedded etcd member) each
// mounting the namespace under <dir>/nodeN/mnt, one `mountctl add` on
// node0, and then every mount read in parallel with sha256sum. It prints,
// per node, the time of that read, bytes from peers and from the origin,
// and whether the checksum matches the origin's. It unmounts and stops
// everything on exit, Ctrl-C and failure included.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
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
		dir     = pflag.String("dir", "demo", "state directory of the demo nodes (emptied first)")
		bin     = pflag.String("bin", "bin", "directory holding swarmfsd and mountctl")
		nodes   = pflag.Int("nodes", 4, "nodes, each with a mount")
		timeout = pflag.Duration("timeout", 5*time.Minute, "give up after this long")
		size    = swarm.ByteSize(256 << 20)
		orate   = swarm.ByteSize(64 << 20)
		urate   swarm.ByteSize
	)
	pflag.Var(&size, "size", "object size")
	pflag.Var(&orate, "origin-rate", "origin's send rate per second (0: unlimited)")
	pflag.Var(&urate, "upload-rate", "each node's upload cap per second (0: none)")
	pflag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, demo{dir: *dir, bin: *bin, nodes: *nodes, size: int64(size), originRate: int64(orate), uploadRate: int64(urate)}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	dir, bin                     string
	nodes                        int
	size, originRate, uploadRate int64
}

type row struct {
	node  *harness.Node
	mnt   string
	took  time.Duration
	figs  harness.Figures
	match bool
	err   error
}

func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("the demo mounts FUSE filesystems and /dev/fuse is missing: %w", err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo mounts FUSE filesystems: run it as root")
	}
	return nil
}

func run(ctx context.Context, d demo) error {
	if err := checkFUSE(); err != nil {
		return err
	}
	dir, err := filepath.Abs(d.dir)
	if err != nil {
		return err
	}
	for _, m := range mountsUnder(dir) {
		harness.ForceUnmount(m) // left over from an earlier, killed run
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	bin, err := filepath.Abs(d.bin)
	if err != nil {
		return err
	}
	for _, b := range []string{"swarmfsd", "mountctl", "swarmfs-tracker"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%w (run 'make build' first)", err)
		}
	}

	fmt.Printf("generating a %s dataset…\n", humanize.IBytes(uint64(d.size)))
	data := swarmtest.Data(42, d.size)
	want := swarmtest.SHA256(data)
	origin, err := swarmtest.NewOrigin()
	if err != nil {
		return err
	}
	defer origin.Close()
	origin.Put("/datasets/demo.bin", data)
	origin.SetRate(d.originRate)
	url := origin.URL("/datasets/demo.bin")
	fmt.Printf("origin   %s  sha256 %s…\n", url, want[:16])

	tport, err := harness.FreePort()
	if err != nil {
		return err
	}
	taddr := fmt.Sprintf("127.0.0.1:%d", tport)
	common := []string{"--tracker", "http://" + taddr + "/announce"}
	if d.uploadRate > 0 {
		common = append(common, "--upload-rate", fmt.Sprint(d.uploadRate))
	}
	var rows []*row
	defer func() {
		// Unmount and stop, node0 (etcd) last, whatever happened.
		for i := len(rows) - 1; i >= 0; i-- {
			rows[i].node.Stop()
			harness.ForceUnmount(rows[i].mnt)
		}
	}()
	start := func(i int, extra ...string) (*row, error) {
		name := fmt.Sprintf("node%d", i)
		mnt := filepath.Join(dir, name, "mnt")
		n, err := harness.StartNode(bin, dir, name, append(append([]string{"--mount", mnt}, common...), extra...)...)
		if err != nil {
			return nil, err
		}
		r := &row{node: n, mnt: mnt}
		rows = append(rows, r)
		if err := harness.WaitMounted(ctx, n, mnt); err != nil {
			return nil, err
		}
		return r, nil
	}
	r0, err := start(0)
	if err != nil {
		return err
	}
	if err := r0.node.WaitHealthy(ctx); err != nil {
		return err
	}
	fmt.Printf("node0    etcd %s, mounted at %s\n", r0.node.EtcdURL, r0.mnt)
	tr, err := harness.StartTracker(bin, dir, "tracker", taddr, "--etcd-endpoints", r0.node.EtcdURL)
	if err != nil {
		return err
	}
	defer tr.Stop()
	if err := tr.WaitReady(ctx); err != nil {
		return err
	}
	fmt.Printf("tracker  http://%s/announce\n", taddr)
	for i := 1; i < d.nodes; i++ {
		if _, err := start(i, "--etcd-endpoints", r0.node.EtcdURL); err != nil {
			return err
		}
	}
	fmt.Printf("node1‥%d mounted at %s/nodeN/mnt\n", d.nodes-1, dir)

	add := exec.CommandContext(ctx, filepath.Join(bin, "mountctl"), "--socket", r0.node.Socket(),
		"add", url, "--as", "datasets/demo.bin", "--wait")
	fmt.Printf("$ mountctl add %s --as datasets/demo.bin --wait   (on node0)\n", url)
	add.Stdout, add.Stderr = os.Stdout, os.Stdout
	if err := add.Run(); err != nil {
		return fmt.Errorf("mountctl add: %w", err)
	}

	fmt.Printf("reading datasets/demo.bin through all %d mounts at once…\n", d.nodes)
	var wg sync.WaitGroup
	for _, r := range rows {
		file := filepath.Join(r.mnt, "datasets", "demo.bin")
		if err := waitPath(ctx, file); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, "sha256sum", file)
			cmd.Stdout, cmd.Stderr = &out, &out
			r.err = cmd.Run()
			r.took = time.Since(t0)
			r.match = r.err == nil && strings.HasPrefix(out.String(), want)
			if r.err != nil {
				r.err = fmt.Errorf("%w: %s", r.err, strings.TrimSpace(out.String()))
			}
		}()
	}
	wg.Wait()
	ok := true
	for _, r := range rows {
		if r.figs, err = r.node.Figures(ctx); err != nil {
			return err
		}
		ok = ok && r.match
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tread through mount\tfrom peers\tfrom origin\tsent\tsha256 matches\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.2fs\t%s\t%s\t%s\t%v\t\n", r.node.Name, r.took.Seconds(),
			humanize.IBytes(uint64(r.figs.PeerBytes)), humanize.IBytes(uint64(r.figs.OriginBytes)),
			humanize.IBytes(uint64(r.figs.SentBytes)), r.match)
	}
	tw.Flush()
	st := origin.Stats()
	fmt.Printf("\norigin sent %s in %d GET requests (%d full): %.3f× the object for %d nodes\n",
		humanize.IBytes(uint64(st.BodyBytes)), st.Gets, st.FullGets, float64(st.BodyBytes)/float64(d.size), d.nodes)
	if m, err := tr.Metrics(ctx); err == nil {
		var n float64
		for k, v := range m {
			if strings.HasPrefix(k, "swarmfs_tracker_announces_total") {
				n += v
			}
		}
		fmt.Printf("tracker answered %.0f announces\n", n)
	}
	fmt.Printf("node state and logs: %s\n", dir)
	for _, r := range rows {
		if r.err != nil {
			fmt.Printf("%s: %v\n", r.node.Name, r.err)
		}
	}
	if !ok {
		return fmt.Errorf("a read through a mount does not match the origin")
	}
	fmt.Println("result: OK")
	return nil
}

func waitPath(ctx context.Context, p string) error {
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w", p, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mountsUnder lists mountpoints below dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
