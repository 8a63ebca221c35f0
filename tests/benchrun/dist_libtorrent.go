package main

import (
	"context"
	"fmt"
)

// Placeholder until the libtorrent runner lands.
func runLibtorrent(ctx context.Context, e *env, p distParams, dataPath, sum string) (distResult, error) {
	return distResult{}, fmt.Errorf("libtorrent runner not built yet")
}
