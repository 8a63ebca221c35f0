package tracker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"swarmfs/tracker"
	"swarmfs/tracker/trackertest"
)

// localityPeers are leechers in two zones of two racks each (rack names
// repeat across zones) and three without labels, by "zone/rack" → ports.
var localityPeers = map[string][]int{
	"z1/r1": {1101, 1102, 1103},
	"z1/r2": {1201, 1202, 1203},
	"z2/r1": {2101, 2102, 2103},
	"z2/r2": {2201, 2202, 2203},
	"/":     {9001, 9002, 9003},
}

func located(port int, zone, rack string) trackertest.Announce {
	a := ann(port, 10)
	a.Zone, a.Rack = zone, rack
	return a
}

// populate announces the locality peers to base.
func populate(t *testing.T, base string) map[int]string {
	t.Helper()
	where := map[int]string{}
	for loc, ports := range localityPeers {
		zone, rack, _ := strings.Cut(loc, "/")
		for _, p := range ports {
			if _, err := trackertest.DoAnnounce(context.Background(), base+"/announce", located(p, zone, rack)); err != nil {
				t.Fatal(err)
			}
			where[p] = loc
		}
	}
	return where
}

// locations returns the "zone/rack" of each returned peer, in order, and
// the ports.
func locations(t *testing.T, base string, a trackertest.Announce, where map[int]string) ([]string, []int) {
	t.Helper()
	r, err := trackertest.DoAnnounce(context.Background(), base+"/announce", a)
	if err != nil || r.FailureReason != "" {
		t.Fatalf("announce: %+v, %v", r, err)
	}
	var locs []string
	var ports []int
	for _, p := range r.Peers {
		locs = append(locs, where[int(p.Addr.Port())])
		ports = append(ports, int(p.Addr.Port()))
	}
	return locs, ports
}

// tiersOK reports whether locs is want[0] repeated n0 times, then want[1]
// n1 times, then only members of rest.
func tiersOK(locs []string, first string, n0 int, second string, n1 int, rest ...string) bool {
	if len(locs) < n0+n1 {
		return false
	}
	for i, l := range locs {
		switch {
		case i < n0 && l != first, i >= n0 && i < n0+n1 && l != second:
			return false
		case i >= n0+n1 && !slices.Contains(rest, l):
			return false
		}
	}
	return true
}

func TestLocalityOrder(t *testing.T) {
	base := newTestServer(t, tracker.Config{Public: true})
	where := populate(t, base)
	// The announcers below register themselves too.
	where[5000], where[5001], where[6000], where[6001] = "z1/r1", "z2/r2", "/", "z2/"
	rest := []string{"z2/r1", "z2/r2", "/"}
	orders := map[string]bool{}   // orders of the rack tier seen
	lastTier := map[string]bool{} // orders of the last tier seen
	for range 30 {
		locs, ports := locations(t, base, located(5000, "z1", "r1"), where)
		if len(locs) != 15 || !tiersOK(locs, "z1/r1", 3, "z1/r2", 3, rest...) {
			t.Fatalf("z1/r1 announcer got %v; want 3×z1/r1, 3×z1/r2, then 9 of z2 and unlabelled", locs)
		}
		orders[fmt.Sprint(ports[:3])] = true
		lastTier[fmt.Sprint(ports[6:])] = true
	}
	if len(orders) < 2 || len(lastTier) < 2 {
		t.Errorf("30 announces gave %d orders of the rack tier and %d of the last tier; want random order within tiers", len(orders), len(lastTier))
	}

	// Rack names are scoped by zone: z2/r2's own rack, then z2/r1.
	locs, _ := locations(t, base, located(5001, "z2", "r2"), where)
	if !tiersOK(locs, "z2/r2", 3, "z2/r1", 3, "z1/r1", "z1/r2", "/") || len(locs) != 16 {
		t.Errorf("z2/r2 announcer got %v; want 3×z2/r2, 3×z2/r1, then 10 others (z1 and unlabelled)", locs)
	}

	// numwant cuts from the far end.
	a := located(5000, "z1", "r1")
	a.NumWant = "4"
	if locs, _ := locations(t, base, a, where); !slices.Equal(locs, []string{"z1/r1", "z1/r1", "z1/r1", "z1/r2"}) {
		t.Errorf("numwant=4 from z1/r1 got %v; want the 3 rack peers and 1 zone peer", locs)
	}

	// A third-party client without labels is served everyone.
	if locs, _ := locations(t, base, ann(6000, 10), where); len(locs) != 17 {
		t.Errorf("unlabelled announcer got %d peers; want all 17 others", len(locs))
	}
	// A zone without racks: the 7 z2 peers first, in any rack.
	locs, _ = locations(t, base, located(6001, "z2", ""), where)
	for i, l := range locs {
		if (i < 7) != strings.HasPrefix(l, "z2/") {
			t.Errorf("z2 announcer without rack got %v; want the 7 z2 peers first", locs)
			break
		}
	}
	if len(locs) != 18 {
		t.Errorf("z2 announcer without rack got %d peers; want all 18 others", len(locs))
	}
}

func TestLocalityCrossZoneCap(t *testing.T) {
	for _, tc := range []struct {
		cap       int
		wantCross int
	}{{0, 6}, {2, 2}, {-1, 0}} {
		base := newTestServer(t, tracker.Config{Public: true, MaxCrossZonePeers: tc.cap})
		where := populate(t, base)
		locs, _ := locations(t, base, located(5000, "z1", "r1"), where)
		cross, unlabelled := 0, 0
		for _, l := range locs {
			switch {
			case strings.HasPrefix(l, "z2/"):
				cross++
			case l == "/":
				unlabelled++
			}
		}
		if cross != tc.wantCross || unlabelled != 3 || !tiersOK(locs, "z1/r1", 3, "z1/r2", 3, "z2/r1", "z2/r2", "/") {
			t.Errorf("MaxCrossZonePeers %d: got %v; want the 6 z1 peers first, then the 3 unlabelled and %d from z2", tc.cap, locs, tc.wantCross)
		}
	}
}
