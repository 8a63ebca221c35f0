package fs

import (
	"context"
	"fmt"
	"os"
	"path"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"swarmfs/index"
)

// dirNode is a directory: a path prefix of the namespace.
type dirNode struct {
	gofs.Inode
	fs   *FS
	path string
}

var (
	_ = (gofs.NodeLookuper)((*dirNode)(nil))
	_ = (gofs.NodeReaddirer)((*dirNode)(nil))
	_ = (gofs.NodeGetattrer)((*dirNode)(nil))
	_ = (gofs.NodeGetattrer)((*fileNode)(nil))
	_ = (gofs.NodeOpener)((*fileNode)(nil))
	_ = (gofs.NodeGetxattrer)((*fileNode)(nil))
	_ = (gofs.NodeListxattrer)((*fileNode)(nil))
	_ = (gofs.FileReader)((*handle)(nil))
	_ = (gofs.FileReleaser)((*handle)(nil))
	_ = (gofs.FilePassthroughFder)((*handle)(nil))
)

func (d *dirNode) child(name string) string {
	if d.path == "" {
		return name
	}
	return d.path + "/" + name
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := d.child(name)
	if rec, ok := d.fs.ns.Lookup(p); ok {
		fn := &fileNode{fs: d.fs, rec: rec}
		fn.fill(&out.Attr)
		out.SetAttrTimeout(fn.attrTimeout())
		return d.NewInode(ctx, fn, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: inoOf("f", rec.InfoHash)}), 0
	}
	if d.fs.ns.IsDir(p) {
		out.Mode = syscall.S_IFDIR | 0o555
		return d.NewInode(ctx, &dirNode{fs: d.fs, path: p}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoOf("d", p)}), 0
	}
	return nil, syscall.ENOENT
}

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, ok := d.fs.ns.List(d.path)
	if !ok && d.path != "" {
		return nil, syscall.ENOENT
	}
	out := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.Dir {
			out = append(out, fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: inoOf("d", d.child(e.Name))})
		} else {
			out = append(out, fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFREG, Ino: inoOf("f", e.Record.InfoHash)})
		}
	}
	return gofs.NewListDirStream(out), 0
}

func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	return 0
}

// fileNode is one object version. Its attributes never change except
// st_blocks, which follows the verified bytes held locally.
type fileNode struct {
	gofs.Inode
	fs  *FS
	rec index.Record
}

func (n *fileNode) attrTimeout() time.Duration {
	r := n.held()
	switch {
	case r == nil:
		// Nothing changes until the object is opened here, and Open
		// drops the cached attributes then: listings of big
		// directories stay cached.
		return time.Minute
	case r.t.Complete().Bool():
		return time.Hour
	}
	return time.Second // st_blocks follows the download
}

// held returns the object's reader if this node has opened it.
func (n *fileNode) held() *objectReader {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	return n.fs.readers[n.rec.InfoHash]
}

func (n *fileNode) fill(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | 0o444
	a.Size = uint64(n.rec.Size)
	a.Nlink = 1
	t := n.rec.Created
	a.SetTimes(&t, &t, &t)
	a.Blksize = 1 << 20
	if r := n.held(); r != nil {
		a.Blocks = uint64((r.o.VerifiedBytes() + 511) / 512)
	}
}

func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr)
	out.SetTimeout(n.attrTimeout())
	return 0
}

const xattrPrefix = "user.swarmfs."

var xattrNames = []string{"infohash", "progress", "source"}

func (n *fileNode) xattr(name string) (string, bool) {
	switch name {
	case xattrPrefix + "infohash":
		return n.rec.InfoHash, true
	case xattrPrefix + "source":
		if n.rec.Source.URL != "" {
			return n.rec.Source.URL, true
		}
		return string(n.rec.Source.Kind) + ":" + n.rec.Source.File, true
	case xattrPrefix + "progress":
		var done int64
		if r := n.held(); r != nil {
			done = r.o.VerifiedBytes()
		}
		pct := 100.0
		if n.rec.Size > 0 {
			pct = 100 * float64(done) / float64(n.rec.Size)
		}
		return fmt.Sprintf("%.1f%% %d/%d", pct, done, n.rec.Size), true
	}
	return "", false
}

func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, ok := n.xattr(attr)
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, x := range xattrNames {
		b = append(b, xattrPrefix+x...)
		b = append(b, 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	wasHeld := n.held() != nil
	r, err := n.fs.reader(ctx, n.rec)
	if err != nil {
		return nil, 0, n.fs.toErrno("open "+n.rec.Path, err)
	}
	if !wasHeld {
		// st_blocks now follows the local copy: drop the kernel's cached
		// attributes (a negative offset keeps the page cache). Not from
		// within this request: the kernel may hold the inode.
		go n.NotifyContent(-1, 0)
	}
	if n.fs.cfg.Background == BackgroundOnOpen {
		n.fs.mu.Lock()
		first := !n.fs.opened[n.rec.InfoHash]
		n.fs.opened[n.rec.InfoHash] = true
		n.fs.mu.Unlock()
		if first {
			r.startBackground()
		}
	}
	h := &handle{node: n, r: r}
	if !n.fs.cfg.NoPassthrough && r.t.Complete().Bool() {
		if f, err := os.Open(r.o.DataPath()); err == nil {
			h.backing = f
		}
	}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// handle is an open file. It keeps its sequential-read trackers so
// readahead grows per stream, and never creates a reader per request.
type handle struct {
	node    *fileNode
	r       *objectReader
	streams streams
	backing *os.File // passthrough to the complete backing file
}

func (h *handle) PassthroughFd() (int, bool) {
	if h.backing == nil {
		return 0, false
	}
	return int(h.backing.Fd()), true
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.r.ReadAt(ctx, dest, off, &h.streams)
	if err != nil {
		return nil, h.node.fs.toErrno("read "+path.Clean(h.node.rec.Path), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.backing != nil {
		h.backing.Close()
	}
	return 0
}
