package target_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/testenv"
	"github.com/learnerlink/learnerlink/shared/throttle"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// simClock is a discrete-event clock: simulated time stands still while
// any participant runs and jumps to the earliest sleeper's deadline once
// all of them sleep, so grant times are exact whatever the machine.
type simClock struct {
	mu       sync.Mutex
	now      time.Time
	active   int
	sleepers map[*sleeper]struct{}
	changed  chan struct{}
	wg       sync.WaitGroup
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

func newSimClock() *simClock {
	return &simClock{now: t0, sleepers: map[*sleeper]struct{}{}, changed: make(chan struct{}, 1)}
}

func (c *simClock) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	s := &sleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers[s] = struct{}{}
	c.mu.Unlock()
	c.poke()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, s)
		c.mu.Unlock()
		c.poke()
		return ctx.Err()
	}
}

func (c *simClock) Go(fn func()) {
	c.mu.Lock()
	c.active++
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			c.active--
			c.mu.Unlock()
			c.poke()
		}()
		fn()
	}()
}

// Run advances time until the next wake-up would be after end.
func (c *simClock) Run(t *testing.T, end time.Time) {
	t.Helper()
	for {
		stuck := time.NewTimer(30 * time.Second)
		for {
			c.mu.Lock()
			asleep, active := len(c.sleepers), c.active
			c.mu.Unlock()
			if active == 0 {
				stuck.Stop()
				return
			}
			if asleep >= active {
				break
			}
			select {
			case <-c.changed:
			case <-stuck.C:
				t.Fatalf("simClock: participants still busy after 30s of real time")
			}
		}
		stuck.Stop()
		c.mu.Lock()
		var next time.Time
		for s := range c.sleepers {
			if next.IsZero() || s.until.Before(next) {
				next = s.until
			}
		}
		if next.After(end) {
			c.mu.Unlock()
			return
		}
		c.now = next
		for s := range c.sleepers {
			if !s.until.After(next) {
				delete(c.sleepers, s)
				close(s.wake)
			}
		}
		c.mu.Unlock()
	}
}

// hungry runs workers that Wait in a loop for dur of simulated time and
// returns the grant times (offsets from t0), sorted.
func hungry(t *testing.T, clock *simClock, workers int, dur time.Duration, lim func(i int) throttle.Limiter) []time.Duration {
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
				at := clock.Now().Sub(t0)
				mu.Lock()
				grants = append(grants, at)
				mu.Unlock()
			}
		})
	}
	clock.Run(t, t0.Add(dur))
	cancel()
	clock.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(grants)
	return grants
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
			clock := newSimClock()
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
	clock := newSimClock()
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

func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	endpoint := testenv.DynamoDB(t)
	client := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	table := "target-limits-test-" + hex.EncodeToString(suffix)
	_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(throttle.AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(throttle.AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(throttle.AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(throttle.AttrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return client, table
}

// TestSharedLimitsKeepEveryWindowUnderTheCeiling runs 8 worker processes
// (8 Shared limiters on one DynamoDB item) in simulated time.
func TestSharedLimitsKeepEveryWindowUnderTheCeiling(t *testing.T) {
	client, table := newTable(t)
	const dur = 4 * time.Second
	for _, ceiling := range []float64{10, 20, 50} {
		t.Run(fmt.Sprint(ceiling), func(t *testing.T) {
			clock := newSimClock()
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
