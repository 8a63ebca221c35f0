package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// dataFileName is the name of an object's data file inside its directory.
// Objects are single files; naming them by infohash keeps untrusted names
// out of paths.
const dataFileName = "data"

// store is file storage laid out as <DataDir>/<infohash>/data, with piece
// completion persisted in bolt. Part files are off: completion comes only
// from the persisted store, never from a file's name or size, so a file is
// trusted only for pieces this node verified (or hashed while converting).
// Pieces with unknown completion are hashed before use.
type store struct {
	dir        string
	completion *countingCompletion
	impl       storage.ClientImplCloser

	mu       sync.Mutex
	torrents map[metainfo.Hash]storage.TorrentImpl
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	bolt, err := storage.NewBoltPieceCompletion(dir)
	if err != nil {
		return nil, fmt.Errorf("open piece completion db in %s: %w", dir, err)
	}
	s := &store{dir: dir, completion: &countingCompletion{PieceCompletion: bolt}, torrents: map[metainfo.Hash]storage.TorrentImpl{}}
	s.impl = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir: dir,
		TorrentDirMaker: func(baseDir string, _ *metainfo.Info, ih metainfo.Hash) string {
			return filepath.Join(baseDir, ih.HexString())
		},
		FilePathMaker:   func(storage.FilePathMakerOpts) string { return dataFileName },
		PieceCompletion: s.completion,
		UsePartFiles:    g.Some(false),
	})
	return s, nil
}

// OpenTorrent implements storage.ClientImpl and remembers the torrent's
// storage so the origin fallback can write pieces through it.
func (s *store) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	ti, err := s.impl.OpenTorrent(ctx, info, ih)
	if err != nil {
		return ti, err
	}
	s.mu.Lock()
	s.torrents[ih] = ti
	s.mu.Unlock()
	close := ti.Close
	ti.Close = func() error {
		s.mu.Lock()
		delete(s.torrents, ih)
		s.mu.Unlock()
		if close != nil {
			return close()
		}
		return nil
	}
	return ti, nil
}

func (s *store) Close() error { return s.impl.Close() }

func (s *store) objectDir(ih metainfo.Hash) string { return filepath.Join(s.dir, ih.HexString()) }

func (s *store) dataPath(ih metainfo.Hash) string {
	return filepath.Join(s.objectDir(ih), dataFileName)
}

func (s *store) tmpDir() string { return filepath.Join(s.dir, ".tmp") }

// writePiece writes verified-elsewhere bytes of piece p through the torrent's
// storage. The caller must then have the torrent verify the piece.
func (s *store) writePiece(ih metainfo.Hash, p metainfo.Piece, b []byte) error {
	s.mu.Lock()
	ti, ok := s.torrents[ih]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("write piece %d: torrent %s not open", p.Index(), ih)
	}
	if _, err := ti.Piece(p).WriteAt(b, 0); err != nil {
		return fmt.Errorf("write piece %d: %w", p.Index(), err)
	}
	return nil
}

// setCompletion records the completion of pieces [0, n) without counting
// them as verified.
func (s *store) setCompletion(ih metainfo.Hash, n int, complete bool) error {
	for i := range n {
		if err := s.completion.PieceCompletion.Set(metainfo.PieceKey{InfoHash: ih, Index: i}, complete); err != nil {
			return fmt.Errorf("set piece %d completion: %w", i, err)
		}
	}
	return nil
}

// countingCompletion counts the outcomes of piece verification. anacrolix
// marks a piece complete only after its hash matched, and not complete after
// a mismatch.
type countingCompletion struct {
	storage.PieceCompletion
	verified atomic.Int64
	failed   atomic.Int64
}

func (c *countingCompletion) Set(pk metainfo.PieceKey, complete bool) error {
	if complete {
		c.verified.Add(1)
	} else {
		c.failed.Add(1)
	}
	return c.PieceCompletion.Set(pk, complete)
}

// preallocate creates an object's data file with all its blocks reserved,
// before the first piece arrives. A full disk then fails the join with
// ErrNoSpace instead of a write error in the middle of a download, and
// chunk writes into reserved blocks cost less CPU than extending a sparse
// file. Filesystems without fallocate keep a sparse file.
func (s *store) preallocate(ih metainfo.Hash, size int64) error {
	p := s.dataPath(ih)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create object dir: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil // a concurrent join of the same object made it
	}
	if err != nil {
		return fmt.Errorf("create data file: %w", err)
	}
	if size == 0 {
		return f.Close()
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	f.Close()
	switch {
	case err == nil, errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		return nil
	case errors.Is(err, unix.ENOSPC):
		os.Remove(p)
		return fmt.Errorf("%w: %s needs %s in %s", ErrNoSpace, ih, humanize.IBytes(uint64(size)), s.dir)
	default:
		os.Remove(p)
		return fmt.Errorf("reserve %s for %s: %w", humanize.IBytes(uint64(size)), ih, err)
	}
}
