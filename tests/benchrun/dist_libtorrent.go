package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"swarmfs/tests/harness"
)

// ltNodePy is one libtorrent client (or the torrent maker); see its doc.
//
//go:embed lt_node.py
var ltNodePy []byte

// ltPython is Debian's python, the one python3-libtorrent installs into
// (not a pyenv python3 that may come first on PATH).
const ltPython = "/usr/bin/python3"

// ltObject is the file name of the object in every client's directory.
const ltObject = "object.bin"

// libtorrentMissing returns an error naming the Debian package to install
// when a tool of the libtorrent runner is missing, and nil otherwise.
func libtorrentMissing(ctx context.Context) error {
	if _, err := os.Stat(ltPython); err != nil {
		return fmt.Errorf("%s is missing: install the Debian package python3-libtorrent: %w", ltPython, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, ltPython, "-c", "import libtorrent").CombinedOutput(); err != nil {
		return fmt.Errorf("%s cannot import libtorrent: install the Debian package python3-libtorrent: %w: %s",
			ltPython, err, strings.TrimSpace(string(out)))
	}
	if _, err := exec.LookPath("opentracker"); err != nil {
		return fmt.Errorf("opentracker is missing: install the Debian package opentracker: %w", err)
	}
	return nil
}

// ltMsg is one JSON line from lt_node.py.
type ltMsg struct {
	Event      string                     `json:"event"`
	Message    string                     `json:"message"`
	Version    string                     `json:"version"`
	Settings   map[string]json.RawMessage `json:"settings"`
	Infohash   string                     `json:"infohash"`
	Name       string                     `json:"name"`
	Pieces     int                        `json:"pieces"`
	Uploaded   int64                      `json:"uploaded"`
	Downloaded int64                      `json:"downloaded"`
	proc       int                        // index of the process that sent it
	at         time.Time                  // when Go read the line
	exitErr    error                      // for the "exit" event Go adds at end of output
	tail       string                     // for "exit": the end of the process's log
}

// ltProc is one process: a libtorrent client (lt_node.py) or opentracker.
type ltProc struct {
	name    string
	idx     int
	cmd     *exec.Cmd
	stdin   io.WriteCloser // nil for opentracker
	logPath string
	exited  chan struct{} // closed after Wait
	quit    chan struct{} // closed by kill: stop delivering messages
	once    sync.Once
}

func (p *ltProc) pid() int { return p.cmd.Process.Pid }

// send writes one command line to the process.
func (p *ltProc) send(cmd string) error {
	if _, err := fmt.Fprintf(p.stdin, "{\"cmd\":%q}\n", cmd); err != nil {
		return fmt.Errorf("send %s to %s: %w", cmd, p.name, err)
	}
	return nil
}

// kill ends the process if it still runs and waits (bounded) for it.
func (p *ltProc) kill() {
	p.once.Do(func() { close(p.quit) })
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// logTail returns the last lines of the process's stderr.
func (p *ltProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// startProc starts a process whose stderr (and, without events, stdout)
// goes to logPath. With events, each stdout line is decoded and sent there,
// followed by an "exit" message when the process ends.
func startProc(ctx context.Context, name string, idx int, dir, logPath string, events chan<- ltMsg, setup func(*exec.Cmd), argv ...string) (*ltProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stderr = logf
	cmd.WaitDelay = 5 * time.Second
	// Marks the process as this run's (its log lies in the run's scratch
	// dir), so that a leak check can tell it from another run's.
	cmd.Env = append(os.Environ(), "SWARMFS_BENCH_LOG="+logPath)
	// A safety net if benchrun itself dies: the kernel kills the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &ltProc{name: name, idx: idx, cmd: cmd, logPath: logPath, exited: make(chan struct{}), quit: make(chan struct{})}
	var stdout io.ReadCloser
	if events != nil {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
	} else {
		cmd.Stdout = logf
	}
	if setup != nil {
		setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		defer close(p.exited)
		if stdout == nil {
			cmd.Wait()
			return
		}
		deliver := func(m ltMsg) {
			m.proc = idx
			select {
			case events <- m:
			case <-p.quit:
			}
		}
		s := bufio.NewScanner(stdout)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			at := time.Now()
			var m ltMsg
			if err := json.Unmarshal(s.Bytes(), &m); err != nil {
				m = ltMsg{Event: "error", Message: "unreadable line: " + s.Text()}
			}
			m.at = at
			deliver(m)
		}
		io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		deliver(ltMsg{Event: "exit", at: time.Now(), exitErr: err, tail: p.logTail()})
	}()
	return p, nil
}

// nobody is the credential of user nobody (65534 if it has no entry).
func nobody() *syscall.Credential {
	c := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	if u, err := user.Lookup("nobody"); err == nil {
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			c.Uid, c.Gid = uint32(uid), uint32(gid)
		}
	}
	return c
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10*n {
			return nil, fmt.Errorf("find %d distinct free ports", n)
		}
		p, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// linkOrCopy makes dst hold src's bytes, by a hard link when it can.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// probeTracker waits until the tracker at announce serves infohash ih:
// Debian's opentracker loads its whitelist in a thread after it starts
// listening, and refuses other infohashes. The probe announces a peer and
// removes it at once, before any client announces.
func probeTracker(ctx context.Context, announce, ih string) error {
	raw, err := hex.DecodeString(ih)
	if err != nil || len(raw) != 20 {
		return fmt.Errorf("infohash %q is not 20 hex bytes", ih)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	q := func(event string) ([]byte, error) {
		u := fmt.Sprintf("%s?info_hash=%s&peer_id=%s&port=9&uploaded=0&downloaded=0&left=0&numwant=0&compact=1&event=%s",
			announce, url.QueryEscape(string(raw)), url.QueryEscape("-BR0001-benchprobe00"), event)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last string
	for {
		b, err := q("started")
		if err == nil && bytes.HasPrefix(b, []byte("d")) && !bytes.Contains(b, []byte("failure reason")) {
			if _, err := q("stopped"); err != nil {
				return fmt.Errorf("tracker probe: remove the probe peer: %w", err)
			}
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = string(b)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("opentracker at %s does not serve infohash %s (last answer: %s): %w", announce, ih, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runLibtorrent distributes the object in dataPath (p.Size bytes, hex sha256 sum) through a swarm of
// libtorrent-rasterbar clients: one seed holding the data, upload capped at p.SeedUpload, and p.Nodes
// leechers, upload capped at p.Upload and download at p.Download (0: none), through a tracker.
//
// Every client is its own /usr/bin/python3 process running lt_node.py,
// listening on 127.0.0.1; the tracker is Debian's opentracker with the
// torrent's infohash whitelisted. The clock starts when every client has
// checked its torrent and is waiting, stopped, and Go sends "go" to all;
// a leecher's completion time is when Go reads its "done" line (libtorrent
// verified every piece). Leechers keep seeding until the last completes.
func runLibtorrent(ctx context.Context, e *env, p distParams, dataPath, sum string) (distResult, error) {
	r := distResult{System: "libtorrent"}
	if err := libtorrentMissing(ctx); err != nil {
		return r, err
	}
	if p.Nodes < 1 || p.Size < 1 {
		return r, fmt.Errorf("libtorrent: need at least one node and one byte")
	}
	if p.PieceLength < 16<<10 || p.PieceLength%(16<<10) != 0 {
		return r, fmt.Errorf("libtorrent: piece length %d is not a positive multiple of 16 KiB", p.PieceLength)
	}
	if fi, err := os.Stat(dataPath); err != nil {
		return r, fmt.Errorf("libtorrent: %w", err)
	} else if fi.Size() != p.Size {
		return r, fmt.Errorf("libtorrent: %s holds %d bytes, want %d", dataPath, fi.Size(), p.Size)
	}
	dir, err := e.subdir("libtorrent")
	if err != nil {
		return r, fmt.Errorf("libtorrent scratch dir: %w", err)
	}
	defer func() { // the copies; scripts, torrent and logs stay
		m, _ := filepath.Glob(filepath.Join(dir, "*", ltObject))
		for _, f := range m {
			os.Remove(f)
		}
	}()
	script := filepath.Join(dir, "lt_node.py")
	if err := os.WriteFile(script, ltNodePy, 0o644); err != nil {
		return r, fmt.Errorf("write lt_node.py: %w", err)
	}
	ports, err := freePorts(p.Nodes + 2)
	if err != nil {
		return r, err
	}
	announce := fmt.Sprintf("http://127.0.0.1:%d/announce", ports[0])

	// Every process, killed on every return path.
	var procs []*ltProc
	defer func() {
		for _, q := range procs {
			q.kill()
		}
	}()
	events := make(chan ltMsg, 8*(p.Nodes+2))

	// The seed's data and the torrent, made by libtorrent.
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		return r, fmt.Errorf("libtorrent seed dir: %w", err)
	}
	if err := linkOrCopy(dataPath, filepath.Join(seedDir, ltObject)); err != nil {
		return r, fmt.Errorf("libtorrent seed data: %w", err)
	}
	torrent := filepath.Join(dir, "object.torrent")
	ti, err := ltMakeTorrent(ctx, dir, script, filepath.Join(seedDir, ltObject), p.PieceLength, announce, torrent)
	if err != nil {
		return r, err
	}
	e.log.Info("libtorrent: torrent made", "infohash", ti.Infohash, "pieces", ti.Pieces)

	// The tracker: opentracker on 127.0.0.1, TCP only (given a -p and no
	// -P it binds no UDP port), serving only our infohash.
	trDir := filepath.Join(dir, "tracker")
	if err := os.MkdirAll(trDir, 0o755); err != nil {
		return r, fmt.Errorf("libtorrent tracker dir: %w", err)
	}
	wlPath := filepath.Join(trDir, "whitelist")
	if err := os.WriteFile(wlPath, []byte(ti.Infohash+"\n"), 0o644); err != nil {
		return r, fmt.Errorf("write opentracker whitelist: %w", err)
	}
	wl, err := os.Open(wlPath)
	if err != nil {
		return r, fmt.Errorf("open opentracker whitelist: %w", err)
	}
	defer wl.Close()
	tr, err := startProc(ctx, "opentracker", -1, "/", filepath.Join(trDir, "log"), nil, func(cmd *exec.Cmd) {
		// Started as root, opentracker would chroot and switch to nobody
		// itself, and that switch clears the parent-death signal: it would
		// outlive a killed benchrun. So it starts as nobody (Pdeathsig is
		// set after the switch), and reads the whitelist through an
		// inherited descriptor, as nobody may not reach the scratch dir.
		cmd.ExtraFiles = []*os.File{wl} // fd 3
		if os.Geteuid() == 0 {
			cmd.SysProcAttr.Credential = nobody()
		}
	}, "opentracker", "-i", "127.0.0.1", "-p", fmt.Sprint(ports[0]), "-w", "/dev/fd/3")
	if err != nil {
		return r, err
	}
	procs = append(procs, tr)
	if err := probeTracker(ctx, announce, ti.Infohash); err != nil {
		return r, fmt.Errorf("%w (log: %s)", err, tr.logTail())
	}

	// The clients: index 0 is the seed, 1..N the leechers.
	clients := make([]*ltProc, p.Nodes+1)
	for i := range clients {
		name, role, up, down := fmt.Sprintf("node%02d", i-1), "leech", p.Upload, p.Download
		if i == 0 {
			name, role, up, down = "seed", "seed", p.SeedUpload, 0
		}
		cdir := filepath.Join(dir, name)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return r, fmt.Errorf("libtorrent client dir: %w", err)
		}
		c, err := startProc(ctx, name, i, cdir, filepath.Join(cdir, "log"), events, nil,
			ltPython, script, "node", "--role", role, "--dir", cdir, "--port", fmt.Sprint(ports[i+1]),
			"--torrent", torrent, "--upload", fmt.Sprint(max(up, 0)), "--download", fmt.Sprint(max(down, 0)))
		if err != nil {
			return r, err
		}
		procs = append(procs, c)
		clients[i] = c
	}
	failed := func(m ltMsg) error {
		c := clients[m.proc]
		if m.Event == "exit" {
			return fmt.Errorf("libtorrent client %s exited: %v (log: %s)", c.name, m.exitErr, m.tail)
		}
		return fmt.Errorf("libtorrent client %s: %s (log: %s)", c.name, m.Message, c.logTail())
	}

	// Ready: each client has checked its torrent (the seed hashed all its
	// data) and waits, stopped, without having announced.
	readyCtx, cancelReady := context.WithTimeout(ctx, 2*time.Minute+time.Duration(float64(p.Size)/(20<<20)*float64(time.Second)))
	defer cancelReady()
	var version string
	settings := map[string]map[string]json.RawMessage{}
	for ready := 0; ready < len(clients); {
		select {
		case m := <-events:
			switch m.Event {
			case "ready":
				ready++
				version = m.Version
				role := "leechers"
				if m.proc == 0 {
					role = "seed"
				}
				settings[role] = m.Settings
			case "error", "exit":
				return r, failed(m)
			}
		case <-readyCtx.Done():
			return r, fmt.Errorf("libtorrent clients not ready: %w", readyCtx.Err())
		}
	}

	// Distribution.
	pids := []int{tr.pid()}
	for _, c := range clients {
		pids = append(pids, c.pid())
	}
	cpu, err := newCPUMeter(pids...)
	if err != nil {
		return r, err
	}
	e.log.Info("libtorrent: distributing", "nodes", p.Nodes, "size", p.Size)
	t0 := time.Now()
	for _, c := range clients {
		if err := c.send("go"); err != nil {
			return r, err
		}
	}
	limit := 2*time.Minute + time.Duration(5*p.tMin()*float64(time.Second)) +
		time.Duration(float64(p.Nodes)*float64(p.Size)/(64<<20)*float64(time.Second))
	runCtx, cancelRun := context.WithTimeout(ctx, limit)
	defer cancelRun()
	r.Times = make([]float64, p.Nodes)
	for i := range r.Times {
		r.Times[i] = math.NaN()
	}
	for done := 0; done < p.Nodes; {
		select {
		case m := <-events:
			switch m.Event {
			case "done":
				if m.proc > 0 && math.IsNaN(r.Times[m.proc-1]) {
					r.Times[m.proc-1] = m.at.Sub(t0).Seconds()
					done++
					e.log.Debug("libtorrent: node done", "node", clients[m.proc].name, "seconds", r.Times[m.proc-1])
				}
			case "error", "exit":
				return r, failed(m)
			}
		case <-runCtx.Done():
			var missing []string
			for i, t := range r.Times {
				if math.IsNaN(t) {
					missing = append(missing, clients[i+1].name)
				}
			}
			return r, fmt.Errorf("libtorrent distribution: %s not complete after %s: %w",
				strings.Join(missing, ", "), time.Since(t0).Round(time.Second), runCtx.Err())
		}
	}
	if r.CPUSeconds, _, err = cpu.Used(); err != nil {
		return r, err
	}
	r.Delivered = int64(p.Nodes) * p.Size

	// What the seed sent, then stop everyone (each reports its counters).
	statsCtx, cancelStats := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStats()
	if err := clients[0].send("stats"); err != nil {
		return r, err
	}
	stats := make([]*ltMsg, len(clients))
	var seedStats *ltMsg
	for seedStats == nil {
		select {
		case m := <-events:
			switch m.Event {
			case "stats":
				if m.proc == 0 {
					seedStats = &m
				}
			case "error", "exit":
				return r, failed(m)
			}
		case <-statsCtx.Done():
			return r, fmt.Errorf("libtorrent seed's counters: %w", statsCtx.Err())
		}
	}
	r.SourceBytes = seedStats.Uploaded
	for _, c := range clients {
		if err := c.send("stop"); err != nil {
			return r, err
		}
	}
	for exited := 0; exited < len(clients); {
		select {
		case m := <-events:
			switch m.Event {
			case "stats":
				stats[m.proc] = &m
			case "exit":
				exited++
				if m.exitErr != nil {
					return r, failed(m)
				}
			case "error":
				return r, failed(m)
			}
		case <-statsCtx.Done():
			return r, fmt.Errorf("libtorrent clients did not stop: %w", statsCtx.Err())
		}
	}
	var leechUp int64
	for _, s := range stats[1:] {
		if s != nil {
			leechUp += s.Uploaded
		}
	}

	// Verify every copy, outside the timed window.
	var files []string
	for _, c := range clients[1:] {
		files = append(files, filepath.Join(filepath.Dir(c.logPath), ltObject))
	}
	if r.Verified, err = verifyFiles(ctx, files, sum); err != nil {
		return r, err
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("libtorrent %s (Debian python3-libtorrent), one python process per client, opentracker", version),
		fmt.Sprintf("settings changed from libtorrent's defaults: %s", ltSettingsNote(settings)),
		"peer-class filter: every IPv4 and IPv6 address in the global class, so the caps apply to loopback peers",
		fmt.Sprintf("v1-only torrent made by libtorrent, %s pieces; the seed checked its data before the clock started", humanize.IBytes(uint64(p.PieceLength))),
		"completion: libtorrent's torrent_finished_alert, reported as soon as it is posted (alert notification pipe, no polling)",
		fmt.Sprintf("leechers uploaded %.2f×F to each other", float64(leechUp)/float64(p.Size)),
	)
	return r, nil
}

// ltTorrent is what lt_node.py make reports.
type ltTorrent struct {
	Infohash string
	Name     string
	Pieces   int
}

// ltMakeTorrent creates the torrent of data with lt_node.py make.
func ltMakeTorrent(ctx context.Context, dir, script, data string, pieceLength int64, announce, out string) (ltTorrent, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ltPython, script, "make", "--data", data,
		"--piece-length", fmt.Sprint(pieceLength), "--tracker", announce, "--out", out)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	var m ltMsg
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if json.Unmarshal(line, &m) == nil && (m.Event == "torrent" || m.Event == "error") {
			break
		}
	}
	switch {
	case m.Event == "error":
		return ltTorrent{}, fmt.Errorf("make torrent: %s", m.Message)
	case err != nil:
		return ltTorrent{}, fmt.Errorf("make torrent: %w: %s", err, strings.TrimSpace(stderr.String()))
	case m.Event != "torrent" || len(m.Infohash) != 40:
		return ltTorrent{}, fmt.Errorf("make torrent: unexpected output %q", b)
	}
	return ltTorrent{Infohash: m.Infohash, Name: m.Name, Pieces: m.Pieces}, nil
}

// ltSettingsNote lists the settings the clients changed, the caps per role.
func ltSettingsNote(byRole map[string]map[string]json.RawMessage) string {
	perRole := []string{"upload_rate_limit", "download_rate_limit"}
	var parts []string
	if s := byRole["seed"]; s != nil {
		var keys []string
		for k := range s {
			if k != "listen_interfaces" && k != "alert_mask" && !slices.Contains(perRole, k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%s", k, s[k]))
		}
		parts = append(parts, "listen_interfaces=127.0.0.1:<port>")
	}
	for _, role := range []string{"seed", "leechers"} {
		for _, k := range perRole {
			if v, ok := byRole[role][k]; ok {
				parts = append(parts, fmt.Sprintf("%s=%s (%s)", k, v, role))
			}
		}
	}
	return strings.Join(parts, ", ")
}
