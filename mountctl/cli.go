package mountctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
	"github.com/vbauerster/mpb/v8/cwriter"
)

// Exit codes of the CLI.
const (
	ExitOK    = 0
	ExitError = 1 // the operation failed (the daemon's message is printed)
	ExitUsage = 2 // bad command line
)

// defaultTimeout bounds calls that do not wait for a download.
const defaultTimeout = 30 * time.Second

// IO is what the CLI talks to: its output streams and environment.
type IO struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv in the binary).
	Getenv func(string) string
	// Terminal reports whether Stderr is a terminal: progress is then a
	// live bar instead of periodic lines.
	Terminal bool
}

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// cli holds the global options and the streams of one invocation.
type cli struct {
	io        IO
	socket    string
	url       string
	tokenFile string
	output    string
	timeout   time.Duration
	interval  time.Duration
	client    *Client
}

type command struct {
	name, args, summary, help string
	minArgs, maxArgs          int
	flags                     func(*pflag.FlagSet)
	run                       func(ctx context.Context, c *cli, args []string) error
}

// Main runs the mountctl command line (args without the program name) and
// returns the exit code.
func Main(ctx context.Context, args []string, sio IO) int {
	if sio.Getenv == nil {
		sio.Getenv = func(string) string { return "" }
	}
	c := &cli{io: sio, socket: DefaultSocket, output: "text"}
	if v := sio.Getenv(EnvSocket); v != "" {
		c.socket = v
	}
	c.url, c.tokenFile = sio.Getenv(EnvURL), sio.Getenv(EnvTokenFile)
	cmds := c.commands()
	top := pflag.NewFlagSet("mountctl", pflag.ContinueOnError)
	top.SetInterspersed(false)
	top.SetOutput(io.Discard)
	c.globalFlags(top)
	help := top.BoolP("help", "h", false, "show help")
	if err := top.Parse(args); err != nil {
		fmt.Fprintf(sio.Stderr, "mountctl: %v\n\n", err)
		c.usage(sio.Stderr, top, cmds)
		return ExitUsage
	}
	rest := top.Args()
	if *help || (len(rest) > 0 && rest[0] == "help" && len(rest) == 1) {
		c.usage(sio.Stdout, top, cmds)
		return ExitOK
	}
	if len(rest) == 0 {
		c.usage(sio.Stderr, top, cmds)
		return ExitUsage
	}
	name := rest[0]
	if name == "help" {
		name, rest = rest[1], []string{rest[1], "--help"}
	}
	i := slices.IndexFunc(cmds, func(cmd command) bool { return cmd.name == name })
	if i < 0 {
		fmt.Fprintf(sio.Stderr, "mountctl: unknown command %q (see mountctl --help)\n", name)
		return ExitUsage
	}
	cmd := cmds[i]
	fs := pflag.NewFlagSet("mountctl "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	c.globalFlags(fs)
	cmdHelp := fs.BoolP("help", "h", false, "show help for "+cmd.name)
	if err := fs.Parse(rest[1:]); err != nil {
		fmt.Fprintf(sio.Stderr, "mountctl %s: %v\n\n", cmd.name, err)
		cmdUsage(sio.Stderr, cmd, fs)
		return ExitUsage
	}
	if *cmdHelp {
		cmdUsage(sio.Stdout, cmd, fs)
		return ExitOK
	}
	if n := fs.NArg(); n < cmd.minArgs || n > cmd.maxArgs {
		fmt.Fprintf(sio.Stderr, "mountctl %s: want %s, got %d argument(s)\n\n", cmd.name, argCount(cmd), n)
		cmdUsage(sio.Stderr, cmd, fs)
		return ExitUsage
	}
	err := c.setup()
	if err == nil {
		err = cmd.run(ctx, c, fs.Args())
	}
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(sio.Stderr, "mountctl %s: %v\n", cmd.name, err)
		return ExitUsage
	}
	if c.output == "json" {
		e := asError(err)
		b, _ := json.MarshalIndent(errorBody{Error: e}, "", "  ")
		fmt.Fprintf(sio.Stdout, "%s\n", b)
	}
	fmt.Fprintf(sio.Stderr, "mountctl %s: %v\n", cmd.name, err)
	return ExitError
}

