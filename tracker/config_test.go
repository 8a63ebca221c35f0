package tracker_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  tracker.Config
		werr string
		want func(c tracker.Config) bool
	}{
		{name: "defaults", want: func(c tracker.Config) bool {
			return c.ListenAddr == ":6969" && c.Interval == 30*time.Second && c.MinInterval == 15*time.Second &&
				c.PeerTTL == 90*time.Second && c.DefaultNumWant == 50 && c.MaxNumWant == 200 && !c.Public &&
				c.Etcd.Prefix == "/swarmfs/" && c.Etcd.FlushInterval == 50*time.Millisecond && c.Etcd.MaxBatch == 128
		}},
		{name: "derived from interval", cfg: tracker.Config{Interval: 10 * time.Second}, want: func(c tracker.Config) bool {
			return c.MinInterval == 5*time.Second && c.PeerTTL == 30*time.Second
		}},
		{name: "default numwant within the cap", cfg: tracker.Config{MaxNumWant: 10}, want: func(c tracker.Config) bool {
			return c.DefaultNumWant == 10
		}},
		{name: "prefix ends with a slash", cfg: tracker.Config{Etcd: tracker.EtcdConfig{Prefix: "/x"}}, want: func(c tracker.Config) bool {
			return c.Etcd.Prefix == "/x/"
		}},
		{name: "bad listen address", cfg: tracker.Config{ListenAddr: "nowhere"}, werr: "listen address"},
		{name: "interval below 1s", cfg: tracker.Config{Interval: 500 * time.Millisecond}, werr: "below 1s"},
		{name: "min interval above interval", cfg: tracker.Config{Interval: 10 * time.Second, MinInterval: 20 * time.Second}, werr: "min interval"},
		{name: "peer ttl below interval", cfg: tracker.Config{Interval: 10 * time.Second, PeerTTL: 5 * time.Second}, werr: "peer ttl"},
		{name: "numwant above max", cfg: tracker.Config{DefaultNumWant: 300}, werr: "above max numwant"},
		{name: "negative count", cfg: tracker.Config{MaxNumWant: -1}, werr: "must not be negative"},
		{name: "negative etcd duration", cfg: tracker.Config{Etcd: tracker.EtcdConfig{FlushInterval: -time.Second}}, werr: "must not be negative"},
		{name: "relative prefix", cfg: tracker.Config{Etcd: tracker.EtcdConfig{Prefix: "swarmfs/"}}, werr: "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Validate()
			if tt.werr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.werr) {
					t.Fatalf("Validate() = %v; want error containing %q", err, tt.werr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v; want nil", err)
			}
			if !tt.want(got) {
				t.Errorf("Validate() = %+v; not the expected defaults", got)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRunPrivateNeedsEtcd(t *testing.T) {
	err := tracker.Run(context.Background(), tracker.Config{ListenAddr: "127.0.0.1:0"}, tracker.WithLogger(discard()))
	if err == nil || !strings.Contains(err.Error(), "private mode") {
		t.Fatalf("Run(private, no etcd) = %v; want an error about private mode", err)
	}
}

// Run serves announce, /metrics and /healthz, and returns nil when its
// context ends.
func TestRunServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tracker.Run(ctx, tracker.Config{ListenAddr: addr, Public: true}, tracker.WithLogger(discard()))
	}()
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer tcancel()
	for {
		status, _, err := trackertest.Get(tctx, "http://"+addr+"/healthz", "")
		if err == nil && status == http.StatusOK {
			break
		}
		if tctx.Err() != nil {
			t.Fatalf("/healthz not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := trackertest.DoAnnounce(tctx, "http://"+addr+"/announce", ann(1001, 9)); err != nil {
		t.Fatal(err)
	}
	status, body, err := trackertest.Get(tctx, "http://"+addr+"/metrics", "")
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), `swarmfs_tracker_announces_total{result="ok"} 1`) ||
		!strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics = %d, %v; want announces_total{ok} 1 and Go runtime metrics:\n%.2000s", status, err, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
	}
}
