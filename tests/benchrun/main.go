// Command benchrun runs the swarmfs benchmarks of issue 7 and writes their
// figures: a markdown table on stdout, and report.json plus the SVG
// completion-time chart in --out (outside git). "make bench" runs it with
// the default (network-bound) preset; "--quick" runs every scenario small,
// to check that the harness works, not the figures.
//
// Scenarios (each can be chosen with --only):
//   - dist: N nodes fetch one object; swarmfs, HTTP-only and libtorrent
//     side by side under the same caps, against the Kumar–Ross bound;
//   - lazy: reads through the mount (first byte, random 4 KiB reads,
//     sequential throughput, reads under a background download);
//   - consumers: qemu-img info and a sqlite3 point query, cold;
//   - control: announce throughput, ls of a large directory, adding many
//     small objects.
//
// Every process it starts listens on loopback only. It must run as root
// (FUSE mounts, drop_caches).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// env is what every scenario gets.
type env struct {
	bin   string // directory holding swarmfsd, mountctl, swarmfs-tracker
	dir   string // scratch directory of this run; scenarios use subdirs named after themselves
	out   string // output directory (report.json, charts)
	quick bool   // small sizes: checks the harness, not the figures
	log   *slog.Logger
}

// section is one scenario's result: a markdown block for stdout and
// BENCHMARKS.md, and data for report.json.
type section struct {
	Name     string `json:"name"`
	Markdown string `json:"-"`
	Data     any    `json:"data"`
}

// scenario is one benchmark; scenarios register themselves in init.
type scenario struct {
	name  string
	order int
	// flags adds the scenario's flags; run is called after parsing.
	flags func(fs *pflag.FlagSet)
	run   func(ctx context.Context, e *env) (section, error)
}

var scenarios []scenario

func register(s scenario) { scenarios = append(scenarios, s) }

// Report is report.json.
type Report struct {
	Started  time.Time `json:"started"`
	Took     float64   `json:"took_seconds"`
	Quick    bool      `json:"quick"`
	Machine  Machine   `json:"machine"`
	Sections []section `json:"sections"`
	Errors   []string  `json:"errors,omitempty"`
}

func main() { os.Exit(run()) }

// run is main with its deferred clean-up run before the exit.
func run() int {
	slices.SortFunc(scenarios, func(a, b scenario) int { return a.order - b.order })
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
		if s.flags != nil {
			s.flags(pflag.CommandLine)
		}
	}
	var (
		bin     = pflag.String("bin", "bin", "directory holding swarmfsd, mountctl and swarmfs-tracker")
		out     = pflag.String("out", "bench-out", "output directory for report.json and charts (keep it outside git)")
		dir     = pflag.String("dir", "", "scratch directory for node state (default: a new directory under $TMPDIR)")
		only    = pflag.StringSlice("only", nil, "run only these scenarios ("+strings.Join(names, ", ")+")")
		quick   = pflag.Bool("quick", false, "run every scenario small: checks the harness, not the figures")
		timeout = pflag.Duration("timeout", 40*time.Minute, "give up after this long")
		verbose = pflag.Bool("verbose", false, "log progress at debug level")
	)
	pflag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for _, o := range *only {
		if !slices.Contains(names, o) {
			fmt.Fprintf(os.Stderr, "benchrun: unknown scenario %q (have %s)\n", o, strings.Join(names, ", "))
			return 2
		}
	}
	e, err := newEnv(*bin, *dir, *out, *quick, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		return 1
	}
	if *dir == "" {
		defer os.RemoveAll(e.dir)
	}
	rep := Report{Started: time.Now(), Quick: *quick, Machine: readMachine(ctx)}
	for _, s := range scenarios {
		if len(*only) > 0 && !slices.Contains(*only, s.name) {
			continue
		}
		log.Info("scenario", "name", s.name)
		t0 := time.Now()
		sec, err := s.run(ctx, e)
		if err != nil {
			log.Error("scenario failed", "name", s.name, "err", err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", s.name, err))
			continue
		}
		log.Info("scenario done", "name", s.name, "took", time.Since(t0).Round(time.Second))
		sec.Name = s.name
		rep.Sections = append(rep.Sections, sec)
		fmt.Println(sec.Markdown)
		if err := writeReport(e.out, &rep); err != nil { // after each scenario: a later failure keeps the earlier figures
			log.Error("write report", "err", err)
		}
	}
	rep.Took = time.Since(rep.Started).Seconds()
	printMachine(os.Stdout, rep.Machine)
	if err := writeReport(e.out, &rep); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		return 1
	}
	fmt.Printf("report: %s\n", filepath.Join(e.out, "report.json"))
	if len(rep.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "benchrun: %d scenario(s) failed:\n  %s\n", len(rep.Errors), strings.Join(rep.Errors, "\n  "))
		return 1
	}
	return 0
}

func newEnv(bin, dir, out string, quick bool, log *slog.Logger) (*env, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run as root: the benchmarks mount FUSE filesystems and drop the page cache")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"swarmfsd", "mountctl", "swarmfs-tracker"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%w (run 'make build' first)", err)
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "swarmfs-bench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	return &env{bin: bin, dir: dir, out: out, quick: quick, log: log}, nil
}

func writeReport(out string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// subdir makes a fresh scratch directory for a scenario.
func (e *env) subdir(name string) (string, error) {
	d := filepath.Join(e.dir, name)
	if err := os.RemoveAll(d); err != nil {
		return "", err
	}
	return d, os.MkdirAll(d, 0o755)
}
