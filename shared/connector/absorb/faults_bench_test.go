package absorb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

// upsertRun is one measurement of upserts under the chaos suite's faults.
type upsertRun struct {
	upserts, workers int
	guard            bool // throttle.Guard in front of the limiter
	attempts         int  // vendorhttp.Retry.Attempts (0: default)
}

type upsertResult struct {
	failed   int
	requests int
	elapsed  time.Duration
	r429     int
	paused   int64          // Pauses that reached the token bucket
	causes   map[string]int // failed upserts by "op status"
}

// measureUpserts runs r.upserts sync-level upserts (find by external id,
// then create, or read-merge-PUT) for distinct learners, half of whom
// exist already, from r.workers goroutines through one connector and one
// throttle.Local at 100 rps, against absorbsim answering 20% 429
// (Retry-After: 1), 5% 500 and 2% never (client timeout 200ms), 20ms
// latency. Real time: the waits are the point.
func measureUpserts(tb testing.TB, r upsertRun) upsertResult {
	tb.Helper()
	s := absorbsim.New(absorbsim.Options{Username: admin, Password: pass, PrivateKey: key,
		Faults: absorbsim.Faults{P429: 0.20, P5xx: 0.05, PTimeout: 0.02, Latency: 20 * time.Millisecond, Seed: 42}})
	defer s.Close()
	ls := make([]connector.Learner, r.upserts)
	for i := range ls {
		ls[i] = learner(fmt.Sprint("m", i))
		ls[i].Fields["jobTitle"] = "Engineer"
		if i%2 == 0 {
			s.SeedUser(absorbsim.User{Username: ls[i].UserName, FirstName: "F", LastName: "L", ExternalID: ls[i].ExternalID})
		}
	}
	bucket := &pauseCount{Limiter: throttle.NewLocal(100, 1, throttle.WithLogger(quietLog()))}
	var lim absorb.Limiter = bucket
	if r.guard {
		lim = throttle.NewGuard(bucket, throttle.WithLogger(quietLog()))
	}
	c, err := absorb.New(absorb.Config{BaseURL: s.URL(), Username: admin, Password: pass, PrivateKey: key,
		Limiter: lim, Tokens: tokencache.NewLocal(), DefaultDepartmentID: s.DefaultDepartmentID(),
		HTTPClient: &http.Client{Timeout: 200 * time.Millisecond},
		Retry:      vendorhttp.Retry{Attempts: r.attempts}})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	upsert := func(l connector.Learner) error {
		found, err := c.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID})
		switch {
		case err != nil:
			return err
		case len(found) == 0:
			_, err = c.Create(ctx, l)
			return err
		}
		l.ID = found[0].ID
		return c.Update(ctx, l)
	}
	var next, failed atomic.Int64
	var mu sync.Mutex
	causes := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range r.workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(ls); i = int(next.Add(1)) - 1 {
				if err := upsert(ls[i]); err != nil {
					var ce *connector.Error
					if !errors.As(err, &ce) {
						tb.Errorf("unclassified failure: %v", err)
						continue
					}
					failed.Add(1)
					mu.Lock()
					causes[fmt.Sprint(ce.Op, " ", ce.Status)]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	res := upsertResult{failed: int(failed.Load()), elapsed: time.Since(start), paused: bucket.n.Load(), causes: causes}
	for _, rec := range s.Requests() {
		res.requests++
		if rec.Status == http.StatusTooManyRequests {
			res.r429++
		}
	}
	return res
}

type pauseCount struct {
	throttle.Limiter
	n atomic.Int64
}

func (p *pauseCount) Pause(ctx context.Context, d time.Duration) error {
	p.n.Add(1)
	return p.Limiter.Pause(ctx, d)
}

// BenchmarkUpsertsUnderFaults compares the old behaviour (every 429
// pauses everyone, one try per call) with the guard and in-request
// retries. It takes minutes: run it alone, once:
//
//	go test -run '^$' -bench UpsertsUnderFaults -benchtime 1x ./shared/connector/absorb/
func BenchmarkUpsertsUnderFaults(b *testing.B) {
	for _, tc := range []struct {
		name string
		run  upsertRun
	}{
		{"before", upsertRun{upserts: 500, workers: 8, guard: false, attempts: 1}},
		{"after", upsertRun{upserts: 500, workers: 8, guard: true}},
		{"after-32-workers", upsertRun{upserts: 500, workers: 32, guard: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				res := measureUpserts(b, tc.run)
				b.ReportMetric(float64(res.failed), "failed-upserts")
				b.ReportMetric(float64(res.requests)/res.elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(tc.run.upserts)/res.elapsed.Seconds(), "upserts/s")
				b.ReportMetric(float64(res.r429), "429s")
				b.ReportMetric(float64(res.paused), "pauses")
				b.ReportMetric(res.elapsed.Seconds(), "s")
				b.Logf("%d requests, failed upserts by op and status: %v", res.requests, res.causes)
			}
		})
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
