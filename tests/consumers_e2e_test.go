package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// serveFile puts a local file on a new origin at path.
func serveFile(t *testing.T, path, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return newOrigin(t, path, data).URL(path)
}

// Real consumers read through the mount of a node that never downloaded
// the objects: qemu-img on a qcow2 image, sqlite3 on a database, and a
// process that mmaps a file.
func TestMountRealConsumers(t *testing.T) {
	harness.RequireFUSE(t)
	harness.RequireTool(t, "qemu-img", "qemu-utils")
	harness.RequireTool(t, "sqlite3", "sqlite3")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// A qcow2 image with 24 MiB of data written into a 1 GiB disk.
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, swarmtest.Data(51, 24<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.qcow2")
	mustRun(t, ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, img)
	mustRun(t, ctx, "qemu-img", "resize", img, "1G")
	// A database of 100k rows.
	db := filepath.Join(dir, "data.db")
	mustRun(t, ctx, "sqlite3", db, "create table t(id integer primary key, v text); "+
		"with recursive c(x) as (select 1 union all select x+1 from c where x < 100000) insert into t select x, printf('row-%08d-%s', x, hex(randomblob(32))) from c;")
	blob := swarmtest.Data(52, 9<<20+77)

	origin := newOrigin(t, "/vm/disk.qcow2", mustRead(t, img))
	origin.Put("/db/data.db", mustRead(t, db))
	origin.Put("/blob.bin", blob)
	a := startNode(t, dir, "a", "--min-piece-length", "1MiB",
		"--add", origin.URL("/vm/disk.qcow2"), "--add", origin.URL("/db/data.db"), "--add", origin.URL("/blob.bin"))
	if _, err := a.WaitComplete(ctx, 3); err != nil {
		t.Fatal(err)
	}
	b, mnt := mountNode(t, ctx, dir, "b", "--etcd-endpoints", a.EtcdURL, "--background", "never")
	waitPath(t, filepath.Join(mnt, "blob.bin"), 10*time.Second)

	qcow := filepath.Join(mnt, "vm", "disk.qcow2")
	info := mustRun(t, ctx, "qemu-img", "info", "-U", qcow)
	if !strings.Contains(info, "file format: qcow2") || !strings.Contains(info, "virtual size: 1 GiB") {
		t.Errorf("qemu-img info through the mount:\n%s", info)
	}
	m, _ := b.Metrics(ctx)
	t.Logf("qemu-img info fetched %.0f bytes (%.0f pieces of 1 MiB) of a %d-byte image",
		m[`swarmfs_swarm_object_bytes{state="verified"}`], m[`swarmfs_swarm_object_bytes{state="verified"}`]/(1<<20), len(mustRead(t, img)))
	if out := mustRun(t, ctx, "qemu-img", "check", "-U", qcow); !strings.Contains(out, "No errors were found") {
		t.Errorf("qemu-img check through the mount:\n%s", out)
	}

	q := mustRun(t, ctx, "sqlite3", "file:"+filepath.Join(mnt, "db", "data.db")+"?immutable=1",
		"select count(*), sum(id), (select v from t where id = 77777) like 'row-00077777-%' from t;")
	if q != "100000|5000050000|1" {
		t.Errorf("sqlite3 query through the mount = %q; want 100000|5000050000|1", q)
	}

	// Two mmap readers of the same file at once.
	var wg sync.WaitGroup
	sums := make([]string, 2)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := run(t, ctx, filepath.Join(bin(t), "mmapsum"), filepath.Join(mnt, "blob.bin"))
			if err != nil {
				t.Errorf("mmapsum: %v %s", err, out)
			}
			sums[i] = out
		}()
	}
	wg.Wait()
	for i, s := range sums {
		if s != swarmtest.SHA256(blob) {
			t.Errorf("mmap reader %d sha256 = %q; want %s", i, s, swarmtest.SHA256(blob))
		}
	}
}

