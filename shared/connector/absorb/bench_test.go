package absorb_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

// BenchmarkGet measures one learner read against the sim, unthrottled.
func BenchmarkGet(b *testing.B) {
	s := absorbsim.New(absorbsim.Options{Username: admin, Password: pass, PrivateKey: key})
	defer s.Close()
	id := s.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	c, err := absorb.New(absorb.Config{BaseURL: s.URL(), Username: admin, Password: pass, PrivateKey: key,
		Limiter: throttle.NewLocal(0, 1), Tokens: tokencache.NewLocal()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThrottledWorkers runs 8 connectors (one shared token, one
// shared throttle.Local at 50 rps, burst 10) against a sim that allows 60
// requests per second, and reports the most requests the sim saw in any
// 1-second window and how many it refused.
func BenchmarkThrottledWorkers(b *testing.B) {
	s := absorbsim.New(absorbsim.Options{Username: admin, Password: pass, PrivateKey: key, RateLimit: 60})
	defer s.Close()
	id := s.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	lim, cache := throttle.NewLocal(50, 10), tokencache.NewLocal()
	conns := make([]*absorb.Connector, 8)
	for i := range conns {
		c, err := absorb.New(absorb.Config{BaseURL: s.URL(), Username: admin, Password: pass, PrivateKey: key, Limiter: lim, Tokens: cache})
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(max(b.N, 150))) // at least ~3 s of traffic
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				_, _ = c.Get(ctx, id) // 429s are counted below
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reqs := s.Requests()
	times := make([]time.Time, 0, len(reqs))
	refused := 0
	for _, r := range reqs {
		times = append(times, r.Time)
		if r.Status == 429 {
			refused++
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	peak := 0
	for i, j := 0, 0; j < len(times); j++ {
		for times[j].Sub(times[i]) >= time.Second {
			i++
		}
		peak = max(peak, j-i+1)
	}
	b.ReportMetric(float64(peak), "peak-req/1s")
	b.ReportMetric(float64(refused), "429s")
	b.ReportMetric(float64(s.Authentications()), "logins")
}
