package throttletest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/throttle"
)

// Grants starts workers participants on clock, worker i calling
// lim(i).Wait in a loop, and one participant for each of side (given the
// run's context); runs the clock from start for dur of simulated time; and
// returns the grant times as offsets from start, sorted. A Wait error other
// than the run's end, or any error a side function returns, fails the test.
func Grants(t *testing.T, clock *SimClock, start time.Time, dur time.Duration, workers int, lim func(i int) throttle.Limiter, side ...func(ctx context.Context) error) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu     sync.Mutex
		grants []time.Duration
		errs   []error
	)
	for i := range workers {
		l := lim(i)
		clock.Go(func() {
			for {
				if err := l.Wait(ctx); err != nil {
					if !errors.Is(err, context.Canceled) {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return
				}
				at := clock.Now().Sub(start)
				mu.Lock()
				grants = append(grants, at)
				mu.Unlock()
			}
		})
	}
	for _, fn := range side {
		clock.Go(func() {
			if err := fn(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	clock.Run(t, start.Add(dur))
	cancel()
	clock.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("limiter failed: %v", err)
	}
	slices.Sort(grants)
	return grants
}
