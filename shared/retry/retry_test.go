package retry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/retry"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"+5", 5 * time.Second, true},
		{"-5", 0, true},
		{"3600", time.Hour, true},
		{"3601", retry.MaxRetryAfter, true},
		{"99999999999999999999999", retry.MaxRetryAfter, true},
		{"-99999999999999999999999", 0, true},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"abc", 0, false},
		{"+", 0, false},
		{"Sun, 22 Nov 2026 10:00:30 GMT", 30 * time.Second, true},    // IMF-fixdate
		{"Sunday, 22-Nov-26 10:01:00 GMT", time.Minute, true},        // RFC 850
		{"Sun Nov 22 10:00:05 2026", 5 * time.Second, true},          // asctime
		{"Sun, 22 Nov 2026 09:59:00 GMT", 0, true},                   // past
		{"Mon, 23 Nov 2026 10:00:00 GMT", retry.MaxRetryAfter, true}, // too far
		{"Sun, 22 Nov 2026 10:00:30 +0100", 0, false},                // not an HTTP-date
		{"Sun, 32 Nov 2026 10:00:30 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retry.ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "+7", "1e3", "Sun, 22 Nov 2026 10:00:30 GMT",
		"Sunday, 22-Nov-26 10:01:00 GMT", "Sun Nov 22 10:00:05 2026", "99999999999999999999", " 5 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := retry.ParseRetryAfter(h, now)
		if d < 0 || d > retry.MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, %v]", h, d, retry.MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v with ok=false", h, d)
		}
		if strings.TrimSpace(h) == "" && ok {
			t.Fatalf("ParseRetryAfter(%q) ok for a blank header", h)
		}
	})
}

func TestBackoff(t *testing.T) {
	b := retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name    string
		b       retry.Backoff
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first, top of range", b, 0, 0.999999999, 99999999},
		{"first, half", b, 0, 0.5, 50 * time.Millisecond},
		{"doubles", b, 1, 0.5, 100 * time.Millisecond},
		{"doubles again", b, 2, 0.5, 200 * time.Millisecond},
		{"capped", b, 10, 0.5, 500 * time.Millisecond},
		{"huge attempt stays capped", b, 1 << 30, 0.5, 500 * time.Millisecond},
		{"negative attempt is the first", b, -3, 0.5, 50 * time.Millisecond},
		{"zero random", b, 5, 0, 0},
		{"NaN random", b, 5, nanValue(), 0},
		{"random above 1 is clamped", b, 0, 7, 100 * time.Millisecond},
		{"multiplier 3", retry.Backoff{Base: time.Second, Max: time.Hour, Multiplier: 3}, 2, 1, 9 * time.Second},
		{"zero value defaults", retry.Backoff{}, 0, 1, 100 * time.Millisecond},
		{"zero value cap", retry.Backoff{}, 100, 1, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt, func() float64 { return tt.rnd }); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
	t.Run("default random stays in range", func(t *testing.T) {
		for i := range 1000 {
			if d := b.Delay(i%6, nil); d < 0 || d >= b.Ceiling(i%6) {
				t.Fatalf("Delay(%d) = %v outside [0, %v)", i%6, d, b.Ceiling(i%6))
			}
		}
	})
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// recorder is a fake sleeper that records requested waits.
type recorder struct{ waits []time.Duration }

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.waits = append(r.waits, d)
	return ctx.Err()
}

var (
	errTransient = errors.New("transient")
	errPermanent = errors.New("permanent")
)

type hinted struct{ after time.Duration }

func (h hinted) Error() string { return "slow down" }

func classify(err error) (bool, time.Duration) {
	var h hinted
	switch {
	case errors.As(err, &h):
		return true, h.after
	case errors.Is(err, errTransient):
		return true, 0
	default:
		return false, 0
	}
}

func TestDo(t *testing.T) {
	half := func() float64 { return 0.5 }
	base := retry.Policy{Attempts: 4, Backoff: retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second}, Rand: half, MaxDelay: 5 * time.Second}
	tests := []struct {
		name      string
		policy    retry.Policy
		results   []error // what fn returns on each call; nil = success
		retryable func(error) (bool, time.Duration)
		wantCalls int
		wantErr   error
		wantWaits []time.Duration
	}{
		{name: "success first", policy: base, results: []error{nil}, retryable: classify, wantCalls: 1},
		{name: "transient then success", policy: base, results: []error{errTransient, errTransient, nil}, retryable: classify,
			wantCalls: 3, wantWaits: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}},
		{name: "permanent stops at once", policy: base, results: []error{errPermanent, nil}, retryable: classify,
			wantCalls: 1, wantErr: errPermanent},
		{name: "attempts exhausted", policy: base, results: []error{errTransient, errTransient, errTransient, errTransient, nil}, retryable: classify,
			wantCalls: 4, wantErr: errTransient, wantWaits: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}},
		{name: "server hint longer than backoff wins", policy: base, results: []error{hinted{2 * time.Second}, nil}, retryable: classify,
			wantCalls: 2, wantWaits: []time.Duration{2 * time.Second}},
		{name: "server hint shorter than backoff loses", policy: base, results: []error{hinted{time.Millisecond}, nil}, retryable: classify,
			wantCalls: 2, wantWaits: []time.Duration{50 * time.Millisecond}},
		{name: "hint beyond MaxDelay gives up", policy: base, results: []error{hinted{time.Minute}, nil}, retryable: classify,
			wantCalls: 1, wantErr: hinted{time.Minute}},
		{name: "default attempts and retryable", policy: retry.Policy{Rand: half}, results: []error{errPermanent, errPermanent, errPermanent, nil},
			wantCalls: 3, wantErr: errPermanent, wantWaits: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}},
		{name: "default retryable does not retry cancellation", policy: base, results: []error{context.Canceled, nil},
			wantCalls: 1, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			p := tt.policy
			p.Sleep = rec.sleep
			calls := 0
			err := retry.Do(t.Context(), p, func(context.Context) error {
				calls++
				return tt.results[calls-1]
			}, tt.retryable)
			if calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !slicesEqual(rec.waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", rec.waits, tt.wantWaits)
			}
		})
	}
}

func slicesEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDoContext(t *testing.T) {
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		p := retry.Policy{Attempts: 5, Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		}}
		err := retry.Do(ctx, p, func(context.Context) error { return errTransient }, nil)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
			t.Fatalf("err = %v, want both context.Canceled and the last error", err)
		}
	})
	t.Run("deadline too close to wait", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		slept := false
		p := retry.Policy{Attempts: 5, Backoff: retry.Backoff{Base: 3 * time.Hour, Max: 3 * time.Hour},
			Rand: func() float64 { return 0.9 }, MaxDelay: 4 * time.Hour,
			Sleep: func(context.Context, time.Duration) error { slept = true; return nil }}
		calls := 0
		err := retry.Do(ctx, p, func(context.Context) error { calls++; return errTransient }, nil)
		if !errors.Is(err, errTransient) || calls != 1 || slept {
			t.Fatalf("err = %v after %d calls (slept %v), want the first error without waiting", err, calls, slept)
		}
	})
	t.Run("real sleep honours cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep = %v, want context.Canceled", err)
		}
		if err := retry.Sleep(t.Context(), time.Microsecond); err != nil {
			t.Fatalf("Sleep = %v", err)
		}
	})
}
