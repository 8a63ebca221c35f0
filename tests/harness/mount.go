package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireFUSE skips the test when FUSE cannot be used, or fails it when
// CI=true: CI must run the FUSE tests.
func RequireFUSE(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3 (Debian package fuse3)")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (mounts use mount(2) directly)")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("FUSE tests need %s; 'make test' installs fuse3", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RequireTool skips (or fails under CI=true) when a Debian tool is missing.
func RequireTool(t testing.TB, cmd, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err == nil {
		return
	}
	msg := fmt.Sprintf("%s is missing (Debian package %s; 'make test' installs it)", cmd, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Mounted reports whether dir is a mountpoint.
func Mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// WaitMounted waits until dir is mounted by node n.
func WaitMounted(ctx context.Context, n *Node, dir string) error {
	for !Mounted(dir) {
		if ok, err := n.Exited(); ok {
			return fmt.Errorf("%s exited (%v) before mounting:\n%s", n.Name, err, tail(n.Log(), 3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not mounted: %w", n.Name, dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// ForceUnmount detaches dir lazily; the deadline breaker of FUSE tests.
func ForceUnmount(dir string) {
	if !Mounted(dir) {
		return
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	}
}

// RequirePython skips (or fails under CI=true) when Debian's python3
// (/usr/bin/python3) cannot import module.
func RequirePython(t testing.TB, module, pkg string) {
	t.Helper()
	err := exec.Command("/usr/bin/python3", "-c", "import "+module).Run()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("/usr/bin/python3 cannot import %s: %v (Debian package %s; 'make test' installs it)", module, err, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