// Several processes reading different regions of one file progress in
// parallel and all get the right bytes.
func TestMountParallelReaders(t *testing.T) {
	harness.RequireFUSE(t)
	const size = 32 << 20
	data := swarmtest.Data(53, size)
	origin := newOrigin(t, "/p.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := startNode(t, dir, "a", "--add", origin.URL("/p.bin"), "--min-piece-length", "1MiB", "--upload-rate", "16MiB")
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, mnt := mountNode(t, ctx, dir, "b", "--etcd-endpoints", a.EtcdURL, "--background", "never")
	file := filepath.Join(mnt, "p.bin")
	waitPath(t, file, 10*time.Second)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := i * (8 << 20)
			out := filepath.Join(dir, fmt.Sprintf("part%d", i))
			if o, err := run(t, ctx, "dd", "if="+file, "of="+out, "bs=1M", "count=8", fmt.Sprintf("skip=%d", off>>20), "status=none"); err != nil {
				t.Errorf("reader %d: %v %s", i, err, o)
				return
			}
			got := mustRead(t, out)
			if string(got) != string(data[off:off+8<<20]) {
				t.Errorf("reader %d got other bytes than the origin's", i)
			}
		}()
	}
	wg.Wait()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A pinned object is downloaded fully and stays locked in the daemon's
// memory: its backing pages are resident and counted in VmLck.
func TestMountPin(t *testing.T) {
	harness.RequireFUSE(t)
	harness.RequireTool(t, "vmtouch", "vmtouch")
	const size = 12 << 20
	data := swarmtest.Data(54, size)
	origin := newOrigin(t, "/pin/me.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := startNode(t, dir, "a", "--add", origin.URL("/pin/me.bin"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b, mnt := mountNode(t, ctx, dir, "b", "--etcd-endpoints", a.EtcdURL, "--background", "never", "--pin", "pin/me.bin")
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := b.Metrics(ctx)
		if err == nil && m["swarmfs_fuse_pinned_bytes"] == size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("object not pinned after 30s (metrics err %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lockedKB := vmLck(t, b.Pid())
	if lockedKB < size>>10 {
		t.Errorf("daemon VmLck = %d kB; want at least %d", lockedKB, size>>10)
	}
	files, _ := filepath.Glob(filepath.Join(b.Dir, "data", "*", "data"))
	if len(files) != 1 {
		t.Fatalf("backing files: %v", files)
	}
	if out := mustRun(t, ctx, "vmtouch", "-v", files[0]); !strings.Contains(out, "100%") {
		t.Errorf("vmtouch of the pinned backing file:\n%s", out)
	}
	if sum := mustRun(t, ctx, "sha256sum", filepath.Join(mnt, "pin", "me.bin")); !strings.HasPrefix(sum, swarmtest.SHA256(data)) {
		t.Errorf("sha256sum of the pinned object = %q", sum)
	}

	// mountctl unpin releases the lock; mountctl pin takes it again.
	mountctl := func(args ...string) string {
		return mustRun(t, ctx, filepath.Join(bin(t), "mountctl"), append([]string{"--socket", filepath.Join(b.Dir, "mountctl.sock")}, args...)...)
	}
	locked := func() int { return vmLck(t, b.Pid()) }
	mountctl("unpin", "pin/me.bin")
	if kb := locked(); kb >= size>>10 {
		t.Errorf("VmLck after mountctl unpin = %d kB; want the object released", kb)
	}
	if out := mountctl("-o", "json", "pin", "pin/me.bin"); !strings.Contains(out, `"pinned": true`) {
		t.Errorf("mountctl pin output:\n%s", out)
	}
	if kb := locked(); kb < size>>10 {
		t.Errorf("VmLck after mountctl pin = %d kB; want at least %d", kb, size>>10)
	}
}

// vmLck returns the locked memory of process pid in kB.
func vmLck(t *testing.T, pid int) int {
	t.Helper()
	var kb int
	for _, line := range strings.Split(string(mustRead(t, fmt.Sprintf("/proc/%d/status", pid))), "\n") {
		if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
		}
	}
	return kb
}
