package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"swarmfs/swarm"
	"swarmfs/swarm/swarmtest"
)

// Presets of the distribution scenario (issue 7). Flags override each size.
// Pieces are 1 MiB for every system: with 4 MiB pieces swarmfs took 1.4×
// longer in the network preset (a piece must be whole before it is passed
// on), and libtorrent gets the very same torrent layout.
var distPresets = map[string]distParams{
	// The caps, not the CPU, are the limit: 16 × 4 MiB/s + 8 MiB/s is
	// 72 MiB/s of upload in all.
	"network": {Preset: "network", Nodes: 16, Size: 256 << 20, Upload: 4 << 20, SeedUpload: 8 << 20, PieceLength: 1 << 20},
	// On 2 cores the CPU is the limit: this preset measures efficiency.
	"cpu": {Preset: "cpu", Nodes: 16, Size: 512 << 20, Upload: 25 << 20, SeedUpload: 50 << 20, PieceLength: 1 << 20},
	// --quick: checks the harness, not the figures.
	"quick": {Preset: "quick", Nodes: 3, Size: 16 << 20, Upload: 4 << 20, SeedUpload: 8 << 20, PieceLength: 1 << 20},
}

var distFlags struct {
	preset                                    string
	nodes                                     int
	size, upload, seedUpload, download, piece swarm.ByteSize
	systems                                   []string
	httpAlone                                 bool
	profile                                   time.Duration
}

var distSystems = []string{"swarmfs", "libtorrent", "http"}

func init() {
	register(scenario{name: "dist", order: 10, run: runDist, flags: func(fs *pflag.FlagSet) {
		fs.StringVar(&distFlags.preset, "dist-preset", "network", "distribution preset: network (caps bind) or cpu (CPU binds); --quick uses a small one")
		fs.IntVar(&distFlags.nodes, "dist-nodes", 0, "N, fetching nodes (default: the preset's)")
		fs.Var(&distFlags.size, "dist-size", "F, object size (default: the preset's)")
		fs.Var(&distFlags.upload, "dist-upload", "U, each fetching node's upload cap per second (default: the preset's)")
		fs.Var(&distFlags.seedUpload, "dist-seed-upload", "U_s, the origin's (source's) upload cap per second (default: the preset's)")
		fs.Var(&distFlags.download, "dist-download", "D, each node's download cap per second (default: none)")
		fs.Var(&distFlags.piece, "dist-piece-length", "piece length for swarmfs and libtorrent (default: the preset's)")
		fs.StringSliceVar(&distFlags.systems, "dist-systems", distSystems, "systems to run")
		fs.DurationVar(&distFlags.profile, "dist-profile", 0, "take a CPU profile of this length (pprof) of the swarmfs source and of one fetching node during distribution, into --out")
		fs.BoolVar(&distFlags.httpAlone, "dist-http-alone", false, "run the HTTP baseline on its own instead of alongside the swarms (it is slow: N·F/U_s)")
	}})
}

func distParamsFromFlags(quick bool) (distParams, error) {
	name := distFlags.preset
	if quick {
		name = "quick"
	}
	p, ok := distPresets[name]
	if !ok {
		return p, fmt.Errorf("unknown --dist-preset %q (network, cpu)", name)
	}
	if distFlags.nodes > 0 {
		p.Nodes = distFlags.nodes
	}
	for _, o := range []struct {
		v   swarm.ByteSize
		dst *int64
	}{{distFlags.size, &p.Size}, {distFlags.upload, &p.Upload}, {distFlags.seedUpload, &p.SeedUpload}, {distFlags.download, &p.Download}, {distFlags.piece, &p.PieceLength}} {
		if o.v > 0 {
			*o.dst = int64(o.v)
		}
	}
	for _, s := range distFlags.systems {
		if !slices.Contains(distSystems, s) {
			return p, fmt.Errorf("unknown system %q in --dist-systems (%s)", s, strings.Join(distSystems, ", "))
		}
	}
	if p.Nodes < 1 || p.Size < 1 {
		return p, fmt.Errorf("need at least one node and one byte")
	}
	return p, nil
}

