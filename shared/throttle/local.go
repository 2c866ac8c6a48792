package throttle

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Local is a Limiter for one process: golang.org/x/time/rate's token
// bucket (exact: at most burst + rate*W requests in any window W), plus the
// adaptive factor and pauses described in the package doc.
type Local struct {
	cfg   config
	rate  float64
	burst int

	mu    sync.Mutex
	lim   *rate.Limiter
	st    adapt
	tuned float64 // factor lim is set to
	epoch uint64  // bumped by Pause, so waiters holding a slot re-queue
}

// NewLocal returns a limiter allowing rate requests per second with bursts
// of burst (at least 1). rate <= 0 blocks nothing (rate.Inf).
func NewLocal(rps float64, burst int, opts ...Option) *Local {
	burst = max(burst, 1)
	l := &Local{cfg: newConfig(opts), rate: rps, burst: burst, tuned: 1}
	l.st.factor = 1
	l.lim = rate.NewLimiter(l.limit(1), burst)
	return l
}

func (l *Local) limit(f float64) rate.Limit {
	if l.rate <= 0 {
		return rate.Inf
	}
	return rate.Limit(l.rate * f)
}

// Wait blocks until one request may be sent, or ctx is done.
func (l *Local) Wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		now := l.cfg.clock.Now()
		if now.Before(l.st.pausedUntil) {
			d := l.st.pausedUntil.Sub(now)
			l.mu.Unlock()
			if err := l.cfg.clock.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		l.retune(now)
		r := l.lim.ReserveN(now, 1)
		delay, epoch, lim := r.DelayFrom(now), l.epoch, l.lim
		l.mu.Unlock()
		if !r.OK() { // cannot happen with burst >= 1; be loud if it does
			return fmt.Errorf("throttle: reservation refused (burst %d)", lim.Burst())
		}
		if delay <= 0 {
			return nil
		}
		if err := l.cfg.clock.Sleep(ctx, delay); err != nil {
			l.mu.Lock()
			r.CancelAt(l.cfg.clock.Now()) // give the slot back to others
			l.mu.Unlock()
			return err
		}
		l.mu.Lock()
		paused := l.epoch != epoch
		l.mu.Unlock()
		if !paused {
			return nil
		}
		// A Pause began while we slept: the slot is void, queue again.
	}
}

// retune follows the factor's recovery; small steps are skipped to keep
// the limiter's state stable. Called with mu held.
func (l *Local) retune(now time.Time) {
	f := l.cfg.factorAt(l.st, now)
	if f == l.tuned || (f < 1 && math.Abs(f-l.tuned) < 0.01) {
		return
	}
	l.tuned = f
	l.lim.SetLimitAt(now, l.limit(f))
	l.lim.SetBurstAt(now, burstAt(l.burst, f))
}

// Pause stops every Wait for d (0: backoff) and lowers the rate. It
// always succeeds for Local.
func (l *Local) Pause(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.clock.Now()
	before := l.st
	l.st = l.cfg.pause(l.st, now, d)
	l.epoch++
	// A fresh bucket holding one token at the end of the pause: tokens
	// saved up before or during the pause must not burst out after it.
	f := l.st.factor
	b := burstAt(l.burst, f)
	l.lim = rate.NewLimiter(l.limit(f), b)
	l.lim.ReserveN(l.st.pausedUntil, b-1)
	l.tuned = f
	if before.pausedUntil != l.st.pausedUntil {
		l.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "throttle: target asked to slow down",
			slog.String("scope", "local"),
			slog.Duration("pause", l.st.pausedUntil.Sub(now)),
			slog.Float64("rateFactor", f),
			slog.Int("streak", l.st.streak))
	}
	return nil
}
