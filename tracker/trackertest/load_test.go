package trackertest_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

// AnnounceLoad measures registered swarms, and refuses to measure a
// tracker that turns the announces away with a failure reason (status 200).
func TestAnnounceLoad(t *testing.T) {
	shape := trackertest.LoadShape{Swarms: 2, Peers: 10, Clients: 2, Window: 200 * time.Millisecond}
	reg := tracker.StaticRegistry{}
	store := tracker.NewMemoryStore(time.Minute)
	defer store.Close()
	srv, err := tracker.New(tracker.Config{}, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx := context.Background()

	if _, err := trackertest.AnnounceLoad(ctx, ts.URL+"/announce", shape); err == nil || !strings.Contains(err.Error(), "unregistered") {
		t.Fatalf("load on unregistered swarms: %v, want a failure answer", err)
	}
	reg[trackertest.IH(0)], reg[trackertest.IH(1)] = true, true
	r, err := trackertest.AnnounceLoad(ctx, ts.URL+"/announce", shape)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Failed != 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Elapsed < shape.Window {
		t.Errorf("result %+v", r)
	}
	if _, err := trackertest.AnnounceLoad(ctx, ts.URL+"/announce", trackertest.LoadShape{Peers: 1, Clients: 1, Window: time.Second}); err == nil {
		t.Error("no error for a shape without swarms")
	}
}