// distSummary is one system's line of the report.
type distSummary struct {
	distResult
	P50        float64 `json:"p50_seconds"`
	P90        float64 `json:"p90_seconds"`
	Max        float64 `json:"max_seconds"`
	P50OverMin float64 `json:"p50_over_tmin"`
	MaxOverMin float64 `json:"max_over_tmin"`
	CPUPerGiB  float64 `json:"cpu_seconds_per_gib"`
	// SourceMultiple is SourceBytes/F.
	SourceMultiple float64 `json:"source_multiple"`
}

// distReport is the scenario's report.json data.
type distReport struct {
	Params  distParams    `json:"params"`
	TMin    float64       `json:"tmin_seconds"`
	Systems []distSummary `json:"systems"`
	Swarmfs *swarmfsRun   `json:"swarmfs,omitempty"`
	// OriginMultiple is all the swarmfs origin sent (conversion and
	// fallback) over F.
	OriginMultiple float64  `json:"swarmfs_origin_multiple"`
	Chart          string   `json:"chart,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

func runDist(ctx context.Context, e *env) (section, error) {
	p, err := distParamsFromFlags(e.quick)
	if err != nil {
		return section{}, err
	}
	want := func(s string) bool { return slices.Contains(distFlags.systems, s) }
	e.log.Info("dist: generating object", "size", p.Size)
	data := swarmtest.Data(7, p.Size)
	sum := swarmtest.SHA256(data)
	rep := distReport{Params: p, TMin: p.tMin()}
	results := map[string]distResult{}
	fail := func(sys string, err error) {
		e.log.Error("dist: system failed", "system", sys, "err", err)
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", sys, err))
	}

	// The HTTP baseline takes N·F/U_s and needs next to no CPU, so by
	// default it runs alongside the swarms (its own origin and cap).
	httpDone := make(chan struct{})
	var httpRes distResult
	var httpErr error
	runHTTPNow := func() {
		defer close(httpDone)
		if want("http") {
			e.log.Info("dist: http baseline", "clients", p.Nodes)
			httpRes, httpErr = runHTTP(ctx, e, p, data, sum)
		}
	}
	if !distFlags.httpAlone {
		go runHTTPNow()
	}
	if want("swarmfs") {
		sr, err := runSwarmfs(ctx, e, p, data, sum)
		if err != nil {
			fail("swarmfs", err)
		} else {
			results["swarmfs"] = sr.distResult
			rep.Swarmfs = &sr
			rep.OriginMultiple = float64(sr.OriginBytes) / float64(p.Size)
		}
	}
	if want("libtorrent") {
		path := filepath.Join(e.dir, "dist-object.bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return section{}, fmt.Errorf("write object for libtorrent: %w", err)
		}
		lr, err := runLibtorrent(ctx, e, p, path, sum)
		os.Remove(path)
		if err != nil {
			fail("libtorrent", err)
		} else {
			results["libtorrent"] = lr
		}
	}
	if distFlags.httpAlone {
		runHTTPNow()
	}
	<-httpDone
	if want("http") {
		if httpErr != nil {
			fail("http", httpErr)
		} else {
			if !distFlags.httpAlone {
				httpRes.Notes = append(httpRes.Notes, "ran alongside the swarms (own origin and cap)")
			}
			results["http"] = httpRes
		}
	}
	for _, s := range distSystems {
		if r, ok := results[s]; ok {
			rep.Systems = append(rep.Systems, summarize(r, p, rep.TMin))
		}
	}
	chart := filepath.Join(e.out, fmt.Sprintf("dist-%s.svg", p.Preset))
	if err := cdfChart(chart, p, rep.TMin, rep.Systems); err != nil {
		e.log.Error("dist: chart", "err", err)
	} else {
		rep.Chart = chart
	}
	sec := section{Markdown: distMarkdown(&rep), Data: &rep}
	if len(rep.Errors) > 0 {
		fmt.Println(sec.Markdown)
		return sec, fmt.Errorf("%s", strings.Join(rep.Errors, "; "))
	}
	return sec, nil
}

func summarize(r distResult, p distParams, tmin float64) distSummary {
	s := distSummary{distResult: r,
		P50: quantile(r.Times, 0.5), P90: quantile(r.Times, 0.9), Max: quantile(r.Times, 1),
		CPUPerGiB:      r.cpuPerGiB(),
		SourceMultiple: float64(r.SourceBytes) / float64(p.Size),
	}
	s.P50OverMin, s.MaxOverMin = s.P50/tmin, s.Max/tmin
	for _, t := range r.Times {
		if math.IsNaN(t) {
			s.Max = math.NaN()
		}
	}
	return s
}

func rate(r int64) string {
	if r <= 0 {
		return "uncapped"
	}
	return humanize.IBytes(uint64(r)) + "/s"
}

func distMarkdown(r *distReport) string {
	p := r.Params
	var b strings.Builder
	fmt.Fprintf(&b, "### Distribution, %s preset\n\n", p.Preset)
	fmt.Fprintf(&b, "N=%d nodes, F=%s, U=%s per node, U_s=%s, D=%s, piece %s. T_min = max(F/U_s, F/D, N·F/(U_s+N·U)) = **%s**.\n\n",
		p.Nodes, humanize.IBytes(uint64(p.Size)), rate(p.Upload), rate(p.SeedUpload), rate(p.Download), humanize.IBytes(uint64(p.PieceLength)), secs(r.TMin))
	t := table{head: []string{"system", "p50", "p90", "max", "p50/T_min", "max/T_min", "source sent (×F)", "CPU s/GiB", "verified"}}
	for _, s := range r.Systems {
		t.add(s.System, secs(s.P50), secs(s.P90), secs(s.Max), fmt.Sprintf("%.2f", s.P50OverMin), fmt.Sprintf("%.2f", s.MaxOverMin),
			fmt.Sprintf("%.3f", s.SourceMultiple), fmt.Sprintf("%.2f", s.CPUPerGiB), s.Verified)
	}
	b.WriteString(t.String())
	by := map[string]distSummary{}
	for _, s := range r.Systems {
		by[s.System] = s
	}
	sw, okS := by["swarmfs"]
	for _, other := range []string{"libtorrent", "http"} {
		o, ok := by[other]
		if okS && ok {
			fmt.Fprintf(&b, "\nswarmfs/%s: p50 %s, max %s, CPU per GiB %s.", other, ratio(sw.P50, o.P50), ratio(sw.Max, o.Max), ratio(sw.CPUPerGiB, o.CPUPerGiB))
		}
	}
	if r.Swarmfs != nil {
		fmt.Fprintf(&b, "\nswarmfs: conversion took %s before the clock started; the origin sent %.3f×F in all (%s of fallback during distribution). CPU: source (with etcd) %s, tracker %s, busiest fetching node %s.",
			secs(r.Swarmfs.ConvertSeconds), r.OriginMultiple, humanize.IBytes(uint64(r.Swarmfs.FallbackBytes)),
			secs(r.Swarmfs.CPUSource), secs(r.Swarmfs.CPUTracker), secs(r.Swarmfs.CPUFetcherMax))
		if fs := r.Swarmfs.FetcherSent; len(fs) > 0 {
			fmt.Fprintf(&b, " Fetching nodes uploaded %s to %s each.", humanize.IBytes(uint64(slices.Min(fs))), humanize.IBytes(uint64(slices.Max(fs))))
		}
	}
	for _, s := range r.Systems {
		if len(s.Notes) > 0 {
			fmt.Fprintf(&b, "\n%s: %s.", s.System, strings.Join(s.Notes, "; "))
		}
	}
	if okS {
		b.WriteString("\n\nTargets: ")
		var ts []string
		check := func(name string, v, bound float64) {
			verdict := "met"
			if math.IsNaN(v) || v > bound {
				verdict = "NOT met"
			}
			ts = append(ts, fmt.Sprintf("%s %.2f ≤ %.2f %s", name, v, bound, verdict))
		}
		if p.Preset == "network" {
			check("p50/T_min", sw.P50OverMin, 1.10)
			check("max/T_min", sw.MaxOverMin, 1.2)
		}
		check("origin ×F", r.OriginMultiple, 1.02)
		if lt, ok := by["libtorrent"]; ok {
			check("p50 vs libtorrent", sw.P50/lt.P50, 0.85)
			check("CPU/GiB vs libtorrent", sw.CPUPerGiB/lt.CPUPerGiB, 0.2)
		}
		b.WriteString(strings.Join(ts, "; ") + ".")
	}
	if r.Chart != "" {
		fmt.Fprintf(&b, "\n\nChart: %s", r.Chart)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\n\nFAILED: %s", e)
	}
	b.WriteString("\n")
	return b.String()
}
