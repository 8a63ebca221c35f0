package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"swarmfs/index/indextest"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
	"swarmfs/tracker/trackertest"
)

// aria2c returns the path of aria2c. Under CI=true a missing aria2c fails
// the test (the Makefile installs Debian's aria2); elsewhere it skips.
func aria2c(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("aria2c")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("aria2c not found (%v): CI must run the interop test; install the Debian package aria2 (make deps-test does)", err)
		}
		t.Skipf("aria2c not found (%v): install the Debian package aria2 to run the interop test (under CI=true this fails instead)", err)
	}
	return p
}

// A third-party client, aria2c from Debian, downloads an object from
// swarmfsd seeders through our private tracker, then seeds it alone to a
// new swarmfsd node. aria2c keeps the query of the announce URL it is
// given, so it can carry a zone label too.
func TestTrackerInteropAria2(t *testing.T) {
	bin := aria2c(t)
	const size = 16 << 20
	data := swarmtest.Data(42, size)
	origin := newOrigin(t, "/interop.img", data)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	etcd := indextest.NewCluster(t, 1)
	const prefix = "/swarmfs/"
	tr := startTracker(t, ctx, dir, "tracker", "", "--etcd-endpoints", etcd.Endpoints()[0], "--etcd-prefix", prefix, "--interval", "5s")

	seed, torrent, ih := indexedSeed(t, ctx, dir, origin.URL("/interop.img"), etcd.Client(), prefix,
		[]string{"--min-piece-length", "1MiB"}, "--tracker", tr.AnnounceURL(""))
	helper := startNode(t, dir, "helper", "--join", torrent, "--tracker", tr.AnnounceURL(""))
	if _, err := helper.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// A .torrent for aria2c whose announce URL carries a label.
	mi, err := metainfo.LoadFromFile(torrent)
	if err != nil {
		t.Fatal(err)
	}
	mi.Announce, mi.AnnounceList = tr.AnnounceURL("zone=interop"), nil
	ariaTorrent := filepath.Join(dir, "aria2.torrent")
	f, err := os.Create(ariaTorrent)
	if err != nil {
		t.Fatal(err)
	}
	if err := mi.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}

	ariaPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ariaDir := filepath.Join(dir, "aria2")
	cmd := exec.Command(bin,
		"--dir="+ariaDir, "--log="+filepath.Join(dir, "aria2.log"), "--log-level=info",
		"--console-log-level=warn", "--summary-interval=0", "--no-conf=true",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--listen-port="+fmt.Sprint(ariaPort), "--file-allocation=none",
		"--seed-ratio=0.0", // seed until killed
		"--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=5",
		ariaTorrent)
	out, err := os.Create(filepath.Join(dir, "aria2.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aria2c: %v", err)
	}
	ariaDone := make(chan error, 1)
	go func() { ariaDone <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-ariaDone
		if t.Failed() {
			for _, name := range []string{"aria2.out", "aria2.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s:\n%s", name, b)
			}
		}
	})

	// aria2c is done when its file matches (it keeps its .aria2 control
	// file while it seeds).
	file := filepath.Join(ariaDir, info.Name)
	want := swarmtest.SHA256(data)
	start := time.Now()
	for {
		select {
		case err := <-ariaDone:
			t.Fatalf("aria2c exited early: %v", err)
		default:
		}
		if sha, err := harness.FileSHA256(file); err == nil && sha == want {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("aria2c did not download %s through the tracker within 60s", file)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("aria2c downloaded %d bytes from swarmfsd seeders in %v", size, time.Since(start).Round(100*time.Millisecond))
	var sent int64
	for _, n := range []*harness.Node{seed, helper} {
		f, err := n.Figures(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sent += f.SentBytes
	}
	if sent < size {
		t.Errorf("swarmfsd seeders sent %d bytes; want at least the %d aria2c downloaded", sent, size)
	}

	// The tracker saw aria2c with its label and its completion: a probe in
	// zone "interop" gets aria2c first, and scrape counts a download.
	probe := trackertest.Announce{InfoHash: ih, PeerID: trackertest.PeerID("probe"), Port: 1, Left: 1, Zone: "interop"}
	var first string
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := trackertest.DoAnnounce(ctx, tr.AnnounceURL(""), probe)
		if err != nil || resp.FailureReason != "" {
			t.Fatalf("probe announce: %+v, %v", resp, err)
		}
		if len(resp.Peers) > 0 {
			first = resp.Peers[0].Addr.String()
		}
		if first == fmt.Sprintf("127.0.0.1:%d", ariaPort) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if first != fmt.Sprintf("127.0.0.1:%d", ariaPort) {
		t.Errorf("first peer for a zone=interop probe = %s; want aria2c at 127.0.0.1:%d (its announce URL's label)", first, ariaPort)
	}
	probe.Event = "stopped"
	trackertest.DoAnnounce(ctx, tr.AnnounceURL(""), probe)
	// aria2c announces its completion on its own schedule.
	var sf trackertest.ScrapeFile
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, body, err := trackertest.Get(ctx, "http://"+tr.Addr+"/scrape", trackertest.ScrapeQuery(ih))
		if err != nil {
			t.Fatal(err)
		}
		sr, err := trackertest.DecodeScrape(body)
		if err != nil {
			t.Fatal(err)
		}
		sf, _ = sr.File(ih)
		if sf.Downloaded >= 2 && sf.Complete == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sf.Downloaded < 2 || sf.Complete != 3 || sf.Incomplete != 0 {
		t.Errorf("scrape = %+v; want 3 seeders, no leechers, and the helper and aria2c counted as downloads", sf)
	}

	// Now aria2c is the only seeder: the swarmfsd seeders are killed, and a
	// new node (no --peer, no --origin) downloads through the tracker.
	seed.Kill()
	helper.Kill()
	late := startNode(t, dir, "late", "--join", torrent, "--tracker", tr.AnnounceURL(""))
	lateCtx, lateCancel := context.WithTimeout(ctx, 90*time.Second)
	defer lateCancel()
	if _, err := late.WaitComplete(lateCtx, 1); err != nil {
		t.Fatal(err)
	}
	sha, err := harness.FileSHA256(late.DataFile(torrent))
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := late.Figures(ctx)
	if sha != want || lf.PeerBytes < size || lf.OriginBytes != 0 {
		t.Errorf("late node: sha256 %s, figures %+v; want %s, all %d bytes from aria2c", sha, lf, want, size)
	}
}
