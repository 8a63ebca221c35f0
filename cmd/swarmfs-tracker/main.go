// Command swarmfs-tracker is a stateless BitTorrent HTTP tracker. Replicas
// share swarms through etcd; see package tracker.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"swarmfs/tracker"
)

func main() {
	var cfg tracker.Config
	fs := pflag.NewFlagSet("swarmfs-tracker", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := tracker.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "swarmfs-tracker:", err)
		os.Exit(1)
	}
}
