package indextest

import (
	"context"
	"testing"
	"time"
)

func TestClusterSurvivesLeaderStop(t *testing.T) {
	c := NewCluster(t, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	l := c.Leader(ctx)
	if l < 0 {
		t.Fatal("no leader")
	}
	c.Stop(l)
	var err error
	for range 50 {
		if _, err = cli.Put(ctx, "k", "v2"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("put after leader stop: %v", err)
	}
	c.Restart(l)
	resp, err := cli.Get(ctx, "k")
	if err != nil || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("get = %v, %v; want v2", resp, err)
	}
}
