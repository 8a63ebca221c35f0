package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"swarmfs/mountctl"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// cluster is a set of swarmfsd nodes for one scenario; the first runs the
// embedded etcd member the others use. close stops them, last first, and
// unmounts.
type cluster struct {
	e      *env
	dir    string
	nodes  []*harness.Node
	mounts []string
	origin *swarmtest.Origin
}

func newCluster(e *env, name string) (*cluster, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	o, err := swarmtest.NewOrigin()
	if err != nil {
		return nil, err
	}
	return &cluster{e: e, dir: dir, origin: o}, nil
}

func (c *cluster) close() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.nodes[i].Stop()
	}
	for _, m := range c.mounts {
		harness.ForceUnmount(m)
	}
	c.origin.Close()
	removeData(c.dir)
}

// start runs a node; mount "" means no mount. Nodes after the first join
// the first one's etcd.
func (c *cluster) start(ctx context.Context, name string, mount bool, args ...string) (*harness.Node, string, error) {
	var mnt string
	if mount {
		mnt = filepath.Join(c.dir, name, "mnt")
		args = append(args, "--mount", mnt)
		c.mounts = append(c.mounts, mnt)
	}
	if len(c.nodes) > 0 {
		args = append(args, "--etcd-endpoints", c.nodes[0].EtcdURL)
	}
	args = append(args, "--log-level", "warn")
	n, err := startHealthy(ctx, c.e.bin, c.dir, name, args...)
	if err != nil {
		return nil, "", err
	}
	c.nodes = append(c.nodes, n)
	// swarmfsd answers /healthz before its control API socket exists.
	if err := waitFile(ctx, n.Socket()); err != nil {
		return nil, "", err
	}
	if mount {
		if err := harness.WaitMounted(ctx, n, mnt); err != nil {
			return nil, "", err
		}
	}
	return n, mnt, nil
}

// add adds url as path on n and waits for n's copy to be complete.
func add(ctx context.Context, n *harness.Node, url, path string) (time.Duration, error) {
	c, err := mountctl.NewClient(n.Socket())
	if err != nil {
		return 0, err
	}
	t := time.Now()
	if _, err := c.Add(ctx, mountctl.AddRequest{URL: url, Path: path, Wait: true}); err != nil {
		return 0, fmt.Errorf("add %s on %s: %w", url, n.Name, err)
	}
	return time.Since(t), nil
}

// received is the object bytes a node got from peers and the origin.
func received(ctx context.Context, n *harness.Node) (int64, error) {
	f, err := n.Figures(ctx)
	if err != nil {
		return 0, err
	}
	return f.PeerBytes + f.OriginBytes, nil
}

// waitFile waits until path exists (the mount follows the index).
func waitFile(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// preadTime reads n bytes at off with one pread and returns the time.
func preadTime(file string, off, n int64) (time.Duration, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, n)
	t := time.Now()
	if _, err := f.ReadAt(buf, off); err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", file, off, err)
	}
	return time.Since(t), nil
}

// seqRead reads the whole file with 1 MiB reads and returns MB/s.
func seqRead(file string) (float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var total int64
	t := time.Now()
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	return float64(total) / 1e6 / time.Since(t).Seconds(), nil
}

// mountctlStat returns the piece length of path as n's API describes it.
func mountctlStat(ctx context.Context, n *harness.Node, path string) (int64, error) {
	c, err := mountctl.NewClient(n.Socket())
	if err != nil {
		return 0, err
	}
	o, err := c.Stat(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("stat %s on %s: %w", path, n.Name, err)
	}
	return o.PieceLength, nil
}
