// Package throttle keeps learnerlink's request rate to each target under
// that target's limit, in one process (Local) or across every worker
// Lambda at once (Shared).
//
// # Adaptive rate
//
// Both limiters run at rate*factor, where factor is 1 until the target
// pushes back. Pause(ctx, d) is called when the target answers 429/503:
// nobody sends for d (a Retry-After), or for a jittered exponential backoff
// when d is 0, and factor is multiplied by Decrease (default 0.5), never
// below MinFactor (default 0.1). After the pause, factor climbs back
// linearly to 1 over Recovery (default 60s) as long as no further Pause
// comes. Pauses reported while one is already in force only extend it:
// eight workers hitting the same 429 wave halve the rate once, not eight
// times. The burst shrinks with the factor (never below 1).
//
// # Guard: isolated 429s
//
// A Pause stops every worker (with Shared, every Lambda), so it must only
// follow evidence that we are over the target's limit. Real rate limits
// refuse densely once exceeded; an isolated 429 (a busy node behind the
// vendor's load balancer, someone else's traffic) says nothing about our
// rate, and pausing on each one starves the target: with 20% random 429s
// carrying Retry-After: 1 at 100 rps, the process is paused nearly all
// the time and drains ~3.5 requests a second.
//
// Guard wraps Local or Shared (one Guard per target per process: the
// target package wires it). It counts, in a sliding window (default 10s,
// in ten buckets), requests (Wait calls that returned) and throttled
// answers (Pause calls). A Pause is passed on to the inner limiter only
// when the throttled share of the window's requests is above 1/3 with at
// least 20 requests counted, or whenever the Retry-After is 10s or more
// (an exhausted quota, not a blip). Otherwise Pause does nothing and only
// the request that got the 429 waits its own Retry-After and retries (the
// connectors' in-request retry, shared/connector/vendorhttp.Retry). When a
// Pause is passed on the counts restart, so one burst of 429s lowers the
// rate once and the next decrease needs fresh evidence.
//
// The rule is the client-side adaptive throttling of the Google SRE book
// (chapter "Handling Overload", section "Client-Side Throttling",
// https://sre.google/sre-book/handling-overload/): a client keeps
// requests and accepts over a recent window and throttles itself once
// requests exceed K × accepts. With accepts = requests - throttled, that
// is a throttled share above 1 - 1/K; our 1/3 is K = 1.5, between the
// book's suggested K = 2 (share 1/2: tolerates more rejection) and the
// more aggressive K = 1.1. It sits well above 20% random 429s (at 10 rps
// over 10s, a 20% rate exceeds 1/3 with probability ~0.04%) yet a target
// really over its limit refuses far more than a third of what it gets.
// The minimum count keeps a handful of requests at low traffic from
// deciding; a wrong decision there costs little anyway. WithGuard tunes
// all four numbers.
//
// # Shared: design
//
// Shared keeps one GCRA token bucket (the "generic cell rate algorithm",
// equivalent to a token bucket of capacity burst refilled at rate*factor
// per second) in one DynamoDB item of the store's single table:
//
//	PK = "THROTTLE#<target>"  SK = "A"   (string attributes named "PK", "SK")
//	tat          N  theoretical arrival time, Unix µs: at time t the bucket
//	                holds burst - max(0, tat-t)*rate tokens
//	factor       N  rate factor when the current recovery started
//	pausedUntil  N  Unix ms; 0 = never paused
//	streak       N  pauses since the rate was last at 100% (backoff attempt)
//	updatedAt    N  Unix ms of the last write (writer's clock), for operators
//
// A worker books a lease of n tokens with one conditional UpdateItem:
// "SET tat = tat + n/rate IF now < tat <= now + burst/rate + Horizon - n/rate
// AND pausedUntil is what I saw" (or "SET tat = now + n/rate IF tat <= now"
// when the bucket is idle). The addition happens inside DynamoDB, so
// workers do not need a fresh copy of the item and do not race each other:
// a write fails only when the bucket is booked beyond the horizon, the
// bucket went idle, or a pause began, and then DynamoDB returns the current
// item with the failure, so no extra read is needed. Each booked token
// owns one emission slot of length 1/rate; it becomes ready at the end of
// its slot minus burst/rate (never before the booking), and the worker
// sends it no earlier than that and no later than Lease (default 100ms)
// after, or drops it. Nothing is banked.
//
// # Shared: the guarantee
//
// Slots never overlap, and a token sent in a window [a, b] owns a slot
// inside [a - Lease, b + burst/rate]. So, however many workers run:
//
//	requests in any window of W ≤ burst + rate*(W + Lease)
//
// With the defaults, at most burst + 1.1*rate requests in any 1-second
// window, and rate*T + burst over a long period T (rate here is
// rate*factor). Clock skew ε between workers adds at most rate*ε.
//
// # Shared: cost
//
// Writes: one UpdateItem per lease. A lease holds up to rate*Horizon/2
// tokens (25 at 50 rps with the default 1s horizon); a busy worker doubles
// its lease each time it spends one entirely, a worker whose lease expired
// partly unused asks next for what it used, so tokens are not hoarded away
// from busier workers and at low traffic a lease is one token (one write
// per request, when DynamoDB cost does not matter). All workers together
// can book at most rate*Horizon + burst tokens ahead, so with N busy
// workers a lease is about min(rate*Horizon/2, rate*Horizon/N) tokens:
// keep the worker concurrency per target near rate*Horizon/4 (e.g. the SQS
// event source's maximum concurrency) or raise Horizon (WithLease).
// Failed conditional writes are billed as writes too; they happen when the
// bucket is booked beyond the horizon (a worker that misses backs off
// exponentially with jitter) and right after a pause.
// Reads: one consistent GetItem per process start, and one per Lease while
// a worker spends tokens booked more than Lease earlier: that read is how a
// Pause by another worker reaches it.
// Measured on DynamoDB Local, hungry workers, 30 simulated seconds:
// 8 workers at 50 rps: 0.18 writes + 0.25 reads per request; 20 workers at
// 20 rps: 1.1 writes + 1.0 reads with the 1s horizon, 0.42 + 0.52 with 3s.
//
// Pause: the pausing worker sets pausedUntil, lowers factor and moves tat
// to pausedUntil + (burst-1)/rate (one token at the end of the pause, none
// saved up), with a conditional write on the adaptive state it read. Every
// other worker stops within Lease: its next booking fails on pausedUntil,
// and it re-reads the item before spending a token when its last booking or
// re-read is more than Lease old. The bound is inclusive: a worker whose
// booking or re-read was served just before the pause's write (at the same
// instant t) may still send at t + Lease, but never after.
package throttle

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/learnerlink/learnerlink/shared/retry"
)

