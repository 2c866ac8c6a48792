package throttle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Guard defaults (see WithGuard and the package doc).
const (
	DefaultGuardWindow  = 10 * time.Second
	DefaultGuardShare   = 1.0 / 3
	DefaultGuardMinimum = 20
	DefaultGuardLong    = 10 * time.Second
)

// guardBuckets is how many buckets the sliding window is kept in: the
// window's effective length varies by one bucket, which is fine for a
// share.
const guardBuckets = 10

// Guard is the Limiter the targets use: it wraps a Local or a Shared and
// passes a Pause on to it only when this process's recent outcomes say
// the target is over its limit (see "Guard" in the package doc). Use one
// Guard per target per process; it is safe for concurrent use.
type Guard struct {
	inner Limiter
	cfg   config
	width time.Duration // of one bucket

	mu        sync.Mutex
	buckets   [guardBuckets]guardBucket
	forwarded int64
	absorbed  int64
}

type guardBucket struct {
	n         int64 // bucket number: time since the epoch / width
	requests  int
	throttled int
}

// NewGuard wraps inner. Of opts it uses WithGuard, WithClock and
// WithLogger; pass the same options as to the inner limiter.
func NewGuard(inner Limiter, opts ...Option) *Guard {
	cfg := newConfig(opts)
	return &Guard{inner: inner, cfg: cfg, width: max(cfg.guardWindow/guardBuckets, time.Nanosecond)}
}

// GuardStats is what a Guard saw: Requests and Throttled are the counts
// in the current window (reset when a Pause is passed on), Forwarded and
// Absorbed the Pauses passed on and kept since the Guard was made.
type GuardStats struct {
	Requests, Throttled int
	Forwarded, Absorbed int64
}

// Stats returns the current counts.
func (g *Guard) Stats() GuardStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	req, thr := g.sum(g.cfg.clock.Now())
	return GuardStats{Requests: req, Throttled: thr, Forwarded: g.forwarded, Absorbed: g.absorbed}
}

// Wait waits on the inner limiter and counts the request.
func (g *Guard) Wait(ctx context.Context) error {
	if err := g.inner.Wait(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	g.bucket(g.cfg.clock.Now()).requests++
	g.mu.Unlock()
	return nil
}

// Pause counts a throttled answer and passes it on to the inner limiter
// (a pause for every worker and a lower rate) only when d is long or the
// throttled share of the window's requests is above the threshold;
// otherwise it returns nil and only the caller's own request waits (the
// connectors' retry does that).
func (g *Guard) Pause(ctx context.Context, d time.Duration) error {
	g.mu.Lock()
	now := g.cfg.clock.Now()
	g.bucket(now).throttled++
	req, thr := g.sum(now)
	long := d >= g.cfg.guardLong
	dense := req >= g.cfg.guardMinimum && float64(thr) > g.cfg.guardShare*float64(req)
	if !long && !dense {
		g.absorbed++
		g.mu.Unlock()
		g.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "throttle: isolated throttled answer; not pausing the target",
			slog.Int("requests", req), slog.Int("throttled", thr), slog.Duration("retryAfter", d))
		return nil
	}
	// The evidence is acted on: the next Pause needs fresh evidence, so
	// one burst of 429s lowers the rate once, not once per answer.
	g.buckets = [guardBuckets]guardBucket{}
	g.forwarded++
	g.mu.Unlock()
	g.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "throttle: target over its limit; pausing",
		slog.Int("requests", req), slog.Int("throttled", thr),
		slog.Duration("retryAfter", d), slog.Bool("longRetryAfter", long))
	return g.inner.Pause(ctx, d)
}

// bucket returns the bucket for t, emptied if it last held an older
// period. Called with mu held.
func (g *Guard) bucket(t time.Time) *guardBucket {
	n := t.UnixNano() / int64(g.width)
	b := &g.buckets[n%guardBuckets]
	if b.n != n {
		*b = guardBucket{n: n}
	}
	return b
}

// sum counts the window ending at t. Called with mu held.
func (g *Guard) sum(t time.Time) (requests, throttled int) {
	n := t.UnixNano() / int64(g.width)
	for _, b := range g.buckets {
		if b.n > n-guardBuckets && b.n <= n {
			requests += b.requests
			throttled += b.throttled
		}
	}
	return requests, throttled
}