func argCount(cmd command) string {
	switch {
	case cmd.minArgs == cmd.maxArgs && cmd.maxArgs == 0:
		return "no arguments"
	case cmd.minArgs == cmd.maxArgs:
		return fmt.Sprintf("%d argument(s) (%s)", cmd.minArgs, cmd.args)
	default:
		return fmt.Sprintf("%d to %d arguments (%s)", cmd.minArgs, cmd.maxArgs, cmd.args)
	}
}

// globalFlags registers the global flags on fs, with the values so far
// (environment, then flags given before the command) as defaults.
func (c *cli) globalFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.socket, "socket", c.socket, "swarmfsd control socket ($"+EnvSocket+")")
	fs.StringVar(&c.url, "url", c.url, "reach swarmfsd over TCP at this http:// URL instead ($"+EnvURL+"; needs --token-file)")
	fs.StringVar(&c.tokenFile, "token-file", c.tokenFile, "file holding the bearer token for --url ($"+EnvTokenFile+")")
	fs.StringVarP(&c.output, "output", "o", c.output, "output format: text or json")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "give up after this long (0: 30s, and no limit while waiting for a download)")
}

func (c *cli) setup() error {
	if c.output != "text" && c.output != "json" {
		return usagef("--output %q: want text or json", c.output)
	}
	addr, opts := c.socket, []ClientOption(nil)
	if c.url != "" {
		addr = c.url
		if c.tokenFile == "" {
			return usagef("--url needs --token-file (or $%s)", EnvTokenFile)
		}
		tok, err := ReadToken(c.tokenFile)
		if err != nil {
			return err
		}
		opts = append(opts, WithToken(tok))
	}
	cl, err := NewClient(addr, opts...)
	if err != nil {
		return usagef("%v", err)
	}
	c.client = cl
	return nil
}

// quick bounds a call that does not wait for a download.
func (c *cli) quick(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.timeout
	if d <= 0 {
		d = defaultTimeout
	}
	return context.WithTimeout(ctx, d)
}

