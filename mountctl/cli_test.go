package mountctl

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// startFake serves f on a unix socket and returns the socket path.
func startFake(t *testing.T, f *Fake) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), SocketFileName)
	srv, err := NewServer(f, Config{Socket: sock}, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return sock
}

type run struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, terminal bool, args ...string) run {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, Terminal: terminal})
	return run{code, out.String(), errb.String()}
}

func TestCLIExitCodes(t *testing.T) {
	f := NewFake(testObjects()...)
	f.SetErr("Pin", NotImplemented("pinning needs the FUSE layer (not built yet)"))
	sock := startFake(t, f)
	env := map[string]string{EnvSocket: sock}
	for _, tt := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"status"}, 0, "node:", ""},
		{[]string{"--output", "json", "status"}, 0, `"id": "fake"`, ""},
		{[]string{"stat", "images/a.img", "-o", "json"}, 0, `"path": "images/a.img"`, ""},
		{[]string{"stat", "images/nope"}, 1, "", "mountctl stat: index: not found: images/nope"},
		{[]string{"stat", "images/nope", "-o", "json"}, 1, `"kind": "not_found"`, "not found"},
		{[]string{"stat", "../etc/passwd"}, 1, "", `path: "../etc/passwd" has a ".." segment`},
		{[]string{"pin", "images/a.img"}, 1, "", "pinning needs the FUSE layer (not built yet)"},
		{[]string{"ls"}, 0, "images/a.img", ""},
		{[]string{"ls", "models", "--local"}, 0, "models/m.bin", ""},
		{[]string{"nodes"}, 0, "fake (this node)", ""},
		{[]string{"add", "ftp://x/y"}, 1, "", `url: "ftp://x/y" is not http or https`},
		{[]string{"add", "http://o/x.img", "--as", "images/x.img"}, 0, "added images/x.img", ""},
		{[]string{"rm", "images/a.img"}, 2, "", "confirm with --yes"},
		{[]string{"rm", "images/a.img", "--yes"}, 0, "deleted images/a.img from the index", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"stat"}, 2, "", "want 1 argument(s)"},
		{[]string{"stat", "a", "b"}, 2, "", "want 1 argument(s)"},
		{[]string{"stat", "--bogus", "a"}, 2, "", "unknown flag: --bogus"},
		{[]string{"status", "-o", "yaml"}, 2, "", "want text or json"},
		{[]string{"--url", "http://127.0.0.1:1", "status"}, 2, "", "--url needs --token-file"},
		{[]string{}, 2, "", "Usage: mountctl"},
		{[]string{"--help"}, 0, "Commands:", ""},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"help", "warm"}, 0, "Usage: mountctl warm", ""},
		{[]string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, 1, "", "cannot reach swarmfsd"},
	} {
		r := runCLI(t, env, false, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.inStdout) || !strings.Contains(r.stderr, tt.inStderr) {
			t.Errorf("mountctl %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tt.args, r.code, r.stdout, r.stderr, tt.code, tt.inStdout, tt.inStderr)
		}
	}
}

func TestCLIHelpOnEveryCommand(t *testing.T) {
	c := &cli{io: IO{Getenv: func(string) string { return "" }}}
	for _, cmd := range c.commands() {
		for _, h := range []string{"--help", "-h"} {
			r := runCLI(t, nil, false, cmd.name, h)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: mountctl "+cmd.name) || !strings.Contains(r.stdout, "--socket") {
				t.Errorf("mountctl %s %s = %d, %q; want usage on stdout and exit 0", cmd.name, h, r.code, r.stdout)
			}
		}
	}
}

// A flag before the command and the environment both reach the command.
func TestCLIGlobalFlags(t *testing.T) {
	sock := startFake(t, NewFake(testObjects()...))
	if r := runCLI(t, nil, false, "--socket", sock, "-o", "json", "nodes"); r.code != 0 || !strings.Contains(r.stdout, `"nodes"`) {
		t.Errorf("global flags before the command: %+v", r)
	}
	if r := runCLI(t, map[string]string{EnvSocket: sock}, false, "nodes", "--output=json"); r.code != 0 || !strings.Contains(r.stdout, `"nodes"`) {
		t.Errorf("$SWARMFS_SOCKET: %+v", r)
	}
}

// Progress: plain lines off a terminal, a bar on one, nothing with -o json.
func TestCLIWarmProgress(t *testing.T) {
	const size = 4 << 20
	for _, mode := range []string{"lines", "bar", "json"} {
		t.Run(mode, func(t *testing.T) {
			f := NewFake(Object{Path: "big.img", InfoHash: strings.Repeat("4", 40), Size: size, State: StateAbsent})
			f.Hook = func(method string, o Object) Object {
				o.State = StateDownloading
				if method == "Stat" {
					o.BytesCompleted = min(o.BytesCompleted+size/4, size)
					o.PeerBytes = o.BytesCompleted * 3 / 4
					o.OriginBytes = o.BytesCompleted / 4
				}
				if o.BytesCompleted == size {
					o.State = StateComplete
				}
				o.Progress = float64(o.BytesCompleted) / size
				return o
			}
			sock := startFake(t, f)
			args := []string{"--socket", sock, "warm", "big.img", "--progress-interval", "1ms"}
			if mode == "json" {
				args = append(args, "-o", "json")
			}
			r := runCLI(t, nil, mode == "bar", args...)
			if r.code != 0 {
				t.Fatalf("warm = %+v", r)
			}
			switch mode {
			case "lines":
				if !strings.Contains(r.stderr, "big.img: 4.0 MiB / 4.0 MiB (100%)") || !strings.Contains(r.stderr, "ETA") ||
					!strings.Contains(r.stderr, "peers 75%, origin 25%") || strings.Count(r.stderr, "\n") < 3 {
					t.Errorf("progress lines:\n%s", r.stderr)
				}
				if !strings.HasPrefix(r.stdout, "warmed big.img (4.0 MiB, complete") {
					t.Errorf("stdout = %q", r.stdout)
				}
			case "bar":
				if !strings.Contains(r.stderr, "big.img") || !strings.Contains(r.stderr, "peers 75%, origin 25%") {
					t.Errorf("progress bar output:\n%q", r.stderr)
				}
				if testing.Verbose() {
					t.Logf("bar:\n%q", r.stderr)
				}
			case "json":
				var o Object
				if r.stderr != "" || json.Unmarshal([]byte(r.stdout), &o) != nil || o.State != StateComplete {
					t.Errorf("json warm: stdout %q, stderr %q", r.stdout, r.stderr)
				}
			}
		})
	}
}
