// Package fs shows the swarmfs namespace as a read-only FUSE filesystem
// (go-fuse v2). It is a thin adapter: the tree comes from the index's
// watch cache (Namespace), objects from the node (Objects), and the read
// rules live in reader.go, which knows nothing about FUSE.
//
// # Tree
//
// Directories are path prefixes of the namespace; files are object
// versions. A file's inode number derives from its infohash, so a path
// re-pointed to a new version is a new inode, and readers of the old one
// keep a consistent view. Namespace changes invalidate kernel dentries
// (NotifyEntry), so new objects appear and deleted ones vanish at once.
// Attributes are fixed per version (mode 0444, exact size, mtime = record
// creation) except st_blocks, which counts verified bytes held locally, so
// du shows download progress. xattrs: user.swarmfs.infohash,
// user.swarmfs.progress, user.swarmfs.source. The mount is read-only:
// writes, creates, renames and unlinks fail with EROFS.
//
// # Reads
//
// A read of [off, off+len) whose pieces are verified goes straight to the
// backing file (pread), with no waiting machinery. Otherwise exactly the
// missing pieces are raised to the top priority and the read waits for
// them to be verified, then fills the buffer fully (short only at EOF).
// Each open handle keeps a few sequential-stream trackers: a read that
// continues a stream grows that stream's readahead (as much as it read
// sequentially, capped by MaxReadahead) at readahead priority; a random
// read drags none. No torrent.Reader is created per read. Background
// downloads (policy on-open, always, never) run at normal priority, below
// every foreground read.
//
// # Blocking
//
// Reads wait as long as it takes by default (like a hard NFS mount);
// ReadTimeout turns a read without progress into EIO. An interrupted read
// (FUSE INTERRUPT, which Go's SIGURG preemption also causes) keeps waiting
// InterruptGrace before returning EINTR, and the piece demand stays, so a
// retry finds the data on its way and a killed reader still goes away.
// Unmount fails blocked reads with EIO and lets them reply before the
// connection closes. Reads blocked for BlockedWarning are logged with the
// swarm's state.
//
// # Kernel
//
// FOPEN_KEEP_CACHE (content never changes), 1 MiB requests (MaxWrite),
// splice off (replies are byte slices), bdi read_ahead_kb raised when
// root, and FUSE passthrough for objects complete at open (Linux 6.9+,
// root): the kernel then reads the backing file itself. The page cache
// path keeps mmap working.
//
// The daemon must never read its own mount: go-fuse documents deadlocks
// when the serving process faults pages of its own mount.
package fs
