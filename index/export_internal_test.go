package index

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// testIndex starts a one-member embedded etcd and opens an Index on it
// (indextest cannot be imported here: it imports index).
func testIndex(t *testing.T) *Index {
	t.Helper()
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	cu := fmt.Sprintf("http://127.0.0.1:%d", port())
	pu := fmt.Sprintf("http://127.0.0.1:%d", port())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := StartEmbedded(context.Background(), EmbedConfig{Dir: filepath.Join(t.TempDir(), "etcd"), ClientURL: cu, PeerURL: pu, UnsafeNoFsync: true, Quiet: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ix, err := Open(context.Background(), Config{Endpoints: []string{cu}, RequestTimeout: 5 * time.Second}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}
