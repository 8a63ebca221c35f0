// Package harness starts real swarmfs processes on loopback for the
// end-to-end tests and the demo, and reads their metrics.
package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Build compiles the swarmfs commands into dir and returns dir.
func Build(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "swarmfs/cmd/swarmfsd", "swarmfs/cmd/mountctl", "swarmfs/cmd/swarmfs-tracker", "swarmfs/tests/mmapsum", "swarmfs/tests/demo", "swarmfs/tests/benchrun")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build swarmfs commands: %w\n%s", err, out)
	}
	return dir, nil
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Node is one swarmfsd process.
type Node struct {
	Name        string
	Dir         string // state: data/, log
	PeerAddr    string
	MetricsAddr string
	EtcdURL     string // client URL of its embedded etcd member, if it runs one
	Started     time.Time

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartNode runs bin/swarmfsd with a data dir under dir/name, loopback
// addresses on free ports and the extra args.
func StartNode(bin, dir, name string, args ...string) (*Node, error) {
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := &Node{
		Name:        name,
		Dir:         filepath.Join(dir, name),
		PeerAddr:    fmt.Sprintf("127.0.0.1:%d", peerPort),
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", metricsPort),
		done:        make(chan struct{}),
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(n.Dir, "swarmfsd.log"))
	if err != nil {
		return nil, err
	}
	all := []string{
		"--state-dir", n.Dir,
		"--listen", n.PeerAddr,
		"--metrics-addr", n.MetricsAddr,
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--etcd-endpoints") }) {
		// Its own embedded etcd member, on free ports.
		cp, err := FreePort()
		if err != nil {
			return nil, err
		}
		pp, err := FreePort()
		if err != nil {
			return nil, err
		}
		n.EtcdURL = fmt.Sprintf("http://127.0.0.1:%d", cp)
		all = append(all, "--etcd-client-url", n.EtcdURL, "--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", pp))
	}
	all = append(all, args...)
	n.cmd = exec.Command(filepath.Join(bin, "swarmfsd"), all...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.Started = time.Now()
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	return n, nil
}

// Exited reports whether the process ended, and how.
func (n *Node) Exited() (bool, error) {
	select {
	case <-n.done:
		return true, n.err
	default:
		return false, nil
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.done
}

// Stop ends the process with SIGTERM, then SIGKILL after 10 s.
func (n *Node) Stop() error {
	if ok, err := n.Exited(); ok {
		return err
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.err
	case <-time.After(10 * time.Second):
		n.Kill()
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", n.Name)
	}
}

// Log returns the node's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "swarmfsd.log"))
	return string(b)
}

// Metrics scrapes /metrics and returns each sample as "name{k="v",...}" → value,
// labels sorted by name.
func (n *Node) Metrics(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.MetricsAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads the Prometheus text format.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var parts []string
				for _, l := range m.GetLabel() {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// Figures are a node's transfer figures from its metrics.
type Figures struct {
	PeerBytes, OriginBytes, SentBytes int64
	Complete, Incomplete              int
	PiecesFailed, OriginFallbacks     int64
}

// Figures scrapes the node's swarm figures.
func (n *Node) Figures(ctx context.Context) (Figures, error) {
	m, err := n.Metrics(ctx)
	if err != nil {
		return Figures{}, err
	}
	return Figures{
		PeerBytes:       int64(m[`swarmfs_swarm_received_bytes_total{source="peer"}`]),
		OriginBytes:     int64(m[`swarmfs_swarm_received_bytes_total{source="origin"}`]),
		SentBytes:       int64(m[`swarmfs_swarm_sent_bytes_total`]),
		Complete:        int(m[`swarmfs_swarm_objects{state="complete"}`]),
		Incomplete:      int(m[`swarmfs_swarm_objects{state="incomplete"}`]),
		PiecesFailed:    int64(m[`swarmfs_swarm_pieces_failed_total`]),
		OriginFallbacks: int64(m[`swarmfs_swarm_origin_fallbacks_total`]),
	}, nil
}

// WaitComplete polls until the node holds want objects, all complete, and
// returns when that was first seen.
func (n *Node) WaitComplete(ctx context.Context, want int) (time.Time, error) {
	var failingSince time.Time
	for {
		if ok, err := n.Exited(); ok {
			return time.Time{}, fmt.Errorf("%s exited (%v) before completing:\n%s", n.Name, err, tail(n.Log(), 2000))
		}
		f, err := n.Figures(ctx)
		if err == nil && f.Complete == want && f.Incomplete == 0 {
			return time.Now(), nil
		}
		switch {
		case err == nil:
			failingSince = time.Time{}
		case failingSince.IsZero():
			failingSince = time.Now()
		case time.Since(failingSince) > 10*time.Second:
			return time.Time{}, fmt.Errorf("%s: metrics failing for 10s: %w", n.Name, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s not complete (%+v, last error %v): %w", n.Name, f, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitFile waits until path exists.
func WaitFile(ctx context.Context, path string, n *Node) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if ok, err := n.Exited(); ok {
			return fmt.Errorf("%s exited (%v):\n%s", n.Name, err, tail(n.Log(), 2000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SingleTorrent returns the one .torrent file in dir.
func SingleTorrent(dir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.torrent"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("want one .torrent in %s, found %d (%v)", dir, len(m), err)
	}
	return m[0], nil
}

// DataFile returns the data file of the object with the .torrent's infohash.
func (n *Node) DataFile(torrent string) string {
	ih := strings.TrimSuffix(filepath.Base(torrent), ".torrent")
	return filepath.Join(n.Dir, "data", ih, "data")
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Signal sends sig to the process.
func (n *Node) Signal(sig os.Signal) error { return n.cmd.Process.Signal(sig) }

// Pid returns the process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// WaitHealthy waits until the node answers /healthz with 200.
func (n *Node) WaitHealthy(ctx context.Context) error {
	for {
		resp, err := http.Get("http://" + n.MetricsAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ok, err := n.Exited(); ok {
			return fmt.Errorf("%s exited: %v\n%s", n.Name, err, tail(n.Log(), 2000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w", n.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Socket is the path of the node's control API socket.
func (n *Node) Socket() string { return filepath.Join(n.Dir, "mountctl.sock") }
