package fs

import (
	"bufio"
	"errors"
	"os"
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

// setMemlock sets RLIMIT_MEMLOCK for the test and restores it after.
func setMemlock(t *testing.T, cur, max uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: cur, Max: max}); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot change RLIMIT_MEMLOCK: %v", err)
		}
		t.Skipf("cannot change RLIMIT_MEMLOCK here (CI=true fails instead): %v", err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old) })
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

func TestPinMemlockLimit(t *testing.T) {
	const size = 8 << 20
	file := tempFile(t, size)

	// Soft limit too low, hard limit enough: the soft limit is raised.
	setMemlock(t, 1<<20, 64<<20)
	p := newPinner()
	p.hasIPCLock = func() bool { return false }
	if err := p.pin("ok", file, size); err != nil {
		t.Fatalf("pin under a raisable limit: %v", err)
	}
	p.unpinAll()

	// Hard limit too low and no CAP_IPC_LOCK: a clear error.
	setMemlock(t, 1<<20, 1<<20)
	err := p.pin("k", file, size)
	if !errors.Is(err, ErrMemlock) {
		t.Fatalf("pin over RLIMIT_MEMLOCK = %v; want ErrMemlock", err)
	}
	for _, want := range []string{"ulimit -l", "LimitMEMLOCK=", "CAP_IPC_LOCK", "8.0 MiB", "1.0 MiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
