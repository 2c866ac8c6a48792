package vendorhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/retry"
)

// Retry defaults.
const (
	// DefaultAttempts is the number of tries per call, the first included.
	DefaultAttempts = 4
	// DefaultBudget bounds the time a call may spend on retries: with a
	// few calls per sync, a Lambda batch stays well within its
	// visibility timeout.
	DefaultBudget = 20 * time.Second
)

// Retry is the connectors' in-request retry policy, written once here:
// one failed request should not fail a whole sync (whose retry costs a
// queue delivery, a backoff and every request the sync made before).
// The zero value is the default policy.
//
// What is retried (Retryable):
//   - a throttled answer (429, 503) for any method: the vendor did not
//     process it. The request waits its own Retry-After (a jittered
//     backoff when there is none) and goes through the limiter again;
//     pausing everyone is the limiter's decision (throttle.Guard);
//   - other 5xx but 501, 408 and transport failures (status 0: timeouts,
//     resets, a body cut short) only when the request is idempotent: a
//     POST that timed out may have been executed, and the worker's
//     lookup-before-create handles that at the sync level;
//   - nothing else: 401 is the connectors' own business (token refresh),
//     4xx are answers, not accidents.
//
// A call makes at most Attempts tries; a retry never starts when its wait
// would end past Budget (counted from the first try) or past ctx's
// deadline, and a cancelled ctx stops at once. The first try itself is
// not cut short: the HTTP client's timeout bounds it.
type Retry struct {
	// Attempts is the total number of tries per call; 0 means
	// DefaultAttempts, 1 turns retries off.
	Attempts int
	// Budget is the time a call may take, waits included, before no
	// retry starts; 0 means DefaultBudget.
	Budget time.Duration
	// Backoff is the wait before a retry when the answer gives no
	// Retry-After (full jitter); zero means 250ms base, 5s cap.
	Backoff retry.Backoff
	// Rand is Backoff's source of jitter (nil: math/rand/v2).
	Rand func() float64
	// Sleep waits d or until ctx is done (nil: a timer); Now is the
	// clock for Budget (nil: time.Now). Tests replace both.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	// Logger gets a debug line per retry (nil: none).
	Logger *slog.Logger
}

// Idempotent reports whether a request with method may be repeated
// without changing the outcome (RFC 9110 §9.2.2: GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE). PATCH and POST are not, in general.
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Retryable says whether err, from one try of a request, is worth another
// try within the same call (see Retry) and whether it was a throttled
// answer, whose wait is its RetryAfter.
func Retryable(err error, idempotent bool) (again, throttled bool) {
	var ce *connector.Error
	if !errors.As(err, &ce) || !ce.Retryable {
		return false, false
	}
	switch s := ce.Status; {
	case Throttled(s):
		return true, true
	case s == http.StatusUnauthorized, s == http.StatusNotImplemented:
		return false, false
	case s == 0, s == http.StatusRequestTimeout, s >= 500:
		return idempotent, false
	}
	return false, false
}

// Do calls try until it succeeds or the policy says stop; idempotent says
// whether the request may be repeated after a failure other than a
// throttled answer (Idempotent(method), or the connector's own judgement).
// On failure it returns try's last error unchanged, so a *connector.Error
// (Retryable, RetryAfter) reaches the worker as the vendor gave it; when
// ctx ends during a wait, an error wrapping both ctx.Err() and the last
// error.
func (p Retry) Do(ctx context.Context, idempotent bool, try func(context.Context) error) error {
	attempts, budget, sleep, now := p.Attempts, p.Budget, p.Sleep, p.Now
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if budget <= 0 {
		budget = DefaultBudget
	}
	if sleep == nil {
		sleep = retry.Sleep
	}
	if now == nil {
		now = time.Now
	}
	backoff := p.Backoff
	if backoff == (retry.Backoff{}) {
		backoff = retry.Backoff{Base: 250 * time.Millisecond, Max: 5 * time.Second}
	}
	start := now()
	for n := 1; ; n++ {
		err := try(ctx)
		if err == nil || n >= attempts || ctx.Err() != nil {
			return err
		}
		again, throttled := Retryable(err, idempotent)
		if !again {
			return err
		}
		var wait time.Duration
		if throttled {
			wait = connector.RetryAfterOf(err)
		}
		if wait <= 0 {
			wait = backoff.Delay(n-1, p.Rand)
		}
		if now().Sub(start)+wait > budget {
			return err // leave the wait to the queue, with the vendor's hint
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // the retry could never run
		}
		if p.Logger != nil {
			var ce *connector.Error
			errors.As(err, &ce)
			p.Logger.LogAttrs(ctx, slog.LevelDebug, "retrying the request",
				slog.String("op", ce.Op), slog.Int("status", ce.Status), slog.Int("attempt", n), slog.Duration("wait", wait))
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w; last error: %w", serr, err)
		}
	}
}
