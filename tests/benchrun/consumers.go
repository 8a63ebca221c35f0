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
	size, row swarm.ByteSize
}

func init() {
	register(scenario{name: "consumers", order: 30, run: runConsumers, flags: func(fs *pflag.FlagSet) {
		fs.Var(&consumerFlags.size, "consumer-size", "size of the qcow2 image and of the sqlite database (default 1 GiB; --quick 64 MiB)")
		fs.Var(&consumerFlags.row, "consumer-row-size", "blob bytes per row of the sqlite database (default 1000)")
	}})
}

// consumerRun is one cold run of a real program through the mount.
type consumerRun struct {
	Name        string   `json:"name"`
	Command     []string `json:"command"`
	Size        int64    `json:"object_bytes"`
	PieceLength int64    `json:"piece_length"`
	Seconds     float64  `json:"seconds"`
	// Fetched is what the node received from peers and the origin during
	// the run; Pieces the object's pieces verified on it afterwards.
	Fetched int64   `json:"fetched_bytes"`
	Pieces  int64   `json:"pieces_fetched"`
	Share   float64 `json:"fetched_share"` // Fetched / Size
	Output  string  `json:"output"`
	// BuildSeconds is how long making the file took (not a figure of
	// swarmfs).
	BuildSeconds float64 `json:"build_seconds"`
}

type consumersReport struct {
	Rows int64         `json:"sqlite_rows"`
	Runs []consumerRun `json:"runs"`
}

// consumer is a program that reads an object through the mount.
type consumer struct {
	name, object string
	file         string                // where build makes it
	build        []string              // the command that makes file
	args         func(string) []string // runs on the mounted path
	want         string                // in its output when it read right
}

// Consumers' time limits: building a file, and one run through the mount.
const (
	buildTimeout   = 10 * time.Minute
	consumeTimeout = 5 * time.Minute
)

