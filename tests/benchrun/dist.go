package main

import (
	"math"
)

// distParams are the sizes of the distribution scenario. Every system gets
// the same: one source holding the object (upload capped at SeedUpload) and
// Nodes fetchers (upload capped at Upload, download at Download).
type distParams struct {
	Preset      string `json:"preset"`
	Nodes       int    `json:"nodes"`        // N: fetching nodes
	Size        int64  `json:"size"`         // F: object bytes
	Upload      int64  `json:"upload"`       // U: each fetching node's upload cap, bytes/s
	SeedUpload  int64  `json:"seed_upload"`  // U_s: the origin's (source's) upload cap, bytes/s
	Download    int64  `json:"download"`     // D: each node's download cap, bytes/s (0: none)
	PieceLength int64  `json:"piece_length"` // the same for swarmfs and libtorrent
}

// distResult is one system's run.
type distResult struct {
	System string `json:"system"`
	// Times is each fetching node's completion time in seconds from the
	// common start, in node order; NaN for a node that did not finish.
	Times []float64 `json:"times_seconds"`
	// CPUSeconds is user+sys of every process of the system under test
	// from the start to the last completion.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Delivered is the bytes the fetching nodes hold at the end (N·F when
	// all finish).
	Delivered int64 `json:"delivered_bytes"`
	// SourceBytes is what the source (origin, or seed) sent during the
	// run, payload only.
	SourceBytes int64 `json:"source_bytes"`
	// Verified says every fetching node's copy has the object's sha256.
	Verified bool     `json:"verified"`
	Notes    []string `json:"notes,omitempty"`
}

// tMin is the Kumar–Ross minimum distribution time in seconds:
// max(F/U_s, F/D, N·F/(U_s+N·U)). An uncapped rate counts as infinite.
func (p distParams) tMin() float64 {
	f := float64(p.Size)
	inf := math.Inf(1)
	rate := func(r int64) float64 {
		if r <= 0 {
			return inf
		}
		return float64(r)
	}
	t := max(f/rate(p.SeedUpload), f/rate(p.Download))
	if p.SeedUpload > 0 && p.Upload > 0 {
		t = max(t, float64(p.Nodes)*f/(float64(p.SeedUpload)+float64(p.Nodes)*float64(p.Upload)))
	}
	return t
}

// cpuPerGiB is CPU seconds per GiB delivered.
func (r distResult) cpuPerGiB() float64 {
	if r.Delivered == 0 {
		return math.NaN()
	}
	return r.CPUSeconds / (float64(r.Delivered) / (1 << 30))
}
