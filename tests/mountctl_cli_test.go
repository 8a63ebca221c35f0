package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"swarmfs/mountctl"
	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

var update = flag.Bool("update", false, "rewrite the golden files of the mountctl CLI tests")

// cliEnv runs the mountctl binary against real swarmfsd processes and
// compares its output with golden files.
type cliEnv struct {
	t      *testing.T
	bin    string
	origin string // origin base URL, normalised to ORIGIN
	tmp    string // test temp dir, normalised to TMP
}

type cliRun struct {
	code           int
	stdout, stderr string
}

// run runs mountctl with args; socket, if set, goes in $SWARMFS_SOCKET.
func (e *cliEnv) run(socket string, args ...string) cliRun {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "mountctl"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.tmp}
	if socket != "" {
		cmd.Env = append(cmd.Env, mountctl.EnvSocket+"="+socket)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("mountctl %q: %v", args, err)
	}
	return cliRun{code, out.String(), errb.String()}
}

var (
	reTime   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	reAddr   = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	rePeers  = regexp.MustCompile(`(peers:\s+)\d+ \(\d+ seeders\)`)
	reJPeers = regexp.MustCompile(`"(peers|seeders)": \d+`)
	reTPeers = regexp.MustCompile(`(\d+%  +)\d(  +)`) // the PEERS column of ls
)

func (e *cliEnv) normalize(s string) string {
	s = strings.ReplaceAll(s, e.origin, "ORIGIN")
	s = strings.ReplaceAll(s, e.tmp, "TMP")
	s = reTime.ReplaceAllString(s, "TIME")
	s = reAddr.ReplaceAllString(s, "127.0.0.1:PORT")
	s = rePeers.ReplaceAllString(s, "${1}N (N seeders)")
	s = reTPeers.ReplaceAllString(s, "${1}N${2}")
	return reJPeers.ReplaceAllString(s, `"$1": N`)
}

// golden runs mountctl and compares exit code, stdout and (unless
// ignoreStderr) stderr with testdata/mountctl/<name>.golden.
func (e *cliEnv) golden(name, socket string, ignoreStderr bool, args ...string) cliRun {
	e.t.Helper()
	r := e.run(socket, args...)
	var b strings.Builder
	fmt.Fprintf(&b, "$ mountctl %s\nexit: %d\n--- stdout\n%s", e.normalize(strings.Join(args, " ")), r.code, e.normalize(r.stdout))
	if !ignoreStderr {
		fmt.Fprintf(&b, "--- stderr\n%s", e.normalize(r.stderr))
	}
	got := b.String()
	file := filepath.Join("testdata", "mountctl", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			e.t.Fatal(err)
		}
		return r
	}
	want, err := os.ReadFile(file)
	if err != nil {
		e.t.Fatalf("%s: %v (run with -update to create it)\ngot:\n%s", name, err, got)
	}
	if got != string(want) {
		e.t.Errorf("mountctl %s: output differs from %s\n--- got\n%s\n--- want\n%s\n(stderr was %q)", strings.Join(args, " "), file, got, want, r.stderr)
	}
	return r
}

