package vendorhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
)

func TestIdempotent(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true,
		"POST": false, "PATCH": false, "CONNECT": false, "": false,
	} {
		if got := Idempotent(m); got != want {
			t.Errorf("Idempotent(%q) = %v", m, got)
		}
	}
}

func cerr(status int, retryable bool, after time.Duration) error {
	return &connector.Error{Op: "v.op", Status: status, Retryable: retryable, RetryAfter: after, Err: errors.New("x")}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		idempotent bool
		again      bool
		throttled  bool
	}{
		{"429 POST", cerr(429, true, time.Second), false, true, true},
		{"503 POST", cerr(503, true, 0), false, true, true},
		{"429 GET", cerr(429, true, 0), true, true, true},
		{"500 GET", cerr(500, true, 0), true, true, false},
		{"502 PUT", cerr(502, true, 0), true, true, false},
		{"504 DELETE", cerr(504, true, 0), true, true, false},
		{"500 POST", cerr(500, true, 0), false, false, false},
		{"501 GET", cerr(501, true, 0), true, false, false},
		{"408 GET", cerr(408, true, 0), true, true, false},
		{"408 POST", cerr(408, true, 0), false, false, false},
		{"transport GET", cerr(0, true, 0), true, true, false},
		{"transport POST", cerr(0, true, 0), false, false, false},
		{"wrapped transport GET", errors.Join(errors.New("ctx"), cerr(0, true, 0)), true, true, false},
		{"401 GET", cerr(401, true, 0), true, false, false},
		{"412 PUT", cerr(412, true, 0), true, false, false},
		{"409 PUT", cerr(409, true, 0), true, false, false},
		{"404 GET", cerr(404, false, 0), true, false, false},
		{"permanent 500", cerr(500, false, 0), true, false, false},
		{"not classified", io.ErrUnexpectedEOF, true, false, false},
		{"canceled", context.Canceled, true, false, false},
	}
	for _, tt := range tests {
		again, throttled := Retryable(tt.err, tt.idempotent)
		if again != tt.again || throttled != tt.throttled {
			t.Errorf("%s: Retryable = %v, %v; want %v, %v", tt.name, again, throttled, tt.again, tt.throttled)
		}
	}
}

// simTime is a fake clock: Sleep moves it on and records the waits.
type simTime struct {
	now    time.Time
	sleeps []time.Duration
	// cancel, when set, is called on the nth sleep (1-based) instead of
	// sleeping, as if ctx ended during the wait.
	cancelAt int
	cancel   context.CancelFunc
}

func (s *simTime) Now() time.Time { return s.now }

func (s *simTime) Sleep(ctx context.Context, d time.Duration) error {
	s.sleeps = append(s.sleeps, d)
	if s.cancel != nil && len(s.sleeps) == s.cancelAt {
		s.cancel()
		return ctx.Err()
	}
	s.now = s.now.Add(d)
	return ctx.Err()
}

