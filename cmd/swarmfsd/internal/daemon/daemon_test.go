package daemon

import (
	"slices"
	"testing"
)

func TestLabelTrackers(t *testing.T) {
	got := labelTrackers([]string{"http://t1:7070/announce", "http://t2/announce?x=1"}, "r1", "z 1")
	want := []string{"http://t1:7070/announce?rack=r1&zone=z+1", "http://t2/announce?rack=r1&x=1&zone=z+1"}
	if !slices.Equal(got, want) {
		t.Errorf("labelTrackers = %q; want %q", got, want)
	}
	if got := labelTrackers([]string{"http://t1/announce"}, "", ""); got[0] != "http://t1/announce" {
		t.Errorf("labelTrackers without labels = %q", got)
	}
}
