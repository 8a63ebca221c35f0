package swarm

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestingConfig returns a Config for tests: loopback on a random port, a
// temporary data dir, small pieces and a short stall timeout.
func TestingConfig(t testing.TB) Config {
	return Config{
		ListenAddr:     "127.0.0.1:0",
		DataDir:        t.TempDir(),
		StallTimeout:   time.Second,
		MinPieceLength: 256 << 10,
		OriginTimeout:  5 * time.Second,
		OriginRetries:  3,
	}
}

// NewTestClient starts a Client with cfg and closes it when the test ends.
func NewTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, WithLogger(TestLogger(t)))
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLogger returns a logger that writes to t.Log until the test ends (and
// drops lines from goroutines that outlive it).
func TestLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