func TestRetryDo(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name       string
		policy     Retry
		idempotent bool
		errs       []error       // what each try returns; past the end: nil
		tryTakes   time.Duration // simulated time per try
		deadline   time.Duration // ctx deadline from now (real time); 0: none
		cancelAt   int           // cancel ctx during this sleep; 0: never
		wantTries  int
		wantSleeps []time.Duration
		wantErr    int // index into errs of the error Do returns; -1: nil
		wantCancel bool
	}{
		{name: "success at once", errs: nil, wantTries: 1, wantErr: -1},
		{name: "Retry-After honoured", idempotent: false, errs: []error{cerr(429, true, s), cerr(503, true, 2*s)},
			wantTries: 3, wantSleeps: []time.Duration{s, 2 * s}, wantErr: -1},
		{name: "throttled without hint: jittered backoff", errs: []error{cerr(429, true, 0), cerr(429, true, 0)},
			wantTries: 3, wantSleeps: []time.Duration{125 * time.Millisecond, 250 * time.Millisecond}, wantErr: -1},
		{name: "500 on GET retried", idempotent: true, errs: []error{cerr(500, true, 0)},
			wantTries: 2, wantSleeps: []time.Duration{125 * time.Millisecond}, wantErr: -1},
		{name: "500 on POST not retried", idempotent: false, errs: []error{cerr(500, true, 0)},
			wantTries: 1, wantErr: 0},
		{name: "timeout on POST not retried", idempotent: false, errs: []error{cerr(0, true, 0)},
			wantTries: 1, wantErr: 0},
		{name: "attempt cap: last error returned", idempotent: true,
			errs:      []error{cerr(500, true, 0), cerr(502, true, 0), cerr(0, true, 0), cerr(503, true, s), cerr(500, true, 0)},
			wantTries: 4, wantSleeps: []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond}, wantErr: 3},
		{name: "custom attempts", policy: Retry{Attempts: 2}, idempotent: true,
			errs: []error{cerr(500, true, 0), cerr(500, true, 0), cerr(500, true, 0)}, wantTries: 2,
			wantSleeps: []time.Duration{125 * time.Millisecond}, wantErr: 1},
		{name: "attempts 1: no retry", policy: Retry{Attempts: 1}, errs: []error{cerr(429, true, s)}, wantTries: 1, wantErr: 0},
		{name: "long Retry-After left to the queue", errs: []error{cerr(429, true, time.Minute)}, wantTries: 1, wantErr: 0},
		{name: "budget spent by waits", policy: Retry{Budget: 5 * s, Attempts: 10},
			errs:      []error{cerr(429, true, 2*s), cerr(429, true, 2*s), cerr(429, true, 2*s), cerr(429, true, 2*s)},
			wantTries: 3, wantSleeps: []time.Duration{2 * s, 2 * s}, wantErr: 2},
		{name: "budget spent by slow tries", policy: Retry{Budget: 10 * s, Attempts: 10}, tryTakes: 5 * s,
			errs:      []error{cerr(429, true, s), cerr(429, true, s), cerr(429, true, s)},
			wantTries: 2, wantSleeps: []time.Duration{s}, wantErr: 1},
		{name: "ctx deadline before the wait ends", deadline: time.Minute, errs: []error{cerr(429, true, 2*time.Minute)},
			policy: Retry{Budget: time.Hour}, wantTries: 1, wantErr: 0},
		{name: "ctx cancelled during the wait", errs: []error{cerr(429, true, s), cerr(429, true, s)}, cancelAt: 2,
			wantTries: 2, wantSleeps: []time.Duration{s, s}, wantErr: 1, wantCancel: true},
		{name: "401 is the connector's business", idempotent: true, errs: []error{cerr(401, true, 0)}, wantTries: 1, wantErr: 0},
		{name: "permanent error", idempotent: true, errs: []error{cerr(422, false, 0)}, wantTries: 1, wantErr: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			clock := &simTime{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), cancelAt: tt.cancelAt}
			if tt.cancelAt > 0 {
				clock.cancel = cancel
			}
			p := tt.policy
			p.Sleep, p.Now, p.Rand, p.Logger = clock.Sleep, clock.Now, func() float64 { return 0.5 }, discard()
			tries := 0
			err := p.Do(ctx, tt.idempotent, func(context.Context) error {
				tries++
				clock.now = clock.now.Add(tt.tryTakes)
				if tries <= len(tt.errs) {
					return tt.errs[tries-1]
				}
				return nil
			})
			if tries != tt.wantTries {
				t.Errorf("%d tries, want %d", tries, tt.wantTries)
			}
			if !slices.Equal(clock.sleeps, tt.wantSleeps) {
				t.Errorf("sleeps %v, want %v", clock.sleeps, tt.wantSleeps)
			}
			switch {
			case tt.wantErr < 0:
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
			case tt.wantCancel:
				var ce *connector.Error
				if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || ce != tt.errs[tt.wantErr] {
					t.Errorf("err = %v, want context.Canceled wrapping the last error", err)
				}
			default:
				if err != tt.errs[tt.wantErr] {
					t.Errorf("err = %v, want error %d (%v) unchanged", err, tt.wantErr, tt.errs[tt.wantErr])
				}
			}
		})
	}
}

func TestRetryDoStopsWhenCancelled(t *testing.T) {
	// The zero policy with its real sleep: a ctx cancelled during a try
	// ends the call with that try's error.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tries := 0
	err := Retry{}.Do(ctx, true, func(context.Context) error {
		tries++
		if tries == 2 {
			cancel()
		}
		return cerr(http.StatusBadGateway, true, 0)
	})
	var ce *connector.Error
	if tries != 2 || !errors.As(err, &ce) || ce.Status != http.StatusBadGateway {
		t.Fatalf("%d tries, err %v; want 2 tries and the 502", tries, err)
	}
}
