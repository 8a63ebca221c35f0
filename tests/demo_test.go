package tests

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"swarmfs/tests/harness"
)

// The demo itself, in a reduced size: 3 mounted nodes, a 16 MiB dataset.
func TestDemo(t *testing.T) {
	harness.RequireFUSE(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := bin(t)
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := exec.CommandContext(ctx, filepath.Join(b, "demo"), "--dir", dir, "--bin", b, "--size", "16MiB", "--nodes", "3").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "result: OK") {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"mountctl add", "node2", "1.000× the object for 3 nodes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if left := strings.Count(string(mustRead(t, "/proc/self/mountinfo")), dir); left != 0 {
		t.Errorf("demo left %d mounts behind", left)
	}
}
