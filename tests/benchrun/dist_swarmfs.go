package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"swarmfs/mountctl"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// swarmfsRun is what the swarmfs run adds to its distResult.
type swarmfsRun struct {
	distResult
	// ConvertSeconds is the converter's time to fetch the object from the
	// origin and publish it; the distribution clock starts after it.
	ConvertSeconds float64 `json:"convert_seconds"`
	// OriginBytes is every byte the origin sent: conversion and any
	// fallback reads during distribution.
	OriginBytes int64 `json:"origin_bytes"`
	// FallbackBytes is the part of OriginBytes sent during distribution.
	FallbackBytes int64 `json:"fallback_bytes"`
	// CPU seconds of the tracker, of the source node (which also runs
	// etcd) and of the busiest fetching node, within CPUSeconds.
	CPUTracker    float64 `json:"cpu_tracker_seconds"`
	CPUSource     float64 `json:"cpu_source_seconds"`
	CPUFetcherMax float64 `json:"cpu_fetcher_max_seconds"`
	// FetcherSent is what each fetching node uploaded by the time the
	// last one completed.
	FetcherSent []int64 `json:"fetcher_sent_bytes"`
}

// runSwarmfs distributes data through real swarmfsd processes: node "conv"
// (embedded etcd) converts the object from an origin capped at U_s and then
// is the source, its upload capped at U_s; a swarmfs-tracker replica; N
// fetching nodes with upload U and download D. At t0 every fetching node
// is asked (control API, in parallel) to add the same URL; each add joins
// the published object and returns when the node's copy is complete.
func runSwarmfs(ctx context.Context, e *env, p distParams, data []byte, sum string) (swarmfsRun, error) {
	r := swarmfsRun{distResult: distResult{System: "swarmfs"}}
	dir, err := e.subdir("swarmfs")
	if err != nil {
		return r, err
	}
	defer removeData(dir)
	origin, err := swarmtest.NewOrigin()
	if err != nil {
		return r, err
	}
	defer origin.Close()
	const objPath = "/dist/object.bin"
	origin.Put(objPath, data)
	origin.SetRate(p.SeedUpload)
	url := origin.URL(objPath)

	tport, err := harness.FreePort()
	if err != nil {
		return r, err
	}
	taddr := fmt.Sprintf("127.0.0.1:%d", tport)
	common := []string{"--tracker", "http://" + taddr + "/announce", "--log-level", "warn"}
	if p.PieceLength > 0 {
		common = append(common, "--piece-length", fmt.Sprint(p.PieceLength))
	}
	if distFlags.profile > 0 {
		common = append(common, "--pprof")
	}
	var nodes []*harness.Node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- { // the converter (etcd) last
			nodes[i].Stop()
		}
	}()
	conv, err := startHealthy(ctx, e.bin, dir, "conv", append(common, "--upload-rate", fmt.Sprint(p.SeedUpload))...)
	if err != nil {
		return r, err
	}
	nodes = append(nodes, conv)
	tr, err := harness.StartTracker(e.bin, dir, "tracker", taddr, "--etcd-endpoints", conv.EtcdURL, "--log-level", "warn")
	if err != nil {
		return r, err
	}
	defer tr.Stop()
	if err := tr.WaitReady(ctx); err != nil {
		return r, err
	}
	fetchArgs := append(common, "--etcd-endpoints", conv.EtcdURL, "--upload-rate", fmt.Sprint(p.Upload))
	if p.Download > 0 {
		fetchArgs = append(fetchArgs, "--download-rate", fmt.Sprint(p.Download))
	}
	for i := range p.Nodes {
		n, err := startHealthy(ctx, e.bin, dir, fmt.Sprintf("node%02d", i), fetchArgs...)
		if err != nil {
			return r, err
		}
		nodes = append(nodes, n)
	}

	// Conversion: the origin sends the object once, to the converter.
	e.log.Info("swarmfs: converting", "size", p.Size, "origin_rate", p.SeedUpload)
	cc, err := mountctl.NewClient(conv.Socket())
	if err != nil {
		return r, err
	}
	t := time.Now()
	if _, err := cc.Add(ctx, mountctl.AddRequest{URL: url, Path: "dist/object.bin", Wait: true}); err != nil {
		return r, fmt.Errorf("convert on %s: %w", conv.Name, err)
	}
	r.ConvertSeconds = time.Since(t).Seconds()
	convOrigin := origin.Stats().BodyBytes

	// Distribution.
	fetchers := nodes[1:]
	pids := []int{tr.Pid()}
	for _, n := range nodes {
		pids = append(pids, n.Pid())
	}
	cpu, err := newCPUMeter(pids...)
	if err != nil {
		return r, err
	}
	sent0, err := sentBytes(ctx, conv)
	if err != nil {
		return r, err
	}
	e.log.Info("swarmfs: distributing", "nodes", p.Nodes)
	r.Times = make([]float64, len(fetchers))
	errs := make([]error, len(fetchers))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, n := range fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Times[i] = math.NaN()
			c, err := mountctl.NewClient(n.Socket())
			if err == nil {
				_, err = c.Add(ctx, mountctl.AddRequest{URL: url, Path: "dist/object.bin", Wait: true})
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
				return
			}
			r.Times[i] = time.Since(t0).Seconds()
		}()
	}
	if distFlags.profile > 0 {
		for _, n := range []*harness.Node{conv, fetchers[0]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := filepath.Join(e.out, fmt.Sprintf("dist-%s-%s.pprof", p.Preset, n.Name))
				if err := cpuProfile(ctx, n, distFlags.profile, f); err != nil {
					e.log.Error("profile", "node", n.Name, "err", err)
				}
			}()
		}
	}
	wg.Wait()
	var each []float64
	if r.CPUSeconds, each, err = cpu.Used(); err != nil {
		return r, err
	}
	r.CPUTracker, r.CPUSource = each[0], each[1]
	r.CPUFetcherMax = slices.Max(each[2:])
	sent1, err := sentBytes(ctx, conv)
	if err != nil {
		return r, err
	}
	for _, n := range fetchers {
		b, err := sentBytes(ctx, n)
		if err != nil {
			return r, err
		}
		r.FetcherSent = append(r.FetcherSent, b)
	}
	st := origin.Stats()
	r.OriginBytes = st.BodyBytes
	r.FallbackBytes = st.BodyBytes - convOrigin
	r.SourceBytes = sent1 - sent0 + r.FallbackBytes
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("swarmfs distribution: %w", err)
	}
	r.Delivered = int64(len(fetchers)) * p.Size

	// Verify every copy, outside the timed window.
	var files []string
	for _, n := range fetchers {
		m, err := filepath.Glob(filepath.Join(n.Dir, "data", "*", "data"))
		if err != nil || len(m) != 1 {
			return r, fmt.Errorf("%s: want one data file, found %d", n.Name, len(m))
		}
		files = append(files, m[0])
	}
	if r.Verified, err = verifyFiles(ctx, files, sum); err != nil {
		return r, err
	}
	return r, nil
}

func sentBytes(ctx context.Context, n *harness.Node) (int64, error) {
	f, err := n.Figures(ctx)
	if err != nil {
		return 0, err
	}
	return f.SentBytes, nil
}

// cpuProfile takes a CPU profile of n for d and writes it to file.
func cpuProfile(ctx context.Context, n *harness.Node, d time.Duration, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.MetricsAddr, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", n.Name, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("profile %s: %w", n.Name, err)
	}
	return out.Close()
}

// startHealthy starts a node and waits for /healthz. harness.FreePort can
// race with other processes on a busy machine; a node that lost its port
// is started again on new ones, up to three times.
func startHealthy(ctx context.Context, bin, dir, name string, args ...string) (*harness.Node, error) {
	for attempt := 1; ; attempt++ {
		n, err := harness.StartNode(bin, dir, name, args...)
		if err != nil {
			return nil, err
		}
		err = n.WaitHealthy(ctx)
		if err == nil {
			return n, nil
		}
		n.Stop()
		if attempt == 3 || !strings.Contains(n.Log(), "address already in use") {
			return nil, err
		}
		os.RemoveAll(n.Dir)
	}
}