// Limiter gates every request to one target.
type Limiter interface {
	// Wait blocks until one request may be sent (or ctx is done).
	Wait(ctx context.Context) error
	// Pause reports that the target said slow down (429/503): nobody sends
	// for d (0: use backoff) and the rate drops adaptively.
	Pause(ctx context.Context, d time.Duration) error
}

var (
	_ Limiter = (*Local)(nil)
	_ Limiter = (*Shared)(nil)
	_ Limiter = (*Guard)(nil)
)

// Clock is the time source; tests inject a simulated one.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time                                   { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }

// Option tunes a limiter.
type Option func(*config)

type config struct {
	clock     Clock
	minFactor float64
	decrease  float64
	recovery  time.Duration
	backoff   retry.Backoff
	rnd       func() float64
	lease     time.Duration
	horizon   time.Duration
	logger    *slog.Logger
	target    string // for logs only

	// Guard only (WithGuard).
	guardWindow  time.Duration
	guardShare   float64
	guardMinimum int
	guardLong    time.Duration
}

func newConfig(opts []Option) config {
	c := config{
		clock:     realClock{},
		minFactor: 0.1,
		decrease:  0.5,
		recovery:  time.Minute,
		backoff:   retry.Backoff{Base: time.Second, Max: time.Minute},
		rnd:       rand.Float64,
		lease:     100 * time.Millisecond,
		horizon:   time.Second,
		logger:    slog.Default(),

		guardWindow:  DefaultGuardWindow,
		guardShare:   DefaultGuardShare,
		guardMinimum: DefaultGuardMinimum,
		guardLong:    DefaultGuardLong,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithClock replaces the wall clock (tests).
func WithClock(c Clock) Option {
	return func(cfg *config) {
		if c != nil {
			cfg.clock = c
		}
	}
}

// WithAdaptive sets the multiplicative decrease per pause (0 < decrease
// <= 1), the floor of the rate factor (0 < minFactor <= 1) and how long a
// clean period takes to bring the rate from the floor back to 100%.
// Out-of-range values keep the defaults (0.5, 0.1, 1 minute).
func WithAdaptive(decrease, minFactor float64, recovery time.Duration) Option {
	return func(c *config) {
		if decrease > 0 && decrease <= 1 {
			c.decrease = decrease
		}
		if minFactor > 0 && minFactor <= 1 {
			c.minFactor = minFactor
		}
		if recovery > 0 {
			c.recovery = recovery
		}
	}
}

// WithBackoff sets the pause length used when Pause gets d = 0 (default
// 1s base, 1 minute cap, full jitter); the attempt number is the count of
// pauses since the rate was last back at 100%.
func WithBackoff(b retry.Backoff) Option { return func(c *config) { c.backoff = b } }

// WithRand sets the source of jitter, values in [0, 1) (tests). A limiter
// calls it under its own lock, so it need not be safe for concurrent use
// unless shared between limiters.
func WithRand(rnd func() float64) Option {
	return func(c *config) {
		if rnd != nil {
			c.rnd = rnd
		}
	}
}

// WithLease tunes Shared (Local ignores it). lease (default 100ms) is how
// long a taken token stays spendable after its slot; it bounds the
// overshoot (rate*lease in any window) and how long a Pause takes to reach
// every worker. horizon (default 1s) is how far ahead a worker may book
// tokens; a lease holds up to rate*horizon/2 tokens, which sets the
// DynamoDB writes per request. Zero keeps a default.
func WithLease(lease, horizon time.Duration) Option {
	return func(c *config) {
		if lease > 0 {
			c.lease = lease
		}
		if horizon > 0 {
			c.horizon = horizon
		}
	}
}

// WithGuard tunes Guard (Local and Shared ignore it). window (default
// 10s) is how far back the Guard counts requests and throttled answers;
// a Pause is passed on when more than share (default 1/3, 0 < share < 1)
// of at least minimum (default 20) requests in the window were
// throttled, or whenever the Retry-After is at least long (default 10s).
// Zero or out-of-range values keep the defaults.
func WithGuard(window time.Duration, share float64, minimum int, long time.Duration) Option {
	return func(c *config) {
		if window > 0 {
			c.guardWindow = window
		}
		if share > 0 && share < 1 {
			c.guardShare = share
		}
		if minimum > 0 {
			c.guardMinimum = minimum
		}
		if long > 0 {
			c.guardLong = long
		}
	}
}

// WithLogger sets where pauses are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// adapt is the adaptive part of a limiter's state, identical for Local and
// Shared (which stores it in the item).
type adapt struct {
	factor      float64   // factor at pausedUntil, where recovery starts
	pausedUntil time.Time // zero: never paused
	streak      int       // pauses since factor was last 1
}

func (a adapt) equal(b adapt) bool {
	return a.factor == b.factor && a.pausedUntil.Equal(b.pausedUntil) && a.streak == b.streak
}

// factorAt returns the rate factor in force at t (0 < f <= 1).
func (c *config) factorAt(a adapt, t time.Time) float64 {
	f := a.factor
	if f <= 0 || f > 1 {
		f = 1
	}
	if f >= 1 || !t.After(a.pausedUntil) {
		return f
	}
	f += (1 - c.minFactor) * float64(t.Sub(a.pausedUntil)) / float64(c.recovery)
	return math.Min(f, 1)
}

// pause applies one Pause(d) at now and returns the new state.
func (c *config) pause(a adapt, now time.Time, d time.Duration) adapt {
	if !now.Before(a.pausedUntil) { // a new slow-down episode
		f := c.factorAt(a, now)
		if f >= 1 {
			a.streak = 0
		}
		a.streak++
		a.factor = math.Max(c.minFactor, f*c.decrease)
	}
	if d <= 0 {
		d = c.backoff.Delay(a.streak-1, c.rnd)
	}
	// At least 1ms, so every pause moves pausedUntil (Shared's bookings
	// are conditional on it).
	d = max(d, time.Millisecond)
	if until := now.Add(d); until.After(a.pausedUntil) {
		a.pausedUntil = until
	}
	return a
}

// burstAt scales the burst with the factor, keeping at least 1.
func burstAt(burst int, f float64) int {
	return max(1, int(math.Floor(float64(burst)*f)))
}