// long bounds a waiting call by --timeout only.
func (c *cli) long(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

func (c *cli) usage(w io.Writer, top *pflag.FlagSet, cmds []command) {
	fmt.Fprint(w, "mountctl controls the local swarmfsd: its objects, its status and the cluster.\n\n")
	fmt.Fprint(w, "Usage: mountctl [global flags] COMMAND [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range cmds {
		fmt.Fprintf(tw, "  %s %s\t%s\n", cmd.name, cmd.args, cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nGlobal flags (also accepted after the command):\n")
	fmt.Fprint(w, top.FlagUsages())
	fmt.Fprint(w, "\nExit codes: 0 ok, 1 the operation failed, 2 bad command line.\n")
	fmt.Fprint(w, "Run 'mountctl COMMAND --help' for a command's flags.\n")
}

func cmdUsage(w io.Writer, cmd command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: mountctl %s [flags] %s\n\n%s\n", cmd.name, cmd.args, cmd.summary+".")
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.help)
	}
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
}

func (c *cli) commands() []command {
	var (
		as                string
		wait, noWait, yes bool
		evict, local      bool
		progressInterval  = 2 * time.Second
		addIntervalFlag   = func(fs *pflag.FlagSet) {
			fs.DurationVar(&progressInterval, "progress-interval", progressInterval, "how often to print progress when not on a terminal")
		}
	)
	return []command{
		{
			name: "add", args: "URL", minArgs: 1, maxArgs: 1,
			summary: "Add an HTTP origin object to the namespace and fetch it here",
			help: "The object is converted once in the cluster (maybe on this node) and downloaded\n" +
				"from peers here. Without --as its path is the URL's path. With --wait the\n" +
				"command returns when this node's copy is complete, showing progress.",
			flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&as, "as", "", "path in the namespace (default: the URL's path)")
				fs.BoolVar(&wait, "wait", false, "wait until this node's copy is complete")
				addIntervalFlag(fs)
			},
			run: func(ctx context.Context, c *cli, args []string) error {
				c.interval = progressInterval
				lctx, cancel := c.long(ctx)
				defer cancel()
				if wait && c.output == "text" {
					fmt.Fprintf(c.io.Stderr, "adding %s…\n", args[0])
				}
				o, err := c.client.Add(lctx, AddRequest{URL: args[0], Path: as})
				if err != nil {
					return err
				}
				if wait {
					if o, err = c.waitComplete(lctx, o); err != nil {
						return err
					}
				}
				return c.print(o, func(w io.Writer) { fmt.Fprintf(w, "added %s\n", summary(o)) })
			},
		},
		{
			name: "publish", args: "FILE", minArgs: 1, maxArgs: 1,
			summary: "Publish a file of this node's filesystem into the namespace and seed it",
			help: "swarmfsd reads FILE with its own permissions (it must be on the node, and\n" +
				"below --api-publish-dir if the daemon sets one).",
			flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&as, "as", "", "path in the namespace (default: the file's name)")
			},
			run: func(ctx context.Context, c *cli, args []string) error {
				file, err := filepath.Abs(args[0])
				if err != nil {
					return usagef("%v", err)
				}
				path := as
				if path == "" {
					path = filepath.Base(file)
				}
				lctx, cancel := c.long(ctx)
				defer cancel()
				o, err := c.client.Publish(lctx, PublishRequest{File: file, Path: path})
				if err != nil {
					return err
				}
				return c.print(o, func(w io.Writer) { fmt.Fprintf(w, "published %s\n", summary(o)) })
			},
		},
		{
			name: "ls", args: "[PREFIX]", minArgs: 0, maxArgs: 1,
			summary: "List objects with their state on this node",
			flags: func(fs *pflag.FlagSet) {
				fs.BoolVar(&local, "local", false, "only objects held on this node")
			},
			run: func(ctx context.Context, c *cli, args []string) error {
				req := ListRequest{Local: local}
				if len(args) == 1 {
					req.Prefix = args[0]
				}
				qctx, cancel := c.quick(ctx)
				defer cancel()
				objs, err := c.client.List(qctx, req)
				if err != nil {
					return err
				}
				return c.print(ObjectList{Objects: nonNil(objs)}, func(w io.Writer) { printList(w, objs) })
			},
		},
		{
			name: "stat", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Show an object: record, state, progress, peers, bytes by source",
			run: func(ctx context.Context, c *cli, args []string) error {
				qctx, cancel := c.quick(ctx)
				defer cancel()
				o, err := c.client.Stat(qctx, args[0])
				if err != nil {
					return err
				}
				return c.print(o, func(w io.Writer) { printObject(w, o) })
			},
		},
		{
			name: "warm", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Download an object fully to this node now",
			help:    "Waits for the copy to complete, showing progress, unless --no-wait.",
			flags: func(fs *pflag.FlagSet) {
				fs.BoolVar(&noWait, "no-wait", false, "start the download and return")
				addIntervalFlag(fs)
			},
			run: func(ctx context.Context, c *cli, args []string) error {
				c.interval = progressInterval
				lctx, cancel := c.long(ctx)
				defer cancel()
				o, err := c.client.Warm(lctx, args[0], false)
				if err != nil {
					return err
				}
				if !noWait {
					if o, err = c.waitComplete(lctx, o); err != nil {
						return err
					}
				}
				verb := "warmed"
				if noWait && o.State != StateComplete {
					verb = "warming"
				}
				return c.print(o, func(w io.Writer) { fmt.Fprintf(w, "%s %s\n", verb, summary(o)) })
			},
		},
		{
			name: "pin", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Keep an object's data resident in RAM on this node",
			run: func(ctx context.Context, c *cli, args []string) error {
				return c.objectCall(ctx, c.client.Pin, args[0], "pinned")
			},
		},
		{
			name: "unpin", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Release a pin",
			run: func(ctx context.Context, c *cli, args []string) error {
				return c.objectCall(ctx, c.client.Unpin, args[0], "unpinned")
			},
		},
		{
			name: "evict", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Drop this node's copy of an object (it stays in the index)",
			run: func(ctx context.Context, c *cli, args []string) error {
				return c.objectCall(ctx, c.client.Evict, args[0], "evicted")
			},
		},
		{
			name: "rm", args: "PATH", minArgs: 1, maxArgs: 1,
			summary: "Delete a path and all its versions from the index, cluster-wide",
			help: "Needs --yes. Copies on nodes stay until they are evicted; --evict drops this\n" +
				"node's copy too.",
			flags: func(fs *pflag.FlagSet) {
				fs.BoolVar(&yes, "yes", false, "confirm the cluster-wide delete")
				fs.BoolVar(&evict, "evict", false, "also drop this node's copy")
			},
			run: func(ctx context.Context, c *cli, args []string) error {
				if !yes {
					return usagef("deleting %s from the index is cluster-wide: confirm with --yes", args[0])
				}
				qctx, cancel := c.quick(ctx)
				defer cancel()
				d, err := c.client.Delete(qctx, args[0], evict)
				if err != nil {
					return err
				}
				return c.print(d, func(w io.Writer) {
					local := "local copy kept"
					if d.Evicted {
						local = "local copy evicted"
					}
					fmt.Fprintf(w, "deleted %s from the index (infohash %s, %s)\n", d.Path, d.InfoHash, local)
				})
			},
		},
		{
			name: "status", args: "", minArgs: 0, maxArgs: 0,
			summary: "Show this node: version, uptime, rates, disk use, etcd health",
			run: func(ctx context.Context, c *cli, _ []string) error {
				qctx, cancel := c.quick(ctx)
				defer cancel()
				s, err := c.client.Status(qctx)
				if err != nil {
					return err
				}
				return c.print(s, func(w io.Writer) { printStatus(w, s) })
			},
		},
		{
			name: "nodes", args: "", minArgs: 0, maxArgs: 0,
			summary: "List the live nodes of the cluster with rack and zone",
			run: func(ctx context.Context, c *cli, _ []string) error {
				qctx, cancel := c.quick(ctx)
				defer cancel()
				nodes, err := c.client.Nodes(qctx)
				if err != nil {
					return err
				}
				return c.print(NodeList{Nodes: nonNil(nodes)}, func(w io.Writer) { printNodes(w, nodes) })
			},
		},
	}
}

