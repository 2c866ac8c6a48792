package target

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// delayed is a server reached after a random delay, answering after
// another: what a loaded machine or a network does to requests.
type delayed struct {
	mu       sync.Mutex
	rnd      *rand.Rand
	arrivals []time.Time
}

func (d *delayed) pause(max time.Duration) {
	d.mu.Lock()
	n := time.Duration(d.rnd.Int64N(int64(max)))
	d.mu.Unlock()
	time.Sleep(n)
}

func (d *delayed) RoundTrip(req *http.Request) (*http.Response, error) {
	d.pause(25 * time.Millisecond) // on the way there
	d.mu.Lock()
	d.arrivals = append(d.arrivals, time.Now())
	d.mu.Unlock()
	d.pause(5 * time.Millisecond) // on the way back
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusOK)
	return rec.Result(), nil
}

// TestWindowTransportHoldsAtTheServer: whatever the delays on the way, no
// window at the server sees more than the ceiling. (A shorter window than
// the production second keeps the test fast; the logic is the same.)
func TestWindowTransportHoldsAtTheServer(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprint("failing=", failing), func(t *testing.T) {
			const ceiling, window, requests = 8, 50 * time.Millisecond, 160
			srv := &delayed{rnd: rand.New(rand.NewPCG(7, 9))}
			var base http.RoundTripper = srv
			if failing {
				base = failAfter{srv}
			}
			tr := &windowTransport{base: base, max: ceiling, window: window, now: time.Now, changed: make(chan struct{})}
			var wg sync.WaitGroup
			next := make(chan int)
			for range 32 {
				wg.Go(func() {
					for range next {
						req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://absorb.invalid/users", nil)
						if resp, err := tr.RoundTrip(req); err == nil {
							resp.Body.Close()
						}
					}
				})
			}
			for i := range requests {
				next <- i
			}
			close(next)
			wg.Wait()
			got := slices.SortedFunc(slices.Values(srv.arrivals), time.Time.Compare)
			if len(got) != requests {
				t.Fatalf("%d arrivals, want %d", len(got), requests)
			}
			best, j := 0, 0
			for i := range got {
				for j < len(got) && got[j].Before(got[i].Add(window)) {
					j++
				}
				best = max(best, j-i)
			}
			if best > ceiling {
				t.Errorf("%d requests reached the server within one window, ceiling %d", best, ceiling)
			}
			if tr.inflight != 0 {
				t.Errorf("%d requests still counted in flight", tr.inflight)
			}
		})
	}
}

// failAfter reaches the server but reports a failure, like a response lost
// on the way back.
type failAfter struct{ http.RoundTripper }

func (f failAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.RoundTripper.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	return nil, fmt.Errorf("connection reset")
}

func TestWindowTransportHonoursContext(t *testing.T) {
	tr := &windowTransport{base: &delayed{rnd: rand.New(rand.NewPCG(1, 1))}, max: 1, window: time.Hour, now: time.Now, changed: make(chan struct{})}
	req, _ := http.NewRequest("GET", "http://absorb.invalid/", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.RoundTrip(req.WithContext(ctx)); err != context.Canceled {
		t.Errorf("RoundTrip with the window full and ctx cancelled = %v", err)
	}
	if WindowTransport(nil, 0) != http.DefaultTransport {
		t.Error("ceiling 0 should leave the transport alone")
	}
}
