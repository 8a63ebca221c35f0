package trackertest

import (
	"bytes"
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

// failureKey marks a bencoded failure answer, which trackers send with
// status 200 (an unregistered infohash in private mode, for one).
var failureKey = []byte("14:failure reason")

// AnnounceLoad announces every peer once (so the swarms are full), then
// runs the load against the tracker whose announce URL is announceURL. A
// third of the peers are seeders; zones and racks alternate. A warm-up
// announce that fails (a failure reason included) is an error: the load
// would measure the rejection path. During the load, failed requests are
// counted in Failed and left out of the latencies.
func AnnounceLoad(ctx context.Context, announceURL string, s LoadShape) (LoadResult, error) {
	if s.Swarms <= 0 || s.Peers < s.Swarms || s.Clients <= 0 || s.Window <= 0 {
		return LoadResult{}, fmt.Errorf("announce load: bad shape %+v (want swarms > 0, peers >= swarms, clients > 0, window > 0)", s)
	}
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
	get := func(u string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
		case resp.StatusCode != http.StatusOK:
			err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
		case bytes.Contains(body, failureKey):
			err = fmt.Errorf("failure answer %q", body)
		}
		return body, err
	}
	for _, u := range urls {
		body, err := get(u)
		if err == nil {
			_, err = DecodeAnnounce(body)
		}
		if err != nil {
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
				if _, err := get(urls[next.Add(1)%int64(s.Peers)]); err != nil {
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
