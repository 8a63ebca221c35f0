package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

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
	args   map[*harness.Node][]string // each node's flags, for restart
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
	return &cluster{e: e, dir: dir, origin: o, args: map[*harness.Node][]string{}}, nil
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
	c.args[n] = args
	return n, mnt, c.ready(ctx, n, mnt)
}

// ready waits for n's control API socket (swarmfsd answers /healthz
// before it exists) and its mount.
func (c *cluster) ready(ctx context.Context, n *harness.Node, mnt string) error {
	if err := waitFile(ctx, n, n.Socket()); err != nil {
		return err
	}
	if mnt == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return harness.WaitMounted(ctx, n, mnt)
}

// restart stops n, drops the page cache and starts n again on its state
// dir with the same flags (and new ports). It resumes its objects from
// its data dir, trusting the saved piece completion, and none of their
// data is in memory until read: the way to a truly cold read, since
// anacrolix's file storage keeps the data files mapped and drop_caches
// spares mapped pages. n must not be the cluster's etcd member.
func (c *cluster) restart(ctx context.Context, n *harness.Node, mnt string) (*harness.Node, error) {
	if n == c.nodes[0] {
		return nil, fmt.Errorf("restart %s: it runs the cluster's etcd", n.Name)
	}
	c.stop(n, mnt)
	if err := dropCaches(); err != nil {
		return nil, err
	}
	// Not startHealthy: its retry on a taken port wipes the state dir.
	m, err := harness.StartNode(c.e.bin, c.dir, n.Name, c.args[n]...)
	if err != nil {
		return nil, err
	}
	c.nodes = append(c.nodes, m)
	c.args[m] = c.args[n]
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.WaitHealthy(hctx); err != nil {
		return nil, fmt.Errorf("restart %s: %w", n.Name, err)
	}
	return m, c.ready(ctx, m, mnt)
}

// stop ends a node before the others (so that it serves no more pieces)
// and detaches its mount; close skips what is already stopped.
func (c *cluster) stop(n *harness.Node, mnt string) {
	n.Stop()
	if mnt != "" {
		harness.ForceUnmount(mnt)
	}
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

// waitFile waits until path exists: in n's mount, which follows the
// index, or n's own files.
func waitFile(ctx context.Context, n *harness.Node, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return harness.WaitFile(ctx, path, n)
}

// bounded runs f and gives up after d or when ctx ends. A read blocked in
// a mount cannot be cancelled: its goroutine ends when the cluster stops
// the node serving the mount.
func bounded[T any](ctx context.Context, d time.Duration, what string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	var zero T
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: %w", what, ctx.Err())
	case <-t.C:
		return zero, fmt.Errorf("%s: no answer within %v", what, d)
	}
}

// readTimeout bounds one small read through a mount.
const readTimeout = 2 * time.Minute

// timedRead is one open and pread of a file.
type timedRead struct {
	open, read time.Duration
	data       []byte
}

// readAt opens file and reads n bytes at off with one pread, timing both.
func readAt(ctx context.Context, file string, off, n int64) (timedRead, error) {
	return bounded(ctx, readTimeout, fmt.Sprintf("read %s at %d", file, off), func() (timedRead, error) {
		t := time.Now()
		f, err := os.Open(file)
		if err != nil {
			return timedRead{}, err
		}
		defer f.Close()
		r := timedRead{open: time.Since(t), data: make([]byte, n)}
		t = time.Now()
		if _, err := f.ReadAt(r.data, off); err != nil {
			return timedRead{}, fmt.Errorf("read %s at %d: %w", file, off, err)
		}
		r.read = time.Since(t)
		return r, nil
	})
}

// seqRead reads the whole file with 1 MiB reads and returns MB/s; a short
// read is an error.
func seqRead(ctx context.Context, file string) (float64, error) {
	return bounded(ctx, 10*time.Minute, "read "+file, func() (float64, error) {
		f, err := os.Open(file)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		t := time.Now()
		n, err := io.CopyBuffer(io.Discard, onlyReader{f}, make([]byte, 1<<20))
		d := time.Since(t)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", file, err)
		}
		if n != st.Size() {
			return 0, fmt.Errorf("read %s: %d of %d bytes", file, n, st.Size())
		}
		return float64(n) / 1e6 / d.Seconds(), nil
	})
}

// resident is the share of file's pages in the page cache (mincore).
func resident(file string) (float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("map %s: %w", file, err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, fmt.Errorf("mincore %s: %w", file, e)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

// onlyReader hides io.WriterTo, so that io.CopyBuffer makes plain reads of
// the buffer's size.
type onlyReader struct{ io.Reader }

// objectStat returns path as n's API describes it.
func objectStat(ctx context.Context, n *harness.Node, path string) (mountctl.Object, error) {
	c, err := mountctl.NewClient(n.Socket())
	if err != nil {
		return mountctl.Object{}, err
	}
	o, err := c.Stat(ctx, path)
	if err != nil {
		return mountctl.Object{}, fmt.Errorf("stat %s on %s: %w", path, n.Name, err)
	}
	return o, nil
}
