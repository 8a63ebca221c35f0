package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// runHTTP is the HTTP-only baseline: N curl processes GET the object at
// once from an origin capped at U_s (one limiter shared by all requests),
// each curl's download capped at D.
func runHTTP(ctx context.Context, e *env, p distParams, data []byte, sum string) (distResult, error) {
	r := distResult{System: "http"}
	if _, err := exec.LookPath("curl"); err != nil {
		return r, fmt.Errorf("the HTTP baseline runs curl: install the Debian package curl: %w", err)
	}
	dir, err := e.subdir("http")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	origin, err := swarmtest.NewOrigin()
	if err != nil {
		return r, err
	}
	defer origin.Close()
	origin.Put("/dist/object.bin", data)
	origin.SetRate(p.SeedUpload)
	url := origin.URL("/dist/object.bin")

	r.Times = make([]float64, p.Nodes)
	cpu := make([]float64, p.Nodes)
	errs := make([]error, p.Nodes)
	files := make([]string, p.Nodes)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range p.Nodes {
		files[i] = filepath.Join(dir, fmt.Sprintf("node%02d.bin", i))
		args := []string{"--silent", "--show-error", "--fail", "--output", files[i]}
		if p.Download > 0 {
			args = append(args, "--limit-rate", fmt.Sprint(p.Download))
		}
		cmd := exec.CommandContext(ctx, "curl", append(args, url)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return r, fmt.Errorf("start curl: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			r.Times[i] = time.Since(t0).Seconds()
			if ps := cmd.ProcessState; ps != nil {
				if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
					cpu[i] = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
				}
			}
			if err != nil {
				r.Times[i] = math.NaN()
				errs[i] = fmt.Errorf("curl %d: %w: %s", i, err, strings.TrimSpace(stderr.String()))
			}
		}()
	}
	wg.Wait()
	for _, c := range cpu {
		r.CPUSeconds += c
	}
	r.SourceBytes = origin.Stats().BodyBytes
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("http baseline: %w", err)
	}
	r.Delivered = int64(p.Nodes) * p.Size
	r.Notes = append(r.Notes, "curl "+curlVersion(ctx))
	if r.Verified, err = verifyFiles(ctx, files, sum); err != nil {
		return r, err
	}
	return r, nil
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

func curlVersion(ctx context.Context) string {
	out, _ := exec.CommandContext(ctx, "curl", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) > 1 {
		return f[1]
	}
	return "?"
}

// verifyFiles reports whether every file's sha256 is sum, two at a time.
func verifyFiles(ctx context.Context, files []string, sum string) (bool, error) {
	sem := make(chan struct{}, 2)
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			got, err := harness.FileSHA256(f)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("hash %s: %w", f, err)
			case got != sum:
				errs[i] = fmt.Errorf("%s: sha256 %s, want %s", f, got, sum)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("verify copies: %w", err)
	}
	return true, nil
}

// removeData deletes a run's object copies (node state and logs stay).
func removeData(dir string) {
	m, _ := filepath.Glob(filepath.Join(dir, "*", "data"))
	for _, d := range m {
		os.RemoveAll(d)
	}
}