func runConsumers(ctx context.Context, e *env) (section, error) {
	for _, t := range [][2]string{{"qemu-img", "qemu-utils"}, {"sqlite3", "sqlite3"}} {
		if _, err := exec.LookPath(t[0]); err != nil {
			return section{}, fmt.Errorf("%s is missing (Debian package %s): %w", t[0], t[1], err)
		}
	}
	size, row := int64(1<<30), int64(1000)
	if e.quick {
		size = 64 << 20
	}
	if consumerFlags.size > 0 {
		size = int64(consumerFlags.size)
	}
	if consumerFlags.row > 0 {
		row = int64(consumerFlags.row)
	}
	c, err := newCluster(e, "consumers")
	if err != nil {
		return section{}, err
	}
	defer c.close()

	// About row+24 bytes a row: four 1000-byte rows fill a 4 KiB page.
	rows := size / (row + 24)
	key := rows / 2
	img, db := filepath.Join(c.dir, "disk.qcow2"), filepath.Join(c.dir, "data.db")
	consumers := []consumer{{
		name:   "qemu-img info, qcow2",
		object: "disk.qcow2",
		file:   img,
		build:  []string{"qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=full", img, fmt.Sprint(size)},
		args:   func(p string) []string { return []string{"qemu-img", "info", "--output=json", p} },
		want:   fmt.Sprintf(`"virtual-size": %d`, size),
	}, {
		name:   "sqlite3 point query",
		object: "data.db",
		file:   db,
		build: []string{"sqlite3", db, fmt.Sprintf(`PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) INSERT INTO t SELECT x, randomblob(%d) FROM c;`, rows, row)},
		// immutable: a read-only medium, no locks and no journal lookups.
		args: func(p string) []string {
			return []string{"sqlite3", "file:" + p + "?immutable=1", fmt.Sprintf("SELECT id, length(v) FROM t WHERE id = %d", key)}
		},
		want: fmt.Sprintf("%d|%d", key, row),
	}}

	// Build the files, and serve them from the origin.
	runs := make([]consumerRun, len(consumers))
	for i, k := range consumers {
		t := time.Now()
		if err := runTool(ctx, buildTimeout, k.build...); err != nil {
			return section{}, fmt.Errorf("build %s: %w", k.object, err)
		}
		runs[i].BuildSeconds = time.Since(t).Seconds()
		e.log.Info("consumers: built", "file", k.object, "took", time.Since(t).Round(time.Millisecond))
		b, err := os.ReadFile(k.file)
		if err != nil {
			return section{}, err
		}
		c.origin.Put("/"+k.object, b)
		os.Remove(k.file)
	}

	// One node converts them; a fresh one reads them through its mount.
	src, _, err := c.start(ctx, "src", false)
	if err != nil {
		return section{}, err
	}
	for _, k := range consumers {
		if _, err := add(ctx, src, c.origin.URL("/"+k.object), "consumers/"+k.object); err != nil {
			return section{}, err
		}
	}
	reader, mnt, err := c.start(ctx, "reader", true, "--background", "never")
	if err != nil {
		return section{}, err
	}
	for i, k := range consumers {
		run := &runs[i]
		run.Name = k.name
		path := filepath.Join(mnt, "consumers", k.object)
		run.Command = k.args(path)
		if err := waitFile(ctx, reader, path); err != nil {
			return section{}, err
		}
		if err := dropCaches(); err != nil {
			return section{}, err
		}
		before, err := received(ctx, reader)
		if err != nil {
			return section{}, err
		}
		t := time.Now()
		out, err := toolOutput(ctx, consumeTimeout, run.Command...)
		run.Seconds = time.Since(t).Seconds()
		if err != nil {
			return section{}, err
		}
		if !strings.Contains(out, k.want) {
			return section{}, fmt.Errorf("%s printed %q, want %q in it", run.Command[0], out, k.want)
		}
		after, err := received(ctx, reader)
		if err != nil {
			return section{}, err
		}
		o, err := objectStat(ctx, reader, "consumers/"+k.object)
		if err != nil {
			return section{}, err
		}
		run.Size, run.PieceLength = o.Size, o.PieceLength
		run.Fetched = after - before
		run.Pieces = (o.BytesCompleted + o.PieceLength - 1) / o.PieceLength
		run.Share = float64(run.Fetched) / float64(o.Size)
		run.Output = strings.TrimSpace(out)
		if len(run.Output) > 200 {
			run.Output = run.Output[:200] + "…"
		}
	}
	r := consumersReport{Rows: rows, Runs: runs}
	return section{Markdown: consumersMarkdown(&r), Data: &r}, nil
}

// runTool runs a command within d; its output goes into the error.
func runTool(ctx context.Context, d time.Duration, args ...string) error {
	_, err := toolOutput(ctx, d, args...)
	return err
}

// toolOutput runs a command within d and returns its combined output.
func toolOutput(ctx context.Context, d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func consumersMarkdown(r *consumersReport) string {
	var b strings.Builder
	b.WriteString("### Consumers, cold\n\nOne node converts each file; a fresh node with `--background never` mounts it, the page cache is dropped, and the real program reads through the mount (sqlite3 opens the database `immutable=1`, as on read-only media). Fetched is what the reader received from peers and the origin.\n\n")
	t := table{head: []string{"figure", "value", "bound", "ratio"}}
	for _, r := range r.Runs {
		t.add(r.Name+", time", secs(r.Seconds), "", "")
		t.add(r.Name+", fetched", fmt.Sprintf("%s; pieces: %d of %s", humanize.IBytes(uint64(r.Fetched)), r.Pieces, humanize.IBytes(uint64(r.PieceLength))),
			"object "+humanize.IBytes(uint64(r.Size)), fmt.Sprintf("%.2f%%", 100*r.Share))
	}
	b.WriteString(t.String())
	fmt.Fprintf(&b, "\nBuilding the files took %s (qcow2, preallocated) and %s (sqlite, %d rows, one transaction).\n",
		secs(r.Runs[0].BuildSeconds), secs(r.Runs[1].BuildSeconds), r.Rows)
	return b.String()
}
