package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"swarmfs/swarm/swarmtest"
	"swarmfs/tests/harness"
)

// swarmfsd --tracker-listen runs a tracker replica in-process (the
// one-machine default): the node announces to it by itself, and other
// nodes can use it.
func TestEmbeddedTracker(t *testing.T) {
	data := swarmtest.Data(71, 8<<20)
	origin := newOrigin(t, "/e.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	taddr := fmt.Sprintf("127.0.0.1:%d", port)
	a := startNode(t, dir, "a", "--tracker-listen", taddr, "--add", origin.URL("/e.bin"))
	if _, err := a.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, dir, "b", "--etcd-endpoints", a.EtcdURL, "--tracker", "http://"+taddr+"/announce?rack=r1", "--add", origin.URL("/e.bin"))
	if _, err := b.WaitComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := a.Metrics(ctx)
		var ok float64
		for k, v := range m {
			if strings.HasPrefix(k, "swarmfs_tracker_announces_total") && strings.Contains(k, `result="ok"`) {
				ok += v
			}
		}
		if err == nil && ok >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("embedded tracker answered %v successful announces (metrics err %v); want both nodes", ok, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// mountctl status probes the tracker's health.
	out := mustRun(t, ctx, filepath.Join(bin(t), "mountctl"), "--socket", filepath.Join(b.Dir, "mountctl.sock"), "-o", "json", "status")
	if !strings.Contains(out, `"healthy": true`) || !strings.Contains(out, `"tracker_health"`) {
		t.Errorf("mountctl status does not report a healthy tracker:\n%s", out)
	}
	text := mustRun(t, ctx, filepath.Join(bin(t), "mountctl"), "--socket", filepath.Join(b.Dir, "mountctl.sock"), "status")
	if !strings.Contains(text, taddr+"/announce?rack=r1 healthy") {
		t.Errorf("mountctl status text:\n%s", text)
	}
}