func (c *cli) objectCall(ctx context.Context, f func(context.Context, string) (Object, error), path, verb string) error {
	qctx, cancel := c.quick(ctx)
	defer cancel()
	o, err := f(qctx, path)
	if err != nil {
		return err
	}
	return c.print(o, func(w io.Writer) { fmt.Fprintf(w, "%s %s\n", verb, summary(o)) })
}

// print writes v as indented JSON with -o json, or runs text.
func (c *cli) print(v any, text func(io.Writer)) error {
	if c.output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.io.Stdout, "%s\n", b)
		return err
	}
	text(c.io.Stdout)
	return nil
}

func bytesStr(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func percent(p float64) string { return fmt.Sprintf("%d%%", int(p*100+1e-9)) }

// summary is the one-line description of an object after an operation.
func summary(o Object) string {
	name := o.Path
	if name == "" {
		name = o.InfoHash
	}
	s := fmt.Sprintf("%s (%s, %s", name, bytesStr(o.Size), o.State)
	if o.State == StateDownloading {
		s += " " + percent(o.Progress)
	}
	if o.State != StateAbsent {
		s += fmt.Sprintf(", %s from peers, %s from origin", bytesStr(o.PeerBytes), bytesStr(o.OriginBytes))
	}
	return s + ", infohash " + o.InfoHash + ")"
}

// share is the split of the bytes received between peers and the origin.
func share(o Object) string {
	total := o.PeerBytes + o.OriginBytes
	if total == 0 {
		return "peers -, origin -"
	}
	p := o.PeerBytes * 100 / total
	return fmt.Sprintf("peers %d%%, origin %d%%", p, 100-p)
}

func printList(w io.Writer, objs []Object) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tSIZE\tSTATE\tPROGRESS\tPEERS\tFROM PEERS\tFROM ORIGIN\tINFOHASH")
	for _, o := range objs {
		p := o.Path
		if p == "" {
			p = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p, bytesStr(o.Size), o.State, percent(o.Progress),
			o.Peers, bytesStr(o.PeerBytes), bytesStr(o.OriginBytes), shortHash(o.InfoHash))
	}
	tw.Flush()
}

