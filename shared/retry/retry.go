// Package retry holds the retry policy shared by target connectors: parsing
// a target's Retry-After hint, exponential backoff with full jitter, and a
// small bounded in-process retry loop.
//
// In-process retries are for short blips only. Longer waits belong to the
// queue (the worker returns the message with a visibility delay), so Do
// gives up rather than sleep past Policy.MaxDelay or the context deadline.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps what ParseRetryAfter returns, so a broken or hostile
// header cannot stall a worker for days.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After header value: delta-seconds ("120")
// or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", also the RFC 850 and
// asctime forms), relative to now. The result is clamped to
// [0, MaxRetryAfter]: dates in the past and negative numbers give 0.
// ok is false (and d 0) when h is empty or unparseable.
func ParseRetryAfter(h string, now time.Time) (d time.Duration, ok bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if isInteger(h) {
		secs, err := strconv.ParseInt(h, 10, 64)
		if err != nil { // only out of range is possible here
			if h[0] == '-' {
				return 0, true
			}
			return MaxRetryAfter, true
		}
		return clampSeconds(secs), true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return clamp(t.Sub(now)), true
}

// isInteger reports an optional sign followed by 1+ ASCII digits.
func isInteger(s string) bool {
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func clampSeconds(secs int64) time.Duration {
	if secs <= 0 {
		return 0
	}
	if secs >= int64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter
	}
	return time.Duration(secs) * time.Second
}

func clamp(d time.Duration) time.Duration {
	return min(max(d, 0), MaxRetryAfter)
}

// Backoff is exponential backoff with full jitter: the delay before retry
// number attempt (0-based) is uniform in [0, min(Max, Base*Multiplier^attempt)).
// Full jitter spreads the retries of many workers that failed together, so
// they do not hit the target again in lockstep.
type Backoff struct {
	Base       time.Duration // first ceiling; 0 means 100ms
	Max        time.Duration // cap on every ceiling; 0 means 30s
	Multiplier float64       // growth per attempt; values <= 1 mean 2
}

// Ceiling returns the upper bound of the delay for attempt (0-based).
func (b Backoff) Ceiling(attempt int) time.Duration {
	base, maxD, mult := b.Base, b.Max, b.Multiplier
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 30 * time.Second
	}
	if mult <= 1 {
		mult = 2
	}
	attempt = max(attempt, 0)
	// Computed in float64 so large attempts saturate instead of overflowing.
	c := float64(base) * math.Pow(mult, float64(attempt))
	if c >= float64(maxD) || math.IsInf(c, 0) || math.IsNaN(c) {
		return maxD
	}
	return time.Duration(c)
}

// Delay returns a random delay in [0, Ceiling(attempt)). rnd returns values
// in [0, 1) (nil: math/rand/v2's Float64); tests pass a fixed function.
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	r := rnd()
	if !(r > 0) { // also NaN
		return 0
	}
	r = min(r, 1)
	return time.Duration(r * float64(b.Ceiling(attempt)))
}

// Policy bounds Do.
type Policy struct {
	// Attempts is the total number of calls, first one included; 0 means 3.
	Attempts int
	Backoff  Backoff
	// MaxDelay is the longest single wait Do accepts (a larger Retry-After
	// makes Do give up so the caller can requeue); 0 means 10s.
	MaxDelay time.Duration
	// Rand is passed to Backoff.Delay (nil: math/rand/v2).
	Rand func() float64
	// Sleep waits d or until ctx is done (nil: a timer); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Sleep waits for d or until ctx is done, returning ctx.Err() then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// DefaultRetryable retries every error except context cancellation and
// deadline expiry, with no server hint.
func DefaultRetryable(err error) (bool, time.Duration) {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded), 0
}

// Do calls fn until it succeeds, retryable says stop, p.Attempts calls
// were made, the next wait would exceed p.MaxDelay, or ctx would end during
// the wait. The wait before a retry is the larger of the jittered backoff
// and the hint after that retryable returns (e.g. a parsed Retry-After).
// retryable nil means DefaultRetryable.
//
// On failure Do returns fn's last error unchanged (so errors.As still finds
// e.g. a *connector.Error), or, if ctx ended while waiting, an error
// wrapping both ctx.Err() and the last error.
func Do(ctx context.Context, p Policy, fn func(context.Context) error, retryable func(error) (retry bool, after time.Duration)) error {
	attempts, maxDelay, sleep := p.Attempts, p.MaxDelay, p.Sleep
	if attempts <= 0 {
		attempts = 3
	}
	if maxDelay <= 0 {
		maxDelay = 10 * time.Second
	}
	if sleep == nil {
		sleep = Sleep
	}
	if retryable == nil {
		retryable = DefaultRetryable
	}
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if attempt+1 >= attempts || ctx.Err() != nil {
			return err
		}
		again, after := retryable(err)
		if !again {
			return err
		}
		d := max(p.Backoff.Delay(attempt, p.Rand), after)
		if d > maxDelay {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return err // the retry could never run; leave the time to the caller
		}
		if serr := sleep(ctx, d); serr != nil {
			return fmt.Errorf("retry: %w; last error: %w", serr, err)
		}
	}
}
