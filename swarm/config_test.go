package swarm

import (
	"strings"
	"testing"
)

func TestChoosePieceLength(t *testing.T) {
	cfg, err := Config{}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	const MiB, GiB = int64(1 << 20), int64(1 << 30)
	tests := []struct {
		size int64
		want int64
	}{
		{-1, 4 * MiB},
		{0, 4 * MiB},
		{1, 4 * MiB},
		{1 * GiB, 4 * MiB},
		{32 * GiB, 4 * MiB},         // exactly 8192 pieces
		{32*GiB + 1, 8 * MiB},       // one byte more doubles it
		{100 * GiB, 16 * MiB},       // 6400 pieces
		{4096 * GiB, 256 * MiB},     // capped
		{1 << 50, 256 * MiB},        // capped even when far over
		{2*GiB*1024 + 5, 256 * MiB}, // 2 TiB + 5 → capped at max
		{64*GiB - 1, 8 * MiB},       // just under the next doubling
	}
	for _, tt := range tests {
		if got := cfg.ChoosePieceLength(tt.size); got != tt.want {
			t.Errorf("ChoosePieceLength(%d) = %d; want %d", tt.size, got, tt.want)
		}
	}
	cfg.PieceLength = 1 << 20
	if got := cfg.ChoosePieceLength(100 * GiB); got != 1<<20 {
		t.Errorf("fixed ChoosePieceLength = %d; want %d", got, 1<<20)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		werr string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "bad listen", cfg: Config{ListenAddr: "nope"}, werr: `listen address "nope"`},
		{name: "negative rate", cfg: Config{UploadRate: -1}, werr: "rates must not be negative"},
		{name: "piece not power of two", cfg: Config{PieceLength: 3 << 20}, werr: "piece length 3.0 MiB must be a power of two"},
		{name: "piece too small", cfg: Config{PieceLength: 4096}, werr: "at least 16 KiB"},
		{name: "min above max", cfg: Config{MinPieceLength: 8 << 20, MaxPieceLength: 4 << 20}, werr: "min piece length 8.0 MiB is above max"},
		{name: "negative stall", cfg: Config{StallTimeout: -1}, werr: "stall timeout -1ns is negative"},
		{name: "negative count", cfg: Config{TargetPieces: -5}, werr: "counts must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Validate()
			if tt.werr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				if got.StallTimeout != DefaultStallTimeout || got.MinPieceLength != DefaultMinPieceLength || got.DataDir != DefaultDataDir {
					t.Errorf("Validate() did not fill defaults: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.werr) {
				t.Fatalf("Validate() = %v; want error containing %q", err, tt.werr)
			}
		})
	}
}

func TestByteSizeFlag(t *testing.T) {
	var b ByteSize
	for in, want := range map[string]ByteSize{"64MiB": 64 << 20, "1GiB": 1 << 30, "1048576": 1 << 20, "0": 0} {
		if err := b.Set(in); err != nil || b != want {
			t.Errorf("Set(%q) = %v, %d; want %d", in, err, b, want)
		}
	}
	if err := b.Set("lots"); err == nil {
		t.Errorf("Set(%q) = nil; want error", "lots")
	}
}
