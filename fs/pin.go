package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"swarmfs/index"
)

// ErrMemlock means the memory-lock limit does not allow a pin.
var ErrMemlock = errors.New("fs: memory lock limit too low")

// capIPCLock is the bit of CAP_IPC_LOCK in the capability sets.
const capIPCLock = 14

// pinner keeps files resident in RAM: it maps each one read-only and
// mlocks the mapping (like vmtouch -l). Readers of the mount hit those
// pages: through passthrough directly, otherwise through the daemon's
// reads of the backing file.
type pinner struct {
	mu     sync.Mutex
	pins   map[string][]byte // key → locked mapping
	locked int64
	// hasIPCLock reports whether the process may lock memory beyond
	// RLIMIT_MEMLOCK (tests replace it).
	hasIPCLock func() bool
}

func newPinner() *pinner {
	return &pinner{pins: map[string][]byte{}, hasIPCLock: processHasIPCLock}
}

func processHasIPCLock() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capIPCLock) != 0
		}
	}
	return false
}

// checkLimit fails with ErrMemlock, naming the fixes, if size more bytes
// cannot be locked. It raises the soft limit to the hard one if that is
// enough.
func (p *pinner) checkLimit(size int64) error {
	if p.hasIPCLock() {
		return nil
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_MEMLOCK: %w", err)
	}
	need := uint64(p.locked + size)
	if lim.Cur == unix.RLIM_INFINITY || need <= lim.Cur {
		return nil
	}
	if lim.Max == unix.RLIM_INFINITY || need <= lim.Max {
		raised := unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &raised); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: pinning needs %s locked in all, RLIMIT_MEMLOCK allows %s (hard %s); raise it with 'ulimit -l' before starting swarmfsd, LimitMEMLOCK= in its systemd unit, or grant it CAP_IPC_LOCK",
		ErrMemlock, humanize.IBytes(need), limitString(lim.Cur), limitString(lim.Max))
}

func limitString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return humanize.IBytes(v)
}

// pin locks the first size bytes of file in RAM under key.
func (p *pinner) pin(key, file string, size int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pins[key]; ok {
		return nil
	}
	if size == 0 {
		p.pins[key] = nil
		return nil
	}
	if err := p.checkLimit(size); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("pin: map %s: %w", file, err)
	}
	if err := unix.Mlock(b); err != nil {
		unix.Munmap(b)
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("%w: mlock of %s failed (%v); raise 'ulimit -l', LimitMEMLOCK= or grant CAP_IPC_LOCK, and check free memory", ErrMemlock, humanize.IBytes(uint64(size)), err)
		}
		return fmt.Errorf("pin: mlock %s: %w", file, err)
	}
	p.pins[key] = b
	p.locked += size
	return nil
}

// unpin releases key; it reports whether it was pinned.
func (p *pinner) unpin(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.pins[key]
	if !ok {
		return false
	}
	delete(p.pins, key)
	if b != nil {
		unix.Munlock(b)
		unix.Munmap(b)
		p.locked -= int64(len(b))
	}
	return true
}

func (p *pinner) unpinAll() {
	p.mu.Lock()
	keys := make([]string, 0, len(p.pins))
	for k := range p.pins {
		keys = append(keys, k)
	}
	p.mu.Unlock()
	for _, k := range keys {
		p.unpin(k)
	}
}

// Pin makes the object at path complete on this node (downloading what is
// missing) and keeps its data resident in RAM until Unpin or unmount.
func (f *FS) Pin(ctx context.Context, path string) (index.Record, error) {
	rec, ok := f.ns.Lookup(path)
	if !ok {
		return index.Record{}, fmt.Errorf("pin %s: %w", path, index.ErrNotFound)
	}
	r, err := f.reader(ctx, rec)
	if err != nil {
		return index.Record{}, fmt.Errorf("pin %s: %w", path, err)
	}
	if err := f.pinner.checkLimit(rec.Size); err != nil {
		return index.Record{}, fmt.Errorf("pin %s: %w", path, err)
	}
	r.startBackground()
	if err := r.o.WaitComplete(ctx); err != nil {
		return index.Record{}, fmt.Errorf("pin %s: %w", path, err)
	}
	if err := f.pinner.pin(rec.InfoHash, r.o.DataPath(), rec.Size); err != nil {
		return index.Record{}, fmt.Errorf("pin %s: %w", path, err)
	}
	f.m.pinned.Set(float64(f.pinnedBytes()))
	f.log.Info("pinned", "path", path, "infohash", rec.InfoHash, "size", rec.Size)
	return rec, nil
}

// Unpin releases the pin of the object at path.
func (f *FS) Unpin(path string) error {
	rec, ok := f.ns.Lookup(path)
	if !ok {
		return fmt.Errorf("unpin %s: %w", path, index.ErrNotFound)
	}
	if !f.pinner.unpin(rec.InfoHash) {
		return fmt.Errorf("unpin %s: %w (not pinned)", path, index.ErrNotFound)
	}
	f.m.pinned.Set(float64(f.pinnedBytes()))
	f.log.Info("unpinned", "path", path)
	return nil
}

func (f *FS) pinnedBytes() int64 {
	f.pinner.mu.Lock()
	defer f.pinner.mu.Unlock()
	return f.pinner.locked
}

// IsPinned reports whether the object with infohash ih is pinned.
func (f *FS) IsPinned(ih string) bool {
	f.pinner.mu.Lock()
	defer f.pinner.mu.Unlock()
	_, ok := f.pinner.pins[ih]
	return ok
}
