package fs

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
)

// pair converts data on a seeder and joins it on a fresh node (no
// download asked), so reads drive what gets fetched.
func pair(t *testing.T, data []byte, seederCfg swarm.Config) (seeder *swarm.Client, o *swarm.Object) {
	t.Helper()
	origin, err := swarmtest.NewOrigin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	origin.Put("/obj", data)
	seeder = swarm.NewTestClient(t, seederCfg)
	conv, err := seeder.Convert(context.Background(), swarm.ConvertSpec{URL: origin.URL("/obj")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := swarm.TestingConfig(t)
	cfg.NoOriginFallback = true
	n := swarm.NewTestClient(t, cfg)
	o, err = n.Join(context.Background(), swarm.JoinSpec{InfoBytes: conv.InfoBytes(), Peers: []string{seeder.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	return seeder, o
}

func testReader(t *testing.T, o *swarm.Object, cfg Config, closed chan struct{}) *objectReader {
	t.Helper()
	cfg, err := cfg.Validate()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	r := newObjectReader(o, cfg, swarm.TestLogger(t), m, closed)
	t.Cleanup(r.close)
	return r
}

func completePieces(o *swarm.Object) int {
	n := 0
	for i := range o.NumPieces() {
		if o.Torrent().PieceState(i).Complete {
			n++
		}
	}
	return n
}

func TestReadFetchesOnlyWantedPieces(t *testing.T) {
	data := swarmtest.Data(41, 8<<20+100) // 256 KiB pieces: 33 pieces
	_, o := pair(t, data, swarm.TestingConfig(t))
	r := testReader(t, o, Config{}, make(chan struct{}))
	buf := make([]byte, 10000)
	off := int64(5<<20 + 7)
	n, err := r.ReadAt(context.Background(), buf, off, nil)
	if err != nil || n != len(buf) {
		t.Fatalf("ReadAt = %d, %v; want %d", n, err, len(buf))
	}
	if !bytes.Equal(buf, data[off:off+int64(n)]) {
		t.Fatal("ReadAt returned other bytes than the origin's")
	}
	if got := completePieces(o); got != 1 {
		t.Errorf("%d pieces complete after one 10 KB read inside one piece; want 1", got)
	}
	// A read spanning a piece boundary fills the buffer fully.
	big := make([]byte, 300<<10)
	off = 256<<10 - 1000
	if n, err := r.ReadAt(context.Background(), big, off, nil); err != nil || n != len(big) || !bytes.Equal(big, data[off:off+int64(n)]) {
		t.Fatalf("spanning ReadAt = %d, %v", n, err)
	}
	// At the end: short, then nothing.
	tail := make([]byte, 4096)
	if n, err := r.ReadAt(context.Background(), tail, int64(len(data))-100, nil); err != nil || n != 100 || !bytes.Equal(tail[:n], data[len(data)-100:]) {
		t.Fatalf("ReadAt at the end = %d, %v; want 100", n, err)
	}
	if n, err := r.ReadAt(context.Background(), tail, int64(len(data)), nil); n != 0 || err != nil {
		t.Fatalf("ReadAt past the end = %d, %v; want 0, nil", n, err)
	}
}

func TestSequentialReadaheadGrowsRandomDoesNot(t *testing.T) {
	var ss streams
	if w, _ := ss.readahead(5<<20, 4096, 64<<20); w != 0 {
		t.Errorf("first read readahead = %d; want 0", w)
	}
	off := int64(5<<20 + 4096)
	var w int64
	for range 100 {
		w, _ = ss.readahead(off, 128<<10, 64<<20)
		off += 128 << 10
	}
	if w != 100*(128<<10) {
		t.Errorf("readahead after 100 sequential reads = %d; want %d", w, 100*(128<<10))
	}
	// A random read elsewhere starts its own stream without readahead,
	// and the sequential stream keeps its window.
	if w, _ := ss.readahead(900<<20, 4096, 64<<20); w != 0 {
		t.Errorf("random read readahead = %d; want 0", w)
	}
	if w, _ := ss.readahead(off, 128<<10, 64<<20); w != 101*(128<<10) {
		t.Errorf("sequential stream after a random read = %d; want %d", w, 101*(128<<10))
	}
	for range 1000 {
		w, _ = ss.readahead(off, 1<<20, 64<<20)
		off += 1 << 20
	}
	if w != 64<<20 {
		t.Errorf("readahead cap = %d; want %d", w, 64<<20)
	}
}

// stalled returns a reader on an object whose only peer is gone (and no
// origin fallback).
func stalled(t *testing.T, cfg Config, closed chan struct{}) *objectReader {
	t.Helper()
	data := swarmtest.Data(42, 2<<20)
	seeder, o := pair(t, data, swarm.TestingConfig(t))
	seeder.Close()
	return testReader(t, o, cfg, closed)
}

func TestInterruptedReadWaitsGraceThenEINTR(t *testing.T) {
	r := stalled(t, Config{InterruptGrace: 300 * time.Millisecond}, make(chan struct{}))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.ReadAt(ctx, make([]byte, 4096), 0, nil)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted read = %v; want ErrInterrupted", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("interrupted read gave up after %v; want the 300ms grace after the 100ms interrupt", d)
	}
	if p := r.t.PieceState(0).Priority; p == 0 {
		t.Error("piece demand dropped with the interrupted request")
	}
}

func TestDestroyFailsBlockedRead(t *testing.T) {
	closed := make(chan struct{})
	r := stalled(t, Config{}, closed)
	time.AfterFunc(200*time.Millisecond, func() { close(closed) })
	if _, err := r.ReadAt(context.Background(), make([]byte, 4096), 0, nil); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("read at destroy = %v; want ErrDestroyed", err)
	}
}

func TestReadTimeout(t *testing.T) {
	r := stalled(t, Config{ReadTimeout: time.Second}, make(chan struct{}))
	if _, err := r.ReadAt(context.Background(), make([]byte, 4096), 0, nil); !errors.Is(err, ErrReadTimeout) {
		t.Fatalf("read without progress = %v; want ErrReadTimeout", err)
	}
}
