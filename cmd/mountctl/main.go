// Command mountctl controls the local swarmfsd through its control API.
// See package mountctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"swarmfs/mountctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mountctl.Main(ctx, os.Args[1:], mountctl.IO{
		Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Terminal: mountctl.IsTerminal(os.Stderr),
	})
	stop()
	os.Exit(code)
}