// waitAPI waits until the node's control API answers.
func waitAPI(t *testing.T, n *harness.Node, socket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := harness.WaitFile(ctx, socket, n); err != nil {
		t.Fatal(err)
	}
	c, err := mountctl.NewClient(socket)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := c.Status(ctx); err == nil {
			return
		} else if ctx.Err() != nil {
			t.Fatalf("%s api: %v", n.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The mountctl binary against two real swarmfsd processes (n1 runs the
// embedded etcd and converts; n2 fetches from n1): text and JSON output
// compared with golden files, exit codes, typed errors end to end, the
// socket mode and the TCP token.
func TestMountctlCLI(t *testing.T) {
	const sizeA, sizeB = 3 << 20, 6 << 20
	dir := t.TempDir()
	origin := newOrigin(t, "/images/a.img", swarmtest.Data(61, sizeA))
	origin.Put("/images/b.img", swarmtest.Data(62, sizeB))
	origin.Put("/images/flaky.img", swarmtest.Data(63, 1<<20))
	// Two failing GETs: one per add below (n1 runs with --origin-retries 0).
	origin.Inject("/images/flaky.img", swarmtest.Fault{Status: http.StatusInternalServerError}, swarmtest.Fault{Status: http.StatusInternalServerError})
	env := &cliEnv{t: t, bin: bin(t), origin: origin.URL(""), tmp: dir}

	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("mountctl-e2e-token\n"), 0o600)
	badToken := filepath.Join(dir, "badtoken")
	os.WriteFile(badToken, []byte("not-the-token\n"), 0o600)
	apiPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	n1 := startNode(t, dir, "n1", "--node-id", "n1", "--rack", "r1", "--zone", "z1", "--origin-retries", "0",
		"--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--api-token-file", tokenFile)
	s1 := filepath.Join(n1.Dir, mountctl.SocketFileName)
	waitAPI(t, n1, s1)
	n2 := startNode(t, dir, "n2", "--node-id", "n2", "--rack", "r2", "--zone", "z1", "--etcd-endpoints", n1.EtcdURL,
		"--etcd-request-timeout", "2s")
	s2 := filepath.Join(n2.Dir, mountctl.SocketFileName)
	waitAPI(t, n2, s2)

	fi, err := os.Stat(s1)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mountctl.SocketMode {
		t.Errorf("socket %s: %v, %v; want a socket with mode 0660", s1, fi.Mode(), err)
	}

	// Help and usage.
	env.golden("help", "", false, "--help")
	env.golden("add-help", "", false, "add", "--help")
	env.golden("usage-unknown-command", s1, false, "frobnicate")
	env.golden("usage-rm-unconfirmed", s1, false, "rm", "images/b.img")
	for _, cmd := range []string{"add", "publish", "ls", "stat", "warm", "pin", "unpin", "evict", "rm", "status", "nodes"} {
		if r := env.run("", cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Usage: mountctl "+cmd) {
			t.Errorf("mountctl %s --help = %d, %q", cmd, r.code, r.stdout)
		}
	}

	// n1 converts both objects; the second answer is JSON.
	env.golden("add", s1, false, "add", origin.URL("/images/a.img"))
	env.golden("add-json", s1, false, "add", origin.URL("/images/b.img"), "--as", "images/b.img", "-o", "json")
	env.golden("ls-n2", s2, false, "ls")

	// n2 warms a from n1 (progress lines on stderr: not a terminal), and
	// adds b with --wait.
	r := env.golden("warm-n2", s2, true, "warm", "images/a.img", "--progress-interval", "100ms")
	if !strings.Contains(r.stderr, "images/a.img: 3.0 MiB / 3.0 MiB (100%)") || !strings.Contains(r.stderr, "peers 100%, origin 0%") {
		t.Errorf("warm progress on stderr:\n%s", r.stderr)
	}
	r = env.golden("add-wait-n2", s2, true, "add", origin.URL("/images/b.img"), "--as", "images/b.img", "--wait", "--progress-interval", "100ms")
	if !strings.Contains(r.stderr, "images/b.img: 6.0 MiB / 6.0 MiB (100%)") {
		t.Errorf("add --wait progress on stderr:\n%s", r.stderr)
	}
	env.golden("stat-n2", s2, false, "stat", "images/a.img")
	env.golden("ls-json-n2", s2, false, "ls", "-o", "json", "images")
	env.golden("nodes", s1, false, "nodes")

	// Typed errors reach the CLI with the daemon's message.
	env.golden("err-origin-404", s1, false, "add", origin.URL("/images/missing.img"))
	env.golden("err-origin-500", s1, false, "add", origin.URL("/images/flaky.img"))
	env.golden("err-origin-500-json", s1, false, "add", origin.URL("/images/flaky.img"), "-o", "json")
	env.golden("err-conflict", s1, false, "add", origin.URL("/images/b.img"), "--as", "images/a.img/b.img")
	env.golden("err-bad-path", s1, false, "add", origin.URL("/images/b.img"), "--as", "images/../../etc/passwd")
	env.golden("err-not-found", s1, false, "stat", "images/nope.img")
	env.golden("err-pin", s1, false, "pin", "images/a.img")
	env.golden("err-unpin", s1, false, "unpin", "images/a.img")

	// Evict on n2; publish, then delete on n1.
	env.golden("evict-n2", s2, false, "evict", "images/a.img")
	env.golden("ls-local-n2", s2, false, "ls", "--local")
	c2, err := mountctl.NewClient(s2)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := c2.Stat(context.Background(), "images/a.img"); err != nil || o.State != mountctl.StateAbsent {
		t.Errorf("stat after evict = %+v, %v; want absent", o, err)
	} else if _, err := os.Stat(filepath.Join(n2.Dir, "data", o.InfoHash)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("evicted data dir: %v; want it removed", err)
	}
	file := filepath.Join(dir, "p.bin")
	os.WriteFile(file, swarmtest.Data(64, 100_000), 0o644)
	env.golden("publish", s1, false, "publish", file, "--as", "files/p.bin")
	env.golden("rm", s1, false, "rm", "files/p.bin", "--yes", "--evict")
	env.golden("rm-gone", s1, false, "stat", "files/p.bin")

	// Status: too dynamic for a golden file; check the fields.
	r = env.run(s1, "status", "-o", "json")
	var st mountctl.NodeStatus
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("status -o json = %d %q %q", r.code, r.stdout, r.stderr)
	}
	if st.ID != "n1" || st.Rack != "r1" || st.Zone != "z1" || !st.Etcd.Healthy || st.Version == "" || st.UptimeSeconds <= 0 ||
		st.Objects != 2 || st.ObjectsComplete != 2 || st.Totals.OriginBytes < sizeA+sizeB || st.Disk.UsedBytes < sizeA+sizeB ||
		st.Disk.TotalBytes == 0 || st.Disk.DataDir != filepath.Join(n1.Dir, "data") {
		t.Errorf("status = %+v", st)
	}
	r = env.run(s1, "status")
	for _, k := range []string{"node:         n1", "version:", "uptime:", "rates:", "disk:", "etcd:         healthy"} {
		if r.code != 0 || !strings.Contains(r.stdout, k) {
			t.Errorf("status text lacks %q:\n%s", k, r.stdout)
		}
	}

	// The TCP listener wants the token.
	if r := env.run("", "--url", apiURL, "--token-file", tokenFile, "nodes", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"id": "n2"`) {
		t.Errorf("nodes over TCP with the token = %+v", r)
	}
	env.golden("tcp-wrong-token", "", false, "--url", apiURL, "--token-file", badToken, "status")
	env.golden("tcp-no-token", "", false, "--url", apiURL, "status")
	if log := n1.Log(); strings.Contains(log, "mountctl-e2e-token") {
		t.Errorf("the api token appears in n1's log")
	}

	// Hostile requests straight to the real daemon's socket.
	for _, tt := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/objects/images/../../../etc/passwd", "", 400},
		{"GET", "/v1/objects/..%2F..%2Fetc%2Fpasswd", "", 400},
		{"POST", "/v1/objects", `{"url":"` + origin.URL("/images/a.img") + `","path":"a","owner":"me"}`, 400},
		{"POST", "/v1/objects", `{"url":`, 400},
		{"POST", "/v1/objects", `{"url":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
		{"DELETE", "/v1/objects/images/a.img", `{"confirm":"images"}`, 400},
		{"POST", "/v1/pin/images/a.img", "", 409},
	} {
		if code := rawSocketRequest(t, s1, tt.method, tt.path, tt.body); code != tt.want {
			t.Errorf("%s %s on the real socket = %d; want %d", tt.method, tt.path, code, tt.want)
		}
	}

	// etcd (embedded in n1) goes away: n2 still answers status, but
	// listing the cluster is 503 with etcd's error.
	n1.Kill()
	if r := env.run(s2, "nodes", "-o", "json"); r.code != 1 || !strings.Contains(r.stdout, `"kind": "unavailable"`) || !strings.Contains(r.stderr, "etcd unavailable") {
		t.Errorf("nodes with etcd down = %+v", r)
	}
	if r := env.run(s2, "status"); r.code != 0 || !strings.Contains(r.stdout, "etcd:         UNREACHABLE") {
		t.Errorf("status with etcd down = %+v", r)
	}
	// Exit code 1 when the daemon is gone.
	n2.Kill()
	if r := env.run(s2, "status"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach swarmfsd") {
		t.Errorf("status with n2 killed = %+v", r)
	}
}

// rawSocketRequest sends a request with a literal URL path over a unix
// socket and returns the status code.
func rawSocketRequest(t *testing.T, socket, method, path, body string) int {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
