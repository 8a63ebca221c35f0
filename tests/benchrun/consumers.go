package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"swarmfs/swarm"
)

var consumerFlags struct {
	size swarm.ByteSize
}

func init() {
	register(scenario{name: "consumers", order: 30, run: runConsumers, flags: func(fs *pflag.FlagSet) {
		fs.Var(&consumerFlags.size, "consumer-size", "size of the qcow2 image and of the sqlite database (default 1 GiB; --quick 64 MiB)")
	}})
}

// consumerRun is one cold consumer run through the mount.
type consumerRun struct {
	Name        string  `json:"name"`
	Command     string  `json:"command"`
	Size        int64   `json:"object_bytes"`
	PieceLength int64   `json:"piece_length"`
	Seconds     float64 `json:"seconds"`
	Fetched     int64   `json:"fetched_bytes"`
	Pieces      float64 `json:"pieces_fetched"`
	Output      string  `json:"output"`
	// BuildSeconds is the time to make the file (not measured against
	// anything).
	BuildSeconds float64 `json:"build_seconds"`
}

type consumersReport struct {
	Runs []consumerRun `json:"runs"`
}

func runConsumers(ctx context.Context, e *env) (section, error) {
	for _, t := range [][2]string{{"qemu-img", "qemu-utils"}, {"sqlite3", "sqlite3"}} {
		if _, err := exec.LookPath(t[0]); err != nil {
			return section{}, fmt.Errorf("consumers: %s is missing (Debian package %s): %w", t[0], t[1], err)
		}
	}
	size := int64(1 << 30)
	if e.quick {
		size = 64 << 20
	}
	if consumerFlags.size > 0 {
		size = int64(consumerFlags.size)
	}
	c, err := newCluster(e, "consumers")
	if err != nil {
		return section{}, err
	}
	defer c.close()

	// The files, built in the scratch dir and served by the origin.
	img := filepath.Join(c.dir, "disk.qcow2")
	t := time.Now()
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=full", img, fmt.Sprint(size)).CombinedOutput(); err != nil {
		return section{}, fmt.Errorf("consumers: qemu-img create: %w: %s", err, out)
	}
	imgBuild := time.Since(t)
	db := filepath.Join(c.dir, "data.db")
	rows := size / 1100 // ~1 KiB rows, with b-tree overhead
	t = time.Now()
	sql := fmt.Sprintf(`PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) INSERT INTO t SELECT x, randomblob(1000) FROM c;`, rows)
	if out, err := exec.CommandContext(ctx, "sqlite3", db, sql).CombinedOutput(); err != nil {
		return section{}, fmt.Errorf("consumers: build sqlite database: %w: %s", err, out)
	}
	dbBuild := time.Since(t)
	for _, f := range []struct{ path, name string }{{img, "/disk.qcow2"}, {db, "/data.db"}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return section{}, err
		}
		c.origin.Put(f.name, b)
		os.Remove(f.path)
	}

	src, _, err := c.start(ctx, "src", false)
	if err != nil {
		return section{}, err
	}
	for _, p := range []string{"disk.qcow2", "data.db"} {
		if _, err := add(ctx, src, c.origin.URL("/"+p), "consumers/"+p); err != nil {
			return section{}, err
		}
	}
	reader, mnt, err := c.start(ctx, "reader", true, "--background", "never")
	if err != nil {
		return section{}, err
	}
	runs := []consumerRun{
		{Name: "qemu-img info, qcow2", Command: "qemu-img info --output=json " + filepath.Join(mnt, "consumers", "disk.qcow2"), BuildSeconds: imgBuild.Seconds()},
		{Name: "sqlite3 point query", Command: fmt.Sprintf("sqlite3 file:%s?immutable=1 SELECT id,length(v) FROM t WHERE id=%d", filepath.Join(mnt, "consumers", "data.db"), rows/2), BuildSeconds: dbBuild.Seconds()},
	}
	checks := []string{fmt.Sprintf(`"virtual-size": %d`, size), fmt.Sprintf("%d|1000", rows/2)}
	for i, f := range []string{"disk.qcow2", "data.db"} {
		path := filepath.Join(mnt, "consumers", f)
		if err := waitFile(ctx, reader, path); err != nil {
			return section{}, err
		}
		st, err := os.Stat(path)
		if err != nil {
			return section{}, err
		}
		if err := dropCaches(); err != nil {
			return section{}, err
		}
		before, err := received(ctx, reader)
		if err != nil {
			return section{}, err
		}
		args := strings.Fields(runs[i].Command)
		if i == 1 {
			args = []string{"sqlite3", "file:" + path + "?immutable=1", fmt.Sprintf("SELECT id, length(v) FROM t WHERE id = %d", rows/2)}
		}
		t := time.Now()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		runs[i].Seconds = time.Since(t).Seconds()
		if err != nil {
			return section{}, fmt.Errorf("consumers: %s: %w: %s", args[0], err, out)
		}
		if !strings.Contains(string(out), checks[i]) {
			return section{}, fmt.Errorf("consumers: %s printed %q, want %q in it", args[0], out, checks[i])
		}
		after, err := received(ctx, reader)
		if err != nil {
			return section{}, err
		}
		o, err := objectStat(ctx, reader, "consumers/"+f)
		if err != nil {
			return section{}, err
		}
		obj := o.PieceLength
		runs[i].Size, runs[i].PieceLength = st.Size(), obj
		runs[i].Fetched = after - before
		runs[i].Pieces = float64(runs[i].Fetched) / float64(obj)
		runs[i].Output = strings.TrimSpace(string(out))
		if len(runs[i].Output) > 200 {
			runs[i].Output = runs[i].Output[:200] + "…"
		}
	}
	r := consumersReport{Runs: runs}
	var b strings.Builder
	b.WriteString("### Consumers, cold\n\nA fresh node with `--background never`, page cache dropped; the real program reads through the mount.\n\n")
	tb := table{head: []string{"consumer", "object", "piece", "time", "fetched", "pieces", "share of object"}}
	for _, r := range runs {
		tb.add(r.Name, humanize.IBytes(uint64(r.Size)), humanize.IBytes(uint64(r.PieceLength)), secs(r.Seconds),
			humanize.IBytes(uint64(r.Fetched)), fmt.Sprintf("%.0f", r.Pieces), fmt.Sprintf("%.2f%%", 100*float64(r.Fetched)/float64(r.Size)))
	}
	b.WriteString(tb.String())
	fmt.Fprintf(&b, "\nBuilding the files took %s (qcow2, preallocated) and %s (sqlite, %d rows of 1000 bytes).\n", secs(imgBuild.Seconds()), secs(dbBuild.Seconds()), rows)
	return section{Markdown: b.String(), Data: &r}, nil
}
