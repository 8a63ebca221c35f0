package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"swarmfs/index"
	"swarmfs/index/indextest"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// mountNode starts a node that mounts the namespace at <dir>/<name>/mnt
// and waits for the mount. A deadline breaker detaches the mount before
// the test deadline so a stuck read cannot hang the run.
func mountNode(t *testing.T, ctx context.Context, dir, name string, args ...string) (*harness.Node, string) {
	t.Helper()
	mnt := filepath.Join(dir, name, "mnt")
	t.Cleanup(func() { harness.ForceUnmount(mnt) }) // runs after the node's Stop
	n := startNode(t, dir, name, append([]string{"--mount", mnt}, args...)...)
	if dl, ok := t.Deadline(); ok {
		timer := time.AfterFunc(time.Until(dl)-10*time.Second, func() { harness.ForceUnmount(mnt) })
		t.Cleanup(func() { timer.Stop() })
	}
	if err := harness.WaitMounted(ctx, n, mnt); err != nil {
		t.Fatal(err)
	}
	return n, mnt
}

func run(t *testing.T, ctx context.Context, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func mustRun(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, err := run(t, ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// waitFile waits until path exists (the namespace reached the mount).
func waitPath(t *testing.T, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An origin, a converter and two other mounted nodes: ls, stat, cp and
// sha256sum through each mount give the origin's bytes.
func TestMountEndToEnd(t *testing.T) {
	harness.RequireFUSE(t)
	const size = 20<<20 + 4321
	data := swarmtest.Data(31, size)
	origin := newOrigin(t, "/images/vm.img", data)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	a, mntA := mountNode(t, ctx, dir, "a", "--add", origin.URL("/images/vm.img"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	want := swarmtest.SHA256(data)
	for _, name := range []string{"b", "c"} {
		_, mnt := mountNode(t, ctx, dir, name, "--etcd-endpoints", a.EtcdURL)
		file := filepath.Join(mnt, "images", "vm.img")
		waitPath(t, file, 10*time.Second)
		if out := mustRun(t, ctx, "ls", filepath.Join(mnt, "images")); out != "vm.img" {
			t.Errorf("%s: ls images = %q; want vm.img", name, out)
		}
		if out := mustRun(t, ctx, "stat", "-c", "%s %a %F", file); out != fmt.Sprintf("%d 444 regular file", size) {
			t.Errorf("%s: stat = %q", name, out)
		}
		sum := mustRun(t, ctx, "sha256sum", file)
		if !strings.HasPrefix(sum, want) {
			t.Errorf("%s: sha256sum = %q; want %s", name, sum, want)
		}
		cp := filepath.Join(dir, name+".copy")
		mustRun(t, ctx, "cp", file, cp)
		if got, err := harness.FileSHA256(cp); err != nil || got != want {
			t.Errorf("%s: cp copy sha256 = %s, %v; want %s", name, got, err, want)
		}
		ih := mustRun(t, ctx, "getfattr", "--absolute-names", "--only-values", "-n", "user.swarmfs.infohash", file)
		if len(ih) != 40 {
			t.Errorf("%s: xattr infohash = %q", name, ih)
		}
		if src := mustRun(t, ctx, "getfattr", "--absolute-names", "--only-values", "-n", "user.swarmfs.source", file); src != origin.URL("/images/vm.img") {
			t.Errorf("%s: xattr source = %q", name, src)
		}
	}
	if sum := mustRun(t, ctx, "sha256sum", filepath.Join(mntA, "images", "vm.img")); !strings.HasPrefix(sum, want) {
		t.Errorf("converter mount sha256sum = %q", sum)
	}
	if fg := origin.Stats().FullGets; fg != 1 {
		t.Errorf("origin saw %d full GETs; want 1", fg)
	}
}

// Reading 4 KiB in the middle of a large, never-read object fetches only
// the pieces that hold it.
func TestLazyReadFetchesFewPieces(t *testing.T) {
	harness.RequireFUSE(t)
	const size, piece = 64 << 20, 1 << 20
	data := swarmtest.Data(32, size)
	origin := newOrigin(t, "/big.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := startNode(t, dir, "a", "--add", origin.URL("/big.bin"), "--min-piece-length", "1MiB")
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b, mnt := mountNode(t, ctx, dir, "b", "--etcd-endpoints", a.EtcdURL, "--background", "never")
	file := filepath.Join(mnt, "big.bin")
	waitPath(t, file, 10*time.Second)
	const off = 32<<20 + 12345
	out := filepath.Join(dir, "chunk")
	mustRun(t, ctx, "dd", "if="+file, "of="+out, "bs=4096", "count=1", "iflag=skip_bytes", "skip="+strconv.Itoa(off), "status=none")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[off:off+4096]) {
		t.Fatal("4 KiB read through the mount differs from the origin's bytes")
	}
	m, err := b.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	verified := m[`swarmfs_swarm_object_bytes{state="verified"}`]
	pieces := int(verified / piece)
	t.Logf("pieces fetched for a 4 KiB read: %d of %d", pieces, size/piece)
	if pieces < 1 || pieces > 3 {
		t.Errorf("fetched %d pieces for a 4 KiB read; want 1 to 3", pieces)
	}
	if p := mustRun(t, ctx, "getfattr", "--absolute-names", "--only-values", "-n", "user.swarmfs.progress", file); !strings.HasSuffix(p, fmt.Sprintf(" %d/%d", int64(verified), size)) {
		t.Errorf("progress xattr = %q; want .../%d verified", p, size)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if ra := strings.TrimSpace(string(mustRead(t, fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", st.Dev>>8&0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff)))); ra != "16384" {
		t.Errorf("mount read_ahead_kb = %s; want 16384 (raised as root)", ra)
	}
	// du follows progress: st_blocks counts verified bytes (attributes of
	// incomplete objects are cached for 1 s).
	wantDu := strconv.Itoa(int(verified)/1024) + "\t"
	deadline := time.Now().Add(5 * time.Second)
	for du := ""; !strings.HasPrefix(du, wantDu); du = mustRun(t, ctx, "du", "-k", file) {
		if time.Now().After(deadline) {
			t.Errorf("du = %q; want %s KiB", du, wantDu)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Writes fail with EROFS; unknown paths give ENOENT.
func TestMountReadOnly(t *testing.T) {
	harness.RequireFUSE(t)
	data := swarmtest.Data(33, 1<<20)
	origin := newOrigin(t, "/ro/file", data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a, mnt := mountNode(t, ctx, dir, "a", "--add", origin.URL("/ro/file"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mnt, "ro", "file")
	waitPath(t, file, 10*time.Second)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"touch", filepath.Join(mnt, "new")}, "Read-only file system"},
		{[]string{"sh", "-c", "echo x >> " + file}, "Read-only file system"},
		{[]string{"rm", "-f", file}, "Read-only file system"},
		{[]string{"mkdir", filepath.Join(mnt, "d")}, "Read-only file system"},
		{[]string{"mv", file, filepath.Join(mnt, "ro", "other")}, "Read-only file system"},
		{[]string{"cat", filepath.Join(mnt, "nope")}, "No such file or directory"},
		{[]string{"cat", filepath.Join(mnt, "ro", "nope")}, "No such file or directory"},
	} {
		out, err := run(t, ctx, tc.args[0], tc.args[1:]...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v = %v, %q; want failure with %q", tc.args, err, out, tc.want)
		}
	}
}

// A reader blocked on data nobody can supply: killing it ends it; an
// unmount (daemon shutdown) fails the blocked read with EIO, without
// hanging.
func TestBlockedReadsInterruptAndUnmount(t *testing.T) {
	harness.RequireFUSE(t)
	data := swarmtest.Data(34, 8<<20)
	origin := newOrigin(t, "/stuck.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	etcd := strings.Join(indextest.NewCluster(t, 1).Endpoints(), ",")
	a := startNode(t, dir, "a", "--etcd-endpoints", etcd, "--add", origin.URL("/stuck.bin"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b, mnt := mountNode(t, ctx, dir, "b", "--etcd-endpoints", etcd, "--no-origin-fallback", "--background", "never")
	file := filepath.Join(mnt, "stuck.bin")
	waitPath(t, file, 10*time.Second)
	// The only seeder freezes and the origin fallback is off: nobody can
	// supply the data.
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer a.Signal(syscall.SIGCONT)

	blocked := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if m, err := b.Metrics(ctx); err == nil && m["swarmfs_fuse_blocked_reads"] >= 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("read did not block")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cat := exec.Command("cat", file)
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	blocked()
	cat.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cat.Wait() }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("killed reader still hangs after 20s")
	}

	cat2 := exec.Command("cat", file)
	var stderr bytes.Buffer
	cat2.Stderr = &stderr
	if err := cat2.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- cat2.Wait() }()
	blocked()
	go b.Stop()
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(stderr.String(), "Input/output error") {
			t.Errorf("blocked read at unmount: %v, %q; want EIO", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("blocked read still hangs 20s after unmount")
	}
}

// The mount follows the index live: a new object appears, a deleted one
// disappears, without a remount.
func TestMountFollowsIndex(t *testing.T) {
	harness.RequireFUSE(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster := indextest.NewCluster(t, 1)
	ix := openIndex(t, cluster)
	dir := t.TempDir()
	_, mnt := mountNode(t, ctx, dir, "a", "--etcd-endpoints", strings.Join(cluster.Endpoints(), ","))
	rec := index.Record{Path: "live/new.img", InfoHash: strings.Repeat("ab", 20), Size: 12345, PieceLength: 1 << 20,
		Source: index.Source{Kind: index.SourceURL, URL: "http://origin.invalid/new.img"}}
	if _, err := ix.Publish(ctx, rec, []byte("d4:name1:xe")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mnt, "live", "new.img")
	waitPath(t, file, 5*time.Second)
	if out := mustRun(t, ctx, "stat", "-c", "%s", file); out != "12345" {
		t.Errorf("stat size of the new object = %q; want 12345", out)
	}
	if err := ix.Delete(ctx, "live/new.img"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errFile := os.Stat(file)
		_, errDir := os.Stat(filepath.Join(mnt, "live"))
		if os.IsNotExist(errFile) && os.IsNotExist(errDir) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted object still visible after 5s: %v, dir %v", errFile, errDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
