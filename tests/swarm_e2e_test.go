package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bin builds swarmfsd once per test binary.
func bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "swarmfs-bin-")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binDir, buildErr = harness.Build(ctx, dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func startNode(t *testing.T, dir, name string, args ...string) *harness.Node {
	t.Helper()
	n, err := harness.StartNode(bin(t), dir, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", n.Name, n.Log())
		}
	})
	return n
}

func newOrigin(t *testing.T, path string, data []byte) *swarmtest.Origin {
	t.Helper()
	o, err := swarmtest.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	o.Put(path, data)
	return o
}

// convertOn starts a converting node and returns it with the .torrent path.
func convertOn(t *testing.T, ctx context.Context, dir, url string, args ...string) (*harness.Node, string) {
	t.Helper()
	torrents := filepath.Join(dir, "torrents")
	conv := startNode(t, dir, "converter", append([]string{"--convert", url, "--metainfo-dir", torrents}, args...)...)
	if _, err := conv.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	torrent, err := harness.SingleTorrent(torrents)
	if err != nil {
		t.Fatal(err)
	}
	return conv, torrent
}

// One converter and four downloaders, all real processes: every copy
// matches the origin, the origin sent about one copy, and the downloaders'
// bytes came from peers.
func TestDistribution(t *testing.T) {
	const size = 48 << 20
	data := swarmtest.Data(11, size)
	origin := newOrigin(t, "/obj.img", data)
	url := origin.URL("/obj.img")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	conv, torrent := convertOn(t, ctx, dir, url, "--min-piece-length", "1MiB")
	var nodes []*harness.Node
	for i := range 4 {
		nodes = append(nodes, startNode(t, dir, fmt.Sprintf("n%d", i), "--join", torrent, "--peer", conv.PeerAddr, "--origin", url))
	}
	want := swarmtest.SHA256(data)
	for _, n := range nodes {
		if _, err := n.WaitComplete(ctx, 1); err != nil {
			t.Fatal(err)
		}
		sha, err := harness.FileSHA256(n.DataFile(torrent))
		if err != nil {
			t.Fatal(err)
		}
		if sha != want {
			t.Errorf("%s copy sha256 = %s; want %s", n.Name, sha, want)
		}
		f, err := n.Figures(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.OriginBytes != 0 || f.PeerBytes < size {
			t.Errorf("%s figures %+v: want %d bytes from peers and none from the origin", n.Name, f, size)
		}
	}
	st := origin.Stats()
	if st.BodyBytes > size*105/100 {
		t.Errorf("origin sent %d bytes; want at most 1.05×%d", st.BodyBytes, size)
	}
	if st.FullGets != 1 {
		t.Errorf("origin saw %d full GETs; want 1", st.FullGets)
	}
}

// The only seeder is killed mid-transfer: downloaders complete through the
// origin fallback (after the stall timeout), and the origin bytes they
// counted are the bytes the origin sent.
func TestSeederKilledFallsBackToOrigin(t *testing.T) {
	const size = 32 << 20
	data := swarmtest.Data(12, size)
	origin := newOrigin(t, "/obj.img", data)
	url := origin.URL("/obj.img")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	conv, torrent := convertOn(t, ctx, dir, url, "--min-piece-length", "1MiB", "--upload-rate", "2MiB")
	converted := origin.Stats().BodyBytes
	var nodes []*harness.Node
	for i := range 2 {
		nodes = append(nodes, startNode(t, dir, fmt.Sprintf("n%d", i), "--join", torrent, "--peer", conv.PeerAddr,
			"--origin", url, "--stall-timeout", "2s"))
	}
	// Kill the seeder once the downloaders have some, not all, of the data.
	deadline := time.Now().Add(60 * time.Second)
	for {
		f, err := nodes[0].Figures(ctx)
		if err == nil && f.PeerBytes >= 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peer progress before the kill: %+v %v", f, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	conv.Kill()

	want := swarmtest.SHA256(data)
	var originBytes, fallbacks int64
	for _, n := range nodes {
		if _, err := n.WaitComplete(ctx, 1); err != nil {
			t.Fatal(err)
		}
		sha, err := harness.FileSHA256(n.DataFile(torrent))
		if err != nil {
			t.Fatal(err)
		}
		if sha != want {
			t.Errorf("%s copy sha256 = %s; want %s", n.Name, sha, want)
		}
		f, _ := n.Figures(ctx)
		originBytes += f.OriginBytes
		fallbacks += f.OriginFallbacks
	}
	served := origin.Stats().BodyBytes - converted
	if originBytes == 0 || fallbacks == 0 {
		t.Errorf("downloaders counted %d origin bytes in %d fallbacks; want both > 0", originBytes, fallbacks)
	}
	if originBytes != served {
		t.Errorf("downloaders counted %d origin bytes; the origin sent %d after conversion", originBytes, served)
	}
}
