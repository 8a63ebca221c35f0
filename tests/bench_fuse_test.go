package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// Benchmarks of the mount. They print their figures and the ratio to the
// bound issue 5 and 7 name; nothing here asserts a speed. Run with
// make bench (one iteration each: the set-up dominates).

func benchEnv(b *testing.B) (context.Context, string) {
	harness.RequireFUSE(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx, b.TempDir()
}

func benchNode(b *testing.B, dir, name string, args ...string) *harness.Node {
	b.Helper()
	n, err := harness.StartNode(bin(b), dir, name, args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Stop() })
	return n
}

func benchMount(b *testing.B, ctx context.Context, dir, name string, args ...string) (*harness.Node, string) {
	b.Helper()
	mnt := filepath.Join(dir, name, "mnt")
	b.Cleanup(func() { harness.ForceUnmount(mnt) })
	n := benchNode(b, dir, name, append([]string{"--mount", mnt}, args...)...)
	if err := harness.WaitMounted(ctx, n, mnt); err != nil {
		b.Fatal(err)
	}
	return n, mnt
}

func dropCaches() { os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200) }

// timeRead reads [off, off+n) of file with one pread and returns the time.
func timeRead(b *testing.B, file string, off, n int64) time.Duration {
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	start := time.Now()
	if _, err := f.ReadAt(buf, off); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// timeSeq reads the whole file with 1 MiB reads and returns MB/s.
func timeSeq(b *testing.B, file string) float64 {
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var total int64
	start := time.Now()
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	return float64(total) / 1e6 / time.Since(start).Seconds()
}

// The benchmark process reads the mounts; it is never the daemon, so the
// go-fuse same-process deadlocks do not apply.

// BenchmarkMountSequentialRead: a complete object read through the mount
// (passthrough on and off) against its backing file. Bound: ≥ 0.9×.
func BenchmarkMountSequentialRead(b *testing.B) {
	ctx, dir := benchEnv(b)
	const size = 512 << 20
	origin := newOriginB(b, "/seq.bin", swarmtest.Data(61, size))
	a, mntPT := benchMount(b, ctx, dir, "a", "--add", origin.URL("/seq.bin"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		b.Fatal(err)
	}
	c, mntNoPT := benchMount(b, ctx, dir, "c", "--etcd-endpoints", a.EtcdURL, "--no-passthrough", "--add", origin.URL("/seq.bin"))
	if _, err := c.WaitComplete(ctx, 1); err != nil {
		b.Fatal(err)
	}
	backing, _ := filepath.Glob(filepath.Join(a.Dir, "data", "*", "data"))
	for i := 0; i < b.N; i++ {
		dropCaches()
		direct := timeSeq(b, backing[0])
		dropCaches()
		pt := timeSeq(b, filepath.Join(mntPT, "seq.bin"))
		dropCaches()
		noPT := timeSeq(b, filepath.Join(mntNoPT, "seq.bin"))
		warmDirect := timeSeq(b, backing[0])
		warmNoPT := timeSeq(b, filepath.Join(mntNoPT, "seq.bin"))
		fmt.Printf("sequential read of a complete %d MiB object, cold page cache:\n", size>>20)
		fmt.Printf("  backing file directly   %7.0f MB/s\n", direct)
		fmt.Printf("  mount, passthrough      %7.0f MB/s  ratio %.2f (bound ≥ 0.9)\n", pt, pt/direct)
		fmt.Printf("  mount, no passthrough   %7.0f MB/s  ratio %.2f (bound ≥ 0.9)\n", noPT, noPT/direct)
		fmt.Printf("  warm: direct %0.f MB/s, mount without passthrough %.0f MB/s (ratio %.2f)\n", warmDirect, warmNoPT, warmNoPT/warmDirect)
		b.ReportMetric(pt/direct, "passthrough/direct")
		b.ReportMetric(noPT/direct, "nopassthrough/direct")
	}
}

// BenchmarkMountColdTTFB: the first 4 KiB of a never-read object through
// the mount, against the transfer time of one piece. Bound: ≤ 2× one
// piece's transfer time.
func BenchmarkMountColdTTFB(b *testing.B) {
	ctx, dir := benchEnv(b)
	const size, piece = 256 << 20, 4 << 20
	origin := newOriginB(b, "/ttfb.bin", swarmtest.Data(62, size))
	a := benchNode(b, dir, "a", "--add", origin.URL("/ttfb.bin"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		b.Fatal(err)
	}
	// One piece's transfer time: a full download's time per piece.
	full := benchNode(b, dir, "full", "--etcd-endpoints", a.EtcdURL, "--add", origin.URL("/ttfb.bin"))
	done, err := full.WaitComplete(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	perPiece := done.Sub(full.Started) / (size / piece)
	for i := 0; i < b.N; i++ {
		_, mnt := benchMount(b, ctx, dir, fmt.Sprintf("cold%d", i), "--etcd-endpoints", a.EtcdURL, "--background", "never")
		file := filepath.Join(mnt, "ttfb.bin")
		waitPathB(b, file)
		ttfb := timeRead(b, file, size/2, 4096)
		fmt.Printf("cold time to first byte: %v; one piece (4 MiB) transfer ≈ %v (upper bound: includes process start); ratio %.2f (bound ≤ 2)\n",
			ttfb.Round(time.Microsecond), perPiece.Round(time.Microsecond), float64(ttfb)/float64(perPiece))
		b.ReportMetric(float64(ttfb.Microseconds()), "ttfb-µs")
	}
}

// BenchmarkMountForegroundUnderBackground: random 4 KiB reads while the
// background download of the same object runs, against the same reads on
// a node without background work.
func BenchmarkMountForegroundUnderBackground(b *testing.B) {
	ctx, dir := benchEnv(b)
	const size = 512 << 20
	origin := newOriginB(b, "/bg.bin", swarmtest.Data(63, size))
	a := benchNode(b, dir, "a", "--add", origin.URL("/bg.bin"), "--upload-rate", "64MiB")
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		b.Fatal(err)
	}
	measure := func(name, policy string) (p50, p99 time.Duration) {
		n, mnt := benchMount(b, ctx, dir, name, "--etcd-endpoints", a.EtcdURL, "--background", policy, "--blocked-read-warning", "2s")
		defer func() {
			if os.Getenv("BENCH_LOG") != "" {
				fmt.Println(n.Log())
			}
		}()
		file := filepath.Join(mnt, "bg.bin")
		waitPathB(b, file)
		f, err := os.Open(file) // opening starts the on-open background download
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		r := rand.New(rand.NewPCG(1, 2))
		var lat []time.Duration
		for range 30 {
			off := r.Int64N(size - 4096)
			d := timeRead(b, file, off, 4096)
			if os.Getenv("BENCH_LOG") != "" {
				fmt.Printf("%s read at %d (piece %d): %v\n", time.Now().Format("15:04:05.000"), off, off>>22, d)
			}
			lat = append(lat, d)
		}
		slices.Sort(lat)
		return lat[len(lat)/2], lat[len(lat)*99/100]
	}
	for i := 0; i < b.N; i++ {
		q50, q99 := measure(fmt.Sprintf("quiet%d", i), "never")
		b50, b99 := measure(fmt.Sprintf("busy%d", i), "on-open")
		fmt.Printf("random 4 KiB cold reads, 512 MiB object, seeder capped at 64 MiB/s:\n")
		fmt.Printf("  no background download:   p50 %v  p99 %v\n", q50.Round(time.Microsecond), q99.Round(time.Microsecond))
		fmt.Printf("  during background download: p50 %v  p99 %v  (p50 ratio %.2f)\n", b50.Round(time.Microsecond), b99.Round(time.Microsecond), float64(b50)/float64(q50))
	}
}

func newOriginB(b *testing.B, path string, data []byte) *swarmtest.Origin {
	o, err := swarmtest.NewOrigin()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Close() })
	o.Put(path, data)
	return o
}

func waitPathB(b *testing.B, path string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not appear", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
