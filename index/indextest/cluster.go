// Package indextest runs real etcd clusters (embedded members on loopback)
// for tests.
package indextest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"swarmfs/index"
)

// Cluster is an etcd cluster of embedded members.
type Cluster struct {
	t       testing.TB
	members []*member
	initial string
}

type member struct {
	name, dir, clientURL, peerURL string

	mu sync.Mutex
	e  *index.Embedded
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NewCluster starts an n-member cluster and stops it when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var peers []string
	for i := range n {
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dir:       filepath.Join(t.TempDir(), "etcd"),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		}
		c.members = append(c.members, m)
		peers = append(peers, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(peers, ",")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i, false)
		}()
	}
	wg.Wait()
	t.Cleanup(c.Close)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *Cluster) start(i int, existing bool) error {
	m := c.members[i]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := index.StartEmbedded(ctx, index.EmbedConfig{
		Dir: m.dir, Name: m.name, ClientURL: m.clientURL, PeerURL: m.peerURL,
		InitialCluster: c.initial, Existing: existing, UnsafeNoFsync: true, Quiet: true,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.clientURL)
	}
	return out
}

// Stop stops member i.
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

// Restart starts a stopped member i again with its data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(i, true); err != nil {
		c.t.Fatal(err)
	}
}

// RestartAll starts every stopped member again, concurrently (a member
// waits for quorum before it serves).
func (c *Cluster) RestartAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(c.members))
	for i, m := range c.members {
		m.mu.Lock()
		running := m.e != nil
		m.mu.Unlock()
		if running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i, true)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
}

// Leader returns the index of the member that is leader, or -1.
func (c *Cluster) Leader(ctx context.Context) int {
	cli := c.Client()
	for i, m := range c.members {
		st, err := cli.Status(ctx, strings.TrimPrefix(m.clientURL, "http://"))
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	return -1
}

// Client returns a client for all members, closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}
