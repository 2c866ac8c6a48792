// Package throttletest holds test support for rate limiters: a simulated
// clock that makes grant counts per window exact.
package throttletest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// SimClock is a discrete-event clock for throttle.WithClock: simulated
// time stands still while any participant runs (including while it waits
// on DynamoDB) and jumps to the earliest sleeper's deadline once every
// participant sleeps. Grants are stamped with simulated time, so counts
// per window are exact and do not depend on the machine's speed.
type SimClock struct {
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

// NewSimClock is a SimClock standing at start with no participants.
func NewSimClock(start time.Time) *SimClock {
	return &SimClock{now: start, sleepers: map[*sleeper]struct{}{}, changed: make(chan struct{}, 1)}
}

func (c *SimClock) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Now is the simulated time.
func (c *SimClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep blocks until simulated time reaches now+d, or ctx is done.
func (c *SimClock) Sleep(ctx context.Context, d time.Duration) error {
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

// Go starts a participant; time only moves while all of them sleep.
func (c *SimClock) Go(fn func()) {
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

// Run advances time until the next wake-up would be after end, or no
// participant is left.
func (c *SimClock) Run(t *testing.T, end time.Time) {
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
				t.Fatalf("simClock: %d of %d participants still busy after 30s of real time", active-asleep, active)
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

// Wait waits for every participant started with Go to return.
func (c *SimClock) Wait() { c.wg.Wait() }
