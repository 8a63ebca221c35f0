package trackertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadShape is an announce load: Peers peers spread over Swarms swarms
// (infohashes IH(0)…IH(Swarms-1)) re-announce from Clients concurrent
// keep-alive connections for Window.
type LoadShape struct {
	Swarms, Peers, Clients int
	Window                 time.Duration
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Requests, Failed int64
	Elapsed          time.Duration
	// P50 and P99 are request latencies.
	P50, P99 time.Duration
}

// PerSecond is the rate of successful requests.
func (r LoadResult) PerSecond() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// AnnounceLoad announces every peer once (so the swarms are full), then
// runs the load against the tracker whose announce URL is announceURL. A
// third of the peers are seeders; zones and racks alternate.
func AnnounceLoad(ctx context.Context, announceURL string, s LoadShape) (LoadResult, error) {
	urls := make([]string, s.Peers)
	for i := range urls {
		a := Announce{
			InfoHash: IH(i % s.Swarms),
			PeerID:   PeerID(fmt.Sprintf("-SW0001-%d", i)),
			Port:     10000 + i,
			Left:     int64(i % 3),
			Zone:     fmt.Sprintf("z%d", i%2),
			Rack:     fmt.Sprintf("r%d", i%8),
		}
		urls[i] = announceURL + "?" + a.Query()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: s.Clients, MaxConnsPerHost: s.Clients}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	get := func(u string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	for _, u := range urls {
		if err := get(u); err != nil {
			return LoadResult{}, fmt.Errorf("warm-up announce: %w", err)
		}
	}
	var r LoadResult
	var failed atomic.Int64
	var next atomic.Int64
	lat := make([][]time.Duration, s.Clients)
	start := time.Now()
	stop := start.Add(s.Window)
	var wg sync.WaitGroup
	for c := range s.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				t := time.Now()
				if err := get(urls[next.Add(1)%int64(s.Peers)]); err != nil {
					failed.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	r.Requests, r.Failed = int64(len(all)), failed.Load()
	if len(all) > 0 {
		r.P50, r.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r, ctx.Err()
}
