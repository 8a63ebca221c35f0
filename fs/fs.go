package fs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"swarmfs/index"
	"swarmfs/swarm"
)

// Namespace is the tree the filesystem shows (index.Cache).
type Namespace interface {
	Lookup(path string) (index.Record, bool)
	List(dir string) ([]index.Entry, bool)
	IsDir(dir string) bool
	Subscribe() (<-chan index.Event, func())
}

// Objects gives the swarm object of a record, joining its swarm if this
// node does not hold it yet.
type Objects interface {
	Object(ctx context.Context, rec index.Record) (*swarm.Object, error)
}

// FS is a mounted swarmfs namespace.
type FS struct {
	cfg    Config
	ns     Namespace
	objs   Objects
	log    *slog.Logger
	m      *metrics
	server *fuse.Server
	root   *dirNode

	destroyed chan struct{}
	destroy   sync.Once
	unsub     func()

	pinner *pinner

	mu      sync.Mutex
	readers map[string]*objectReader // by infohash
	opened  map[string]bool          // background download started
}

// Option sets an injected collaborator.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the filesystem metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// Mount mounts ns read-only at cfg.Mountpoint.
func Mount(cfg Config, ns Namespace, objs Objects, opts ...Option) (*FS, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	if cfg.Mountpoint == "" {
		return nil, errors.New("fs: no mountpoint")
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	f := &FS{
		cfg: cfg, ns: ns, objs: objs, log: o.log.With("component", "fs", "mount", cfg.Mountpoint), m: m,
		destroyed: make(chan struct{}),
		pinner:    newPinner(),
		readers:   map[string]*objectReader{},
		opened:    map[string]bool{},
	}
	if err := os.MkdirAll(cfg.Mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("fs: create mountpoint: %w", err)
	}
	f.root = &dirNode{fs: f, path: ""}
	// Entries can be cached long: follow() invalidates them as the index
	// changes. Attributes follow st_blocks (see fileNode.attrTimeout).
	entry, attr, neg := time.Minute, time.Second, 500*time.Millisecond
	server, err := gofs.Mount(cfg.Mountpoint, f.root, &gofs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &neg,
		MountOptions: fuse.MountOptions{
			FsName:        "swarmfs",
			Name:          "swarmfs",
			Options:       []string{"ro"},
			MaxWrite:      1 << 20,
			DisableSplice: true,
			MaxBackground: 64,
			AllowOther:    cfg.AllowOther,
			DirectMount:   true,
			Debug:         cfg.Debug,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fs: mount %s: %w", cfg.Mountpoint, err)
	}
	f.server = server
	f.raiseReadahead()
	events, unsub := ns.Subscribe()
	f.unsub = unsub
	go f.follow(events)
	if cfg.Background == BackgroundAlways {
		go f.fetchAll()
	}
	f.log.Info("mounted", "config", cfg)
	return f, nil
}

// raiseReadahead sets the mount's bdi read_ahead_kb (root only; the INIT
// reply has already set it, so this sticks).
func (f *FS) raiseReadahead() {
	if f.cfg.ReadAheadKB < 0 {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.cfg.Mountpoint, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(fmt.Sprint(f.cfg.ReadAheadKB)), 0o644); err != nil {
		f.log.Debug("could not raise kernel readahead", "path", p, "err", err)
	}
}

// follow invalidates kernel dentries as the namespace changes, and starts
// background downloads under the always policy.
func (f *FS) follow(events <-chan index.Event) {
	for ev := range events {
		if ev.Type == index.EventResync {
			f.resync()
			continue
		}
		dir, name := path.Split(ev.Path)
		f.notifyEntry(strings.TrimSuffix(dir, "/"), name)
		// Parents may have appeared or vanished too.
		for d := strings.TrimSuffix(dir, "/"); d != ""; {
			pd, pn := path.Split(d)
			f.notifyEntry(strings.TrimSuffix(pd, "/"), pn)
			d = strings.TrimSuffix(pd, "/")
		}
		if ev.Type == index.EventPut && f.cfg.Background == BackgroundAlways {
			go f.background(ev.Record)
		}
	}
}

// resync follows a namespace change that this mount missed (its event
// buffer overflowed): every entry the kernel may cache under a directory
// it knows, and every name the namespace now has there, is invalidated,
// and under the always policy every object gets its background download.
func (f *FS) resync() {
	f.log.Info("namespace events were missed; invalidating cached entries")
	var walk func(dir string, n *gofs.Inode)
	walk = func(dir string, n *gofs.Inode) {
		names := map[string]bool{}
		for name, child := range n.Children() {
			names[name] = true
			if child.IsDir() {
				walk(path.Join(dir, name), child)
			}
		}
		if ents, ok := f.ns.List(dir); ok {
			for _, e := range ents {
				names[e.Name] = true
			}
		}
		for name := range names {
			n.NotifyEntry(name)
		}
	}
	walk("", f.root.EmbeddedInode())
	if f.cfg.Background == BackgroundAlways {
		go f.fetchAll()
	}
}

func (f *FS) notifyEntry(dir, name string) {
	n := f.root.EmbeddedInode()
	for _, part := range strings.Split(dir, "/") {
		if part == "" {
			continue
		}
		if n = n.GetChild(part); n == nil {
			return
		}
	}
	n.NotifyEntry(name)
}

func (f *FS) fetchAll() {
	var walk func(dir string)
	walk = func(dir string) {
		ents, _ := f.ns.List(dir)
		for _, e := range ents {
			p := path.Join(dir, e.Name)
			if e.Dir {
				walk(p)
			} else {
				f.background(e.Record)
			}
		}
	}
	walk("")
}

// background downloads the whole object once.
func (f *FS) background(rec index.Record) {
	f.mu.Lock()
	if f.opened[rec.InfoHash] {
		f.mu.Unlock()
		return
	}
	f.opened[rec.InfoHash] = true
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := f.reader(ctx, rec)
	if err != nil {
		f.log.Warn("background download not started", "path", rec.Path, "err", err)
		return
	}
	r.startBackground()
}

// reader returns the shared reader of rec's object, joining it if needed.
func (f *FS) reader(ctx context.Context, rec index.Record) (*objectReader, error) {
	f.mu.Lock()
	r, ok := f.readers[rec.InfoHash]
	f.mu.Unlock()
	if ok {
		return r, nil
	}
	o, err := f.objs.Object(ctx, rec)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.readers[rec.InfoHash]; ok {
		return r, nil
	}
	select {
	case <-f.destroyed:
		return nil, ErrDestroyed
	default:
	}
	r = newObjectReader(o, f.cfg, f.log, f.m, f.destroyed)
	f.readers[rec.InfoHash] = r
	return r, nil
}

// Unmount fails blocked reads with EIO, then unmounts (lazily if busy).
func (f *FS) Unmount() error {
	f.destroy.Do(func() { close(f.destroyed) })
	if f.unsub != nil {
		f.unsub()
	}
	// Let blocked reads deliver their EIO, and the kernel's synchronous
	// retries of failed readahead get theirs, before the connection goes
	// away (an aborted connection gives readers ENOTCONN instead).
	for i := 0; i < 200; i++ {
		quiet := time.Since(time.Unix(0, f.m.lastRead.Load())) > 150*time.Millisecond
		if f.m.blockedNow.Load() == 0 && quiet {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.pinner.unpinAll()
	f.m.pinned.Set(0)
	err := f.server.Unmount()
	if err != nil {
		f.log.Warn("unmount failed, detaching lazily", "err", err)
		if derr := syscall.Unmount(f.cfg.Mountpoint, syscall.MNT_DETACH); derr != nil && !errors.Is(derr, syscall.EINVAL) {
			if out, ferr := exec.Command("fusermount3", "-u", "-z", f.cfg.Mountpoint).CombinedOutput(); ferr != nil {
				return fmt.Errorf("fs: unmount %s: %w (lazy: %v; fusermount3: %v %s)", f.cfg.Mountpoint, err, derr, ferr, out)
			}
		}
		err = nil
	}
	f.mu.Lock()
	for ih, r := range f.readers {
		r.close()
		delete(f.readers, ih)
	}
	f.mu.Unlock()
	f.log.Info("unmounted")
	return err
}

// Wait blocks until the filesystem is unmounted.
func (f *FS) Wait() { f.server.Wait() }

// toErrno maps errors to errno in one place; unknown errors are logged and
// become EIO.
func (f *FS) toErrno(op string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInterrupted):
		return syscall.EINTR
	case errors.Is(err, ErrDestroyed), errors.Is(err, ErrReadTimeout):
		return syscall.EIO
	case errors.Is(err, index.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	f.log.Error("fuse operation failed", "op", op, "err", err)
	return syscall.EIO
}

func inoOf(kind, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum64() | 1<<63 // never collides with the root's 1
}
