package throttle_test

import (
	"context"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/throttle/throttletest"
)

// pauseCounter counts the Pauses that reach the wrapped limiter.
type pauseCounter struct {
	throttle.Limiter
	n atomic.Int64
}

func (p *pauseCounter) Pause(ctx context.Context, d time.Duration) error {
	p.n.Add(1)
	return p.Limiter.Pause(ctx, d)
}

// runGuarded has one worker send through g for dur of simulated time;
// request i (0-based) is answered 429 with Retry-After d when
// throttled(i). It returns the number of requests sent.
func runGuarded(t *testing.T, clock *throttletest.SimClock, g *throttle.Guard, dur time.Duration, throttled func(int) bool, d time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var sent int
	var perr error
	clock.Go(func() {
		for i := 0; ; i++ {
			if g.Wait(ctx) != nil {
				return
			}
			sent++
			if throttled(i) {
				if err := g.Pause(ctx, d); err != nil {
					perr = err
					return
				}
			}
		}
	})
	clock.Run(t, t0.Add(dur))
	cancel()
	clock.Wait()
	if perr != nil {
		t.Fatalf("Pause: %v", perr)
	}
	return sent
}

func TestGuard(t *testing.T) {
	const rate = 100
	rnd := func(p float64, seed uint64) func(int) bool {
		r := mrand.New(mrand.NewPCG(seed, 1))
		return func(int) bool { return r.Float64() < p }
	}
	tests := []struct {
		name       string
		opts       []throttle.Option
		throttled  func(i int) bool
		retryAfter time.Duration
		// forwarded Pauses and requests sent in 10 simulated seconds
		minFwd, maxFwd   int64
		minSent, maxSent int
	}{
		{name: "isolated 429s at 20% never pause the target", throttled: func(i int) bool { return i%5 == 4 },
			retryAfter: time.Second, minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
		{name: "random 429s at 20% never pause the target", throttled: rnd(0.2, 7),
			retryAfter: time.Second, minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
		{name: "random 429s at 20% without Retry-After", throttled: rnd(0.2, 8),
			retryAfter: 0, minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
		{name: "40% throttled: over the limit, paused", throttled: func(i int) bool { return i%5 == 1 || i%5 == 3 },
			retryAfter: time.Second, minFwd: 2, maxFwd: 20, minSent: 20, maxSent: 500},
		{name: "every answer 429: paused", throttled: func(int) bool { return true },
			retryAfter: time.Second, minFwd: 2, maxFwd: 20, minSent: 20, maxSent: 300},
		{name: "a long Retry-After always pauses", throttled: func(i int) bool { return i == 0 },
			retryAfter: 30 * time.Second, minFwd: 1, maxFwd: 1, minSent: 1, maxSent: 1},
		{name: "exactly the threshold long", throttled: func(i int) bool { return i == 0 },
			retryAfter: throttle.DefaultGuardLong, minFwd: 1, maxFwd: 1, minSent: 1, maxSent: 2}, // the next one at exactly 10s
		{name: "too few requests to judge", throttled: func(i int) bool { return i < 5 },
			retryAfter: time.Second, minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
		{name: "a higher share tolerates 40%", opts: []throttle.Option{throttle.WithGuard(0, 0.5, 0, 0)},
			throttled:  func(i int) bool { return i%5 == 1 || i%5 == 3 },
			retryAfter: time.Second, minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
		{name: "a longer long threshold", opts: []throttle.Option{throttle.WithGuard(0, 0, 0, time.Minute)},
			throttled: func(i int) bool { return i == 0 }, retryAfter: 30 * time.Second,
			minFwd: 0, maxFwd: 0, minSent: 1000, maxSent: 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := throttletest.NewSimClock(t0)
			opts := append([]throttle.Option{throttle.WithClock(clock), throttle.WithLogger(quiet()),
				throttle.WithRand(func() float64 { return 0.5 })}, tt.opts...)
			inner := &pauseCounter{Limiter: throttle.NewLocal(rate, 1, opts...)}
			g := throttle.NewGuard(inner, opts...)
			sent := runGuarded(t, clock, g, 10*time.Second, tt.throttled, tt.retryAfter)
			fwd := inner.n.Load()
			st := g.Stats()
			t.Logf("%d requests sent, %d pauses passed on, %d kept", sent, fwd, st.Absorbed)
			if fwd < tt.minFwd || fwd > tt.maxFwd {
				t.Errorf("%d pauses reached the limiter, want %d..%d", fwd, tt.minFwd, tt.maxFwd)
			}
			if sent < tt.minSent || sent > tt.maxSent {
				t.Errorf("%d requests sent, want %d..%d", sent, tt.minSent, tt.maxSent)
			}
			if st.Forwarded != fwd {
				t.Errorf("Stats().Forwarded = %d, limiter saw %d", st.Forwarded, fwd)
			}
		})
	}
}

// TestGuardWindowSlides checks that old throttled answers leave the
// window: a dense burst long ago does not make today's isolated 429
// pause the target.
func TestGuardWindowSlides(t *testing.T) {
	clock := throttletest.NewSimClock(t0)
	opts := []throttle.Option{throttle.WithClock(clock), throttle.WithLogger(quiet()), throttle.WithGuard(time.Second, 0, 4, 0)}
	inner := &pauseCounter{Limiter: throttle.NewLocal(0, 1, opts...)}
	g := throttle.NewGuard(inner, opts...)
	ctx := t.Context()
	step := func(requests, throttled int) {
		for range requests {
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for range throttled {
			if err := g.Pause(ctx, time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 4 requests, 1 throttled: 25%, kept.
	step(4, 1)
	if n := inner.n.Load(); n != 0 {
		t.Fatalf("%d pauses passed on at 25%%", n)
	}
	// Another throttled one: 2 of 4, passed on; the counts restart.
	step(0, 1)
	if n := inner.n.Load(); n != 1 {
		t.Fatalf("%d pauses passed on at 50%%, want 1", n)
	}
	if st := g.Stats(); st.Requests != 0 || st.Throttled != 0 {
		t.Fatalf("counts after passing a pause on: %+v", st)
	}
	advance(t, clock, 10*time.Millisecond) // past the 1ms pause
	// Every answer throttled, but too few requests to judge: kept.
	step(2, 2)
	if n := inner.n.Load(); n != 1 {
		t.Fatalf("%d pauses passed on after 2 requests", n)
	}
	// Once they left the window they no longer count: 1 of 4 is kept
	// (with them it would be 3 of 6).
	advance(t, clock, 2*time.Second)
	step(4, 1)
	if n := inner.n.Load(); n != 1 {
		t.Fatalf("%d pauses passed on; the old answers should have left the window", n)
	}
	if st := g.Stats(); st.Requests != 4 || st.Throttled != 1 {
		t.Fatalf("window counts %+v, want 4 requests, 1 throttled", st)
	}
}

// advance moves the simulated clock on by d.
func advance(t *testing.T, clock *throttletest.SimClock, d time.Duration) {
	t.Helper()
	start := clock.Now()
	clock.Go(func() { _ = clock.Sleep(t.Context(), d) })
	clock.Run(t, start.Add(d))
	clock.Wait()
}

// TestGuardConcurrentUse is for the race detector.
func TestGuardConcurrentUse(t *testing.T) {
	g := throttle.NewGuard(throttle.NewLocal(0, 1, throttle.WithLogger(quiet())), throttle.WithLogger(quiet()))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := g.Wait(t.Context()); err != nil {
					t.Error(err)
					return
				}
				if (i+w)%7 == 0 {
					if err := g.Pause(t.Context(), time.Millisecond); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	st := g.Stats()
	if st.Forwarded+st.Absorbed == 0 || st.Forwarded > st.Absorbed {
		t.Fatalf("stats %+v: a 1-in-7 share should mostly be kept", st)
	}
}
