package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"swarmfs/tests/harness"
)

// benchReport is the part of benchrun's report.json this test reads.
type benchReport struct {
	Quick    bool `json:"quick"`
	Sections []struct {
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
	} `json:"sections"`
	Errors []string `json:"errors"`
}

type benchDist struct {
	Params struct {
		Nodes int   `json:"nodes"`
		Size  int64 `json:"size"`
	} `json:"params"`
	TMin    float64 `json:"tmin_seconds"`
	Systems []struct {
		System      string    `json:"system"`
		Times       []float64 `json:"times_seconds"`
		CPUSeconds  float64   `json:"cpu_seconds"`
		Delivered   int64     `json:"delivered_bytes"`
		SourceBytes int64     `json:"source_bytes"`
		Verified    bool      `json:"verified"`
	} `json:"systems"`
	OriginMultiple float64 `json:"swarmfs_origin_multiple"`
	Chart          string  `json:"chart"`
}

// The benchmark harness in --quick mode (make bench runs it full size):
// every scenario runs small and reports; this checks that the harness
// works and that what it reports is complete and verified, not the
// figures.
func TestBenchQuick(t *testing.T) {
	harness.RequireFUSE(t)
	for _, tool := range [][2]string{{"curl", "curl"}, {"opentracker", "opentracker"}, {"qemu-img", "qemu-utils"}, {"sqlite3", "sqlite3"}} {
		harness.RequireTool(t, tool[0], tool[1])
	}
	harness.RequirePython(t, "libtorrent", "python3-libtorrent")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	b := bin(t)
	out, dir := t.TempDir(), t.TempDir()
	cmd := exec.CommandContext(ctx, filepath.Join(b, "benchrun"), "--quick", "--bin", b, "--out", out, "--dir", dir)
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("benchrun --quick: %v\n%s\n%s", err, stdout, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal(mustRead(t, filepath.Join(out, "report.json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Quick || len(rep.Errors) > 0 {
		t.Fatalf("report: quick=%v errors=%v", rep.Quick, rep.Errors)
	}
	var names []string
	for _, s := range rep.Sections {
		names = append(names, s.Name)
	}
	if want := []string{"dist", "lazy", "consumers", "control"}; !slices.Equal(names, want) {
		t.Fatalf("sections %v, want %v", names, want)
	}
	var d benchDist
	if err := json.Unmarshal(rep.Sections[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	var lazy struct {
		PieceSeconds float64 `json:"piece_seconds"`
		TTFBSeconds  float64 `json:"ttfb_seconds"`
		Cold, Warm   struct {
			N int `json:"reads"`
		}
		Seq []struct {
			Cold float64 `json:"cold_mbps"`
		} `json:"sequential"`
	}
	var cons struct {
		Runs []struct {
			Name    string `json:"name"`
			Size    int64  `json:"object_bytes"`
			Fetched int64  `json:"fetched_bytes"`
		} `json:"runs"`
	}
	var ctl struct {
		Announce struct {
			PerSecond float64 `json:"per_second"`
			Failed    int64   `json:"failed"`
		} `json:"announce"`
		Objects, Adds int
	}
	for i, dst := range []any{&lazy, &cons, &ctl} {
		if err := json.Unmarshal(rep.Sections[i+1].Data, dst); err != nil {
			t.Fatal(err)
		}
	}
	if lazy.PieceSeconds <= 0 || lazy.TTFBSeconds <= 0 || lazy.Cold.N == 0 || lazy.Warm.N != lazy.Cold.N || len(lazy.Seq) != 3 || lazy.Seq[0].Cold <= 0 {
		t.Errorf("lazy: %+v", lazy)
	}
	if len(cons.Runs) != 2 {
		t.Errorf("consumers: %d runs, want 2", len(cons.Runs))
	}
	for _, r := range cons.Runs {
		// A cold consumer fetches something, and not the whole object.
		if r.Fetched <= 0 || r.Fetched >= r.Size {
			t.Errorf("consumer %s fetched %d of %d bytes", r.Name, r.Fetched, r.Size)
		}
	}
	if ctl.Announce.PerSecond <= 0 || ctl.Announce.Failed != 0 || ctl.Objects == 0 || ctl.Adds == 0 {
		t.Errorf("control: %+v", ctl)
	}
	if d.TMin <= 0 || d.Params.Nodes < 2 {
		t.Errorf("dist: T_min %v for %d nodes", d.TMin, d.Params.Nodes)
	}
	var systems []string
	for _, s := range d.Systems {
		systems = append(systems, s.System)
		if len(s.Times) != d.Params.Nodes || !s.Verified || s.CPUSeconds <= 0 || s.Delivered != int64(d.Params.Nodes)*d.Params.Size || s.SourceBytes < d.Params.Size {
			t.Errorf("dist %s: %d times for %d nodes, verified %v, cpu %v s, delivered %d, source sent %d",
				s.System, len(s.Times), d.Params.Nodes, s.Verified, s.CPUSeconds, s.Delivered, s.SourceBytes)
		}
	}
	if want := []string{"swarmfs", "libtorrent", "http"}; !slices.Equal(systems, want) {
		t.Errorf("dist systems %v, want %v", systems, want)
	}
	if d.OriginMultiple < 1 {
		t.Errorf("swarmfs origin sent %.3f×F, less than the one conversion", d.OriginMultiple)
	}
	if svg, err := os.ReadFile(d.Chart); err != nil || !strings.Contains(string(svg), "<svg") {
		t.Errorf("chart %s: %v", d.Chart, err)
	}
	for _, want := range []string{"### Distribution", "| swarmfs |", "T_min", "### Lazy reads", "time to first byte", "### Consumers", "qemu-img info", "sqlite3 point query", "### Control plane", "announce throughput"} {
		if !strings.Contains(string(stdout), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
