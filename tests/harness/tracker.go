package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// BuildTracker compiles swarmfs-tracker into dir and returns dir.
func BuildTracker(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "swarmfs/cmd/swarmfs-tracker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build swarmfs-tracker: %w\n%s", err, out)
	}
	return dir, nil
}

// Tracker is one swarmfs-tracker process.
type Tracker struct {
	Name string
	Dir  string
	Addr string // host:port of announce, scrape, /metrics, /healthz

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartTracker runs bin/swarmfs-tracker listening on addr (host:port;
// empty: a free loopback port), logging to dir/name/tracker.log, with the
// extra args.
func StartTracker(bin, dir, name, addr string, args ...string) (*Tracker, error) {
	if addr == "" {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	t := &Tracker{Name: name, Dir: filepath.Join(dir, name), Addr: addr, done: make(chan struct{})}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(t.Dir, "tracker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	t.cmd = exec.Command(filepath.Join(bin, "swarmfs-tracker"), append([]string{"--listen", addr}, args...)...)
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	if err := t.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		t.err = t.cmd.Wait()
		logf.Close()
		close(t.done)
	}()
	return t, nil
}

// AnnounceURL returns the announce URL, with query (e.g. "zone=z1") if
// not empty.
func (t *Tracker) AnnounceURL(query string) string {
	u := "http://" + t.Addr + "/announce"
	if query != "" {
		u += "?" + query
	}
	return u
}

// WaitReady polls /healthz until it answers 200.
func (t *Tracker) WaitReady(ctx context.Context) error {
	for {
		if ok, err := t.Exited(); ok {
			return fmt.Errorf("%s exited (%v):\n%s", t.Name, err, tail(t.Log(), 2000))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w\n%s", t.Name, ctx.Err(), tail(t.Log(), 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Metrics scrapes the tracker's /metrics.
func (t *Tracker) Metrics(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body)
}

// Exited reports whether the process ended, and how.
func (t *Tracker) Exited() (bool, error) {
	select {
	case <-t.done:
		return true, t.err
	default:
		return false, nil
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (t *Tracker) Kill() {
	t.cmd.Process.Kill()
	<-t.done
}

// Stop ends the process with SIGTERM, then SIGKILL after 10 s.
func (t *Tracker) Stop() error {
	if ok, err := t.Exited(); ok {
		return err
	}
	t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.done:
		return t.err
	case <-time.After(10 * time.Second):
		t.Kill()
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", t.Name)
	}
}

// Log returns the tracker's log so far.
func (t *Tracker) Log() string {
	b, _ := os.ReadFile(filepath.Join(t.Dir, "tracker.log"))
	return string(b)
}

// Pid returns the process id.
func (t *Tracker) Pid() int { return t.cmd.Process.Pid }
