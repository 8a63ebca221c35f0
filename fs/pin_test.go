package fs

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// vmLckKB returns this process's locked memory in KiB.
func vmLckKB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmLck:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

func tempFile(t *testing.T, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPinLocksAndUnpinReleases(t *testing.T) {
	const size = 8 << 20
	file := tempFile(t, size)
	p := newPinner()
	before := vmLckKB(t)
	if err := p.pin("k", file, size); err != nil {
		t.Fatalf("pin: %v", err)
	}
	if got := vmLckKB(t) - before; got < size>>10 {
		t.Errorf("locked %d KiB after pin; want at least %d", got, size>>10)
	}
	if !p.unpin("k") {
		t.Fatal("unpin found no pin")
	}
	if got := vmLckKB(t) - before; got != 0 {
		t.Errorf("still %d KiB locked after unpin", got)
	}
	if p.unpin("k") {
		t.Error("second unpin found a pin")
	}
}

// The limit checks run in a child process: it may lower its own
// RLIMIT_MEMLOCK, which (without CAP_SYS_RESOURCE) it could never raise
// back, so the test binary itself keeps its limits.
func TestPinMemlockLimit(t *testing.T) {
	if os.Getenv("SWARMFS_MEMLOCK_CHILD") == "1" {
		memlockChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPinMemlockLimit$", "-test.v")
	cmd.Env = append(os.Environ(), "SWARMFS_MEMLOCK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPinMemlockLimit") {
		t.Fatalf("memlock checks in a child process: %v\n%s", err, out)
	}
}

func memlockChild(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	// A size the current hard limit allows: 4 MiB, or less if it is lower.
	size := int64(4 << 20)
	if lim.Max != unix.RLIM_INFINITY && uint64(size) > lim.Max {
		size = int64(lim.Max) &^ (64<<10 - 1)
	}
	if size < 128<<10 {
		t.Fatalf("RLIMIT_MEMLOCK hard limit %d is too low to test pinning", lim.Max)
	}
	file := tempFile(t, int(size))
	p := newPinner()
	p.hasIPCLock = func() bool { return false }

	// Soft limit too low, hard limit enough: the soft limit is raised.
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 64 << 10, Max: lim.Max}); err != nil {
		t.Fatalf("lower the soft limit: %v", err)
	}
	if err := p.pin("ok", file, size); err != nil {
		t.Fatalf("pin under a raisable limit: %v", err)
	}
	p.unpinAll()

	// Hard limit too low and no CAP_IPC_LOCK: a clear error.
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 64 << 10, Max: 64 << 10}); err != nil {
		t.Fatalf("lower the hard limit: %v", err)
	}
	err := p.pin("k", file, size)
	if !errors.Is(err, ErrMemlock) {
		t.Fatalf("pin over RLIMIT_MEMLOCK = %v; want ErrMemlock", err)
	}
	for _, want := range []string{"ulimit -l", "LimitMEMLOCK=", "CAP_IPC_LOCK", "64 KiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
