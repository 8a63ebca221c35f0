// Command swarmfsd is the swarmfs node daemon. See package daemon for what
// it runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"swarmfs/cmd/swarmfsd/internal/daemon"
)

func main() {
	var cfg daemon.Config
	fs := pflag.NewFlagSet("swarmfsd", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "swarmfsd:", err)
		os.Exit(1)
	}
}
