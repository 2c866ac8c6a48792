package throttle

import (
	"math"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/retry"
)

func TestAdaptive(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cfg := newConfig([]Option{
		WithAdaptive(0.5, 0.1, 10*time.Second),
		WithBackoff(retry.Backoff{Base: time.Second, Max: 8 * time.Second}),
		WithRand(func() float64 { return 0.5 }),
	})
	type pause struct {
		at time.Duration
		d  time.Duration
	}
	tests := []struct {
		name        string
		pauses      []pause
		check       time.Duration // when to read the factor
		wantFactor  float64
		wantUntil   time.Duration
		wantStreak  int
		wantBaseFac float64
	}{
		{name: "never paused", check: time.Hour, wantFactor: 1, wantBaseFac: 1},
		{name: "one pause halves", pauses: []pause{{0, 2 * time.Second}}, check: time.Second,
			wantFactor: 0.5, wantUntil: 2 * time.Second, wantStreak: 1, wantBaseFac: 0.5},
		{name: "pauses within one episode halve once", pauses: []pause{{0, 2 * time.Second}, {time.Second, 3 * time.Second}, {1500 * time.Millisecond, time.Second}},
			check: 3 * time.Second, wantFactor: 0.5, wantUntil: 4 * time.Second, wantStreak: 1, wantBaseFac: 0.5},
		{name: "linear recovery from the end of the pause", pauses: []pause{{0, 2 * time.Second}}, check: 7 * time.Second,
			wantFactor: 0.5 + 0.9*0.5, wantUntil: 2 * time.Second, wantStreak: 1, wantBaseFac: 0.5},
		{name: "full recovery", pauses: []pause{{0, 2 * time.Second}}, check: 12 * time.Second,
			wantFactor: 1, wantUntil: 2 * time.Second, wantStreak: 1, wantBaseFac: 0.5},
		{name: "second episode decreases from the recovered factor", pauses: []pause{{0, time.Second}, {6 * time.Second, time.Second}},
			check: 6500 * time.Millisecond, wantFactor: (0.5 + 0.9*0.5) * 0.5, wantUntil: 7 * time.Second, wantStreak: 2, wantBaseFac: (0.5 + 0.9*0.5) * 0.5},
		{name: "floor", pauses: []pause{{0, time.Millisecond}, {time.Millisecond, time.Millisecond}, {2 * time.Millisecond, time.Millisecond}, {3 * time.Millisecond, time.Millisecond}, {4 * time.Millisecond, time.Millisecond}},
			check: 5 * time.Millisecond, wantFactor: 0.1, wantUntil: 5 * time.Millisecond, wantStreak: 5, wantBaseFac: 0.1},
		{name: "zero d uses backoff", pauses: []pause{{0, 0}}, check: 0,
			wantFactor: 0.5, wantUntil: 500 * time.Millisecond, wantStreak: 1, wantBaseFac: 0.5},
		{name: "backoff grows with the streak", pauses: []pause{{0, 0}, {time.Second, 0}}, check: time.Second,
			wantFactor: (0.5 + 0.9*0.5/10) * 0.5, wantUntil: 2 * time.Second, wantStreak: 2, wantBaseFac: (0.5 + 0.9*0.5/10) * 0.5},
		{name: "streak restarts after full recovery", pauses: []pause{{0, 0}, {time.Minute, 0}}, check: time.Minute,
			wantFactor: 0.5, wantUntil: time.Minute + 500*time.Millisecond, wantStreak: 1, wantBaseFac: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := adapt{factor: 1}
			for _, p := range tt.pauses {
				a = cfg.pause(a, at(p.at), p.d)
			}
			if got := cfg.factorAt(a, at(tt.check)); math.Abs(got-tt.wantFactor) > 1e-9 {
				t.Errorf("factor = %v, want %v", got, tt.wantFactor)
			}
			if math.Abs(a.factor-tt.wantBaseFac) > 1e-9 || a.streak != tt.wantStreak {
				t.Errorf("state factor %v streak %d, want %v %d", a.factor, a.streak, tt.wantBaseFac, tt.wantStreak)
			}
			if len(tt.pauses) > 0 && !a.pausedUntil.Equal(at(tt.wantUntil)) {
				t.Errorf("pausedUntil = %v, want %v", a.pausedUntil.Sub(t0), tt.wantUntil)
			}
		})
	}
}

func TestBurstAt(t *testing.T) {
	for _, tt := range []struct {
		burst int
		f     float64
		want  int
	}{{10, 1, 10}, {10, 0.5, 5}, {10, 0.1, 1}, {1, 0.1, 1}, {5, 0.35, 1}} {
		if got := burstAt(tt.burst, tt.f); got != tt.want {
			t.Errorf("burstAt(%d, %v) = %d, want %d", tt.burst, tt.f, got, tt.want)
		}
	}
}
