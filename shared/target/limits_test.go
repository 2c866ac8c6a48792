package target_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/testenv"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/throttle/throttletest"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// hungry runs workers that Wait in a loop for dur of simulated time and
// returns the grant times (offsets from t0), sorted.
func hungry(t *testing.T, clock *throttletest.SimClock, workers int, dur time.Duration, lim func(i int) throttle.Limiter) []time.Duration {
	t.Helper()
	return throttletest.Grants(t, clock, t0, dur, workers, lim)
}

// maxWindow is the most grants in any half-open window of length w.
func maxWindow(grants []time.Duration, w time.Duration) int {
	best, j := 0, 0
	for i := range grants {
		for j < len(grants) && grants[j] < grants[i]+w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

func TestLocalLimitsKeepEveryWindowUnderTheCeiling(t *testing.T) {
	const dur = 5 * time.Second
	for _, ceiling := range []float64{1, 3, 10, 20, 50, 200} {
		t.Run(fmt.Sprint(ceiling), func(t *testing.T) {
			clock := throttletest.NewSimClock(t0)
			lim := target.NewLocalLimiter(ceiling, throttle.WithClock(clock), throttle.WithLogger(quiet()))
			grants := hungry(t, clock, 8, dur, func(int) throttle.Limiter { return lim })
			if n := maxWindow(grants, time.Second); n > int(ceiling) {
				t.Errorf("%d releases in a 1s window, ceiling %v", n, ceiling)
			}
			rate := float64(len(grants)) / dur.Seconds()
			if rate < 0.98*ceiling {
				t.Errorf("average %.2f/s, want at least 98%% of %v", rate, ceiling)
			}
			t.Logf("ceiling %v: %d grants in %v (%.2f/s), busiest 1s window %d", ceiling, len(grants), dur, rate, maxWindow(grants, time.Second))
		})
	}
}

// TestBurstSizedLikeTheCeilingOvershoots documents why LocalLimits exists:
// a bucket of the ceiling's size (the obvious wiring) lets nearly twice
// the ceiling through in the first second.
func TestBurstSizedLikeTheCeilingOvershoots(t *testing.T) {
	const ceiling = 20
	clock := throttletest.NewSimClock(t0)
	lim := throttle.NewLocal(ceiling, ceiling, throttle.WithClock(clock), throttle.WithLogger(quiet()))
	grants := hungry(t, clock, 8, 3*time.Second, func(int) throttle.Limiter { return lim })
	if n := maxWindow(grants, time.Second); n <= ceiling {
		t.Fatalf("busiest window %d; the naive wiring was expected to overshoot", n)
	} else {
		t.Logf("rate %d, burst %d: %d requests in one 1s window", ceiling, ceiling, n)
	}
}

func TestLimitsShape(t *testing.T) {
	tests := []struct {
		name string
		got  target.Limits
		max  float64 // rate upper bound
	}{
		{"local unlimited", target.LocalLimits(0), 0},
		{"local 20", target.LocalLimits(20), 20},
		{"shared unlimited", target.SharedLimits(0), 0},
		{"shared 20", target.SharedLimits(20), 20 / 1.125},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Burst != 1 || tc.got.Rate > tc.max || tc.got.Rate < tc.max*0.999 || tc.got.Lease == 0 && tc.name[0] == 's' {
				t.Errorf("%+v, want burst 1 and rate just under %v", tc.got, tc.max)
			}
		})
	}
}

// newTable creates a uniquely named table with the store's PK/SK keys on
// the test server and deletes it (only it) afterwards.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	client := testenv.DynamoClient(t)
	return client, testenv.BareTable(t, client, "target-limits-test-")
}

// TestSharedLimitsKeepEveryWindowUnderTheCeiling runs 8 worker processes
// (8 Shared limiters on one DynamoDB item) in simulated time.
func TestSharedLimitsKeepEveryWindowUnderTheCeiling(t *testing.T) {
	client, table := newTable(t)
	const dur = 4 * time.Second
	for _, ceiling := range []float64{10, 20, 50} {
		t.Run(fmt.Sprint(ceiling), func(t *testing.T) {
			clock := throttletest.NewSimClock(t0)
			lims := make([]throttle.Limiter, 8)
			for i := range lims {
				lims[i] = target.NewSharedLimiter(client, table, fmt.Sprint("absorb-", ceiling), ceiling,
					throttle.WithClock(clock), throttle.WithLogger(quiet()),
					throttle.WithLease(time.Second, 0)) // overridden: the lease is part of the rate's safety
			}
			grants := hungry(t, clock, len(lims), dur, func(i int) throttle.Limiter { return lims[i] })
			if n := maxWindow(grants, time.Second+target.Jitter); n > int(ceiling) {
				t.Errorf("%d requests in a window of 1s+%v, ceiling %v", n, target.Jitter, ceiling)
			}
			rate := float64(len(grants)) / dur.Seconds()
			if rate < 0.8*ceiling {
				t.Errorf("average %.2f/s, want at least 80%% of %v", rate, ceiling)
			}
			t.Logf("ceiling %v: %d grants in %v (%.2f/s), busiest 1s window %d", ceiling, len(grants), dur, rate, maxWindow(grants, time.Second))
		})
	}
}

// TestLimitersIgnoreIsolated429s: the limiters the targets get keep
// their pace when 20% of answers are isolated 429s, and pause when most
// answers are.
func TestLimitersIgnoreIsolated429s(t *testing.T) {
	const ceiling, dur = 50, 5 * time.Second
	tests := []struct {
		name      string
		every     int // every nth request is answered 429 (Retry-After 1s)
		wantPause bool
	}{
		{"isolated 429s", 5, false},
		{"every answer 429", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := throttletest.NewSimClock(t0)
			lim := target.NewLocalLimiter(ceiling, throttle.WithClock(clock), throttle.WithLogger(quiet()))
			var mu sync.Mutex
			n := 0
			report := &reporting{Limiter: lim, after: func(ctx context.Context) error {
				mu.Lock()
				n++
				hit := n%tt.every == 0
				mu.Unlock()
				if hit {
					return lim.Pause(ctx, time.Second)
				}
				return nil
			}}
			grants := hungry(t, clock, 4, dur, func(int) throttle.Limiter { return report })
			st := lim.Stats()
			t.Logf("%d grants; pauses passed on %d, kept %d", len(grants), st.Forwarded, st.Absorbed)
			if paused := st.Forwarded > 0; paused != tt.wantPause {
				t.Fatalf("paused = %v, want %v", paused, tt.wantPause)
			}
			if full := int(ceiling * dur.Seconds()); !tt.wantPause && len(grants) < full*98/100 {
				t.Fatalf("%d grants, want about %d", len(grants), full)
			}
		})
	}
}

// reporting calls after once each Wait returns, as a connector reports
// the answer before its next request.
type reporting struct {
	throttle.Limiter
	after func(ctx context.Context) error
}

func (r *reporting) Wait(ctx context.Context) error {
	if err := r.Limiter.Wait(ctx); err != nil {
		return err
	}
	return r.after(ctx)
}