func shortHash(ih string) string {
	if len(ih) > 12 {
		return ih[:12]
	}
	return ih
}

func printObject(w io.Writer, o Object) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("path", "%s", orDash(o.Path))
	row("infohash", "%s", o.InfoHash)
	row("size", "%s (%d bytes)", bytesStr(o.Size), o.Size)
	if o.PieceLength > 0 {
		row("piece length", "%s", bytesStr(o.PieceLength))
	}
	switch o.Source.Kind {
	case "url":
		v := o.Source.ETag
		if v == "" {
			v = o.Source.LastModified
		}
		row("source", "%s (version %s, by %s)", o.Source.URL, orDash(v), orDash(o.Source.Node))
	case "file":
		row("source", "file %s on %s", o.Source.File, orDash(o.Source.Node))
	}
	if !o.Created.IsZero() {
		row("created", "%s", o.Created.UTC().Format(time.RFC3339))
	}
	row("state", "%s", o.State)
	row("progress", "%s (%s of %s)", percent(o.Progress), bytesStr(o.BytesCompleted), bytesStr(o.Size))
	row("peers", "%d (%d seeders)", o.Peers, o.Seeders)
	row("received", "%s from peers, %s from origin (%s)", bytesStr(o.PeerBytes), bytesStr(o.OriginBytes), share(o))
	row("sent", "%s", bytesStr(o.SentBytes))
	row("pinned", "%s", yesNo(o.Pinned))
	tw.Flush()
}

func printStatus(w io.Writer, s NodeStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("node", "%s", s.ID)
	row("version", "%s", s.Version)
	row("uptime", "%s (since %s)", (time.Duration(s.UptimeSeconds) * time.Second).String(), s.Started.UTC().Format(time.RFC3339))
	row("peer address", "%s", s.PeerAddr)
	row("rack / zone", "%s / %s", orDash(s.Rack), orDash(s.Zone))
	row("objects", "%d (%d complete), %d peers", s.Objects, s.ObjectsComplete, s.Peers)
	row("rates", "in %s/s from peers, %s/s from origin; out %s/s",
		bytesStr(int64(s.Rates.PeerBytesPerSec)), bytesStr(int64(s.Rates.OriginBytesPerSec)), bytesStr(int64(s.Rates.SentBytesPerSec)))
	row("totals", "%s from peers, %s from origin, %s sent; pieces %d verified, %d failed; %d origin fallbacks",
		bytesStr(s.Totals.PeerBytes), bytesStr(s.Totals.OriginBytes), bytesStr(s.Totals.SentBytes),
		s.Totals.PiecesVerified, s.Totals.PiecesFailed, s.Totals.OriginFallbacks)
	row("disk", "%s of object data in %s; file system %s free of %s",
		bytesStr(s.Disk.UsedBytes), s.Disk.DataDir, humanize.IBytes(s.Disk.FreeBytes), humanize.IBytes(s.Disk.TotalBytes))
	etcd := "healthy"
	if !s.Etcd.Healthy {
		etcd = "UNREACHABLE: " + s.Etcd.Error
	}
	row("etcd", "%s (%s)", etcd, strings.Join(s.Etcd.Endpoints, ", "))
	tr := "none"
	if len(s.Trackers) > 0 {
		tr = strings.Join(s.Trackers, ", ")
	}
	if len(s.TrackerHealth) > 0 {
		var parts []string
		for _, h := range s.TrackerHealth {
			state := "healthy"
			if !h.Healthy {
				state = "DOWN: " + h.Error
			}
			parts = append(parts, h.URL+" "+state)
		}
		tr = strings.Join(parts, "; ")
	}
	row("trackers", "%s", tr)
	tw.Flush()
}

func printNodes(w io.Writer, nodes []Node) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tZONE\tRACK\tPEER ADDRESS\tVERSION\tUP SINCE\tLIVE")
	for _, n := range nodes {
		id := n.ID
		if n.Self {
			id += " (this node)"
		}
		since := "-"
		if !n.Started.IsZero() {
			since = n.Started.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, orDash(n.Zone), orDash(n.Rack), n.PeerAddr, orDash(n.Version), since, yesNo(n.Live))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return cwriter.IsTerminal(int(f.Fd())) }
