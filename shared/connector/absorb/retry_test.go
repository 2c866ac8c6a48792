package absorb_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
)

// recordSleeps is a retry sleep that records the waits without waiting.
type recordSleeps struct{ got []time.Duration }

func (r *recordSleeps) sleep(ctx context.Context, d time.Duration) error {
	r.got = append(r.got, d)
	return ctx.Err()
}

// TestSyncUnderFaults runs what a sync does (find by external id, then
// create or read-merge-update) for many learners while Absorb answers 20%
// of requests 429 and 5% 500: every call succeeds within itself, the
// 429s being retried whatever the method. Creates are driven with 429s
// only: a POST after a 500 is never retried (TestPostAfter500).
func TestSyncUnderFaults(t *testing.T) {
	sleeps := &recordSleeps{}
	e := setup(t, absorbsim.Options{Faults: absorbsim.Faults{P429: 0.2, Seed: 3}}, func(c *absorb.Config) {
		// 8 tries: a call fails only after 8 faults in a row (0.25^8).
		c.Retry.Attempts, c.Retry.Sleep = 8, sleeps.sleep
	})
	ctx := context.Background()
	const n = 30
	ids := make([]string, n)
	for i := range n {
		l := learner(fmt.Sprint("f", i))
		found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID})
		if err != nil || len(found) != 0 {
			t.Fatalf("find %d: %v %v", i, found, err)
		}
		if ids[i], err = e.conn.Create(ctx, l); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	e.sim.SetRates(0.2, 0.05, 0)
	for i, id := range ids {
		l := learner(fmt.Sprint("f", i))
		l.ID = id
		l.Fields["jobTitle"] = "Engineer"
		if err := e.conn.Update(ctx, l); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		got, err := e.conn.Get(ctx, id)
		if err != nil || got.Fields["jobTitle"] != "Engineer" {
			t.Fatalf("get %d: %+v %v", i, got, err)
		}
	}
	r429, r500 := e.statuses(http.StatusTooManyRequests), e.statuses(http.StatusInternalServerError)
	t.Logf("%d requests: %d answered 429, %d answered 500; %d retries", len(e.sim.Requests()), r429, r500, len(sleeps.got))
	if r429 == 0 || r500 == 0 {
		t.Fatalf("faults not injected: %d 429s, %d 500s", r429, r500)
	}
	if len(sleeps.got) != r429+r500 {
		t.Fatalf("%d retries for %d faults", len(sleeps.got), r429+r500)
	}
	// Each 429 waited its own Retry-After; every one was reported to the
	// limiter, which decides whether everyone pauses.
	long := 0
	for _, d := range sleeps.got {
		if d == time.Second {
			long++
		}
	}
	if long != r429 {
		t.Fatalf("%d waits of the 1s Retry-After for %d 429s", long, r429)
	}
	if p := e.lim.Pauses(); len(p) != r429 {
		t.Fatalf("%d limiter pauses for %d 429s", len(p), r429)
	}
}

// TestPostAfter500 checks which requests a failure sends again.
func TestPostAfter500(t *testing.T) {
	tests := []struct {
		name            string
		p429, p5xx      float64
		call            func(e *env) error
		method, path    string
		tries           int
		status          int
		wantPauseReport int
	}{
		{"POST after a 500 is not retried", 0, 1, func(e *env) error { _, err := e.conn.Create(context.Background(), learner("p")); return err },
			"POST", "/users", 1, 500, 0},
		{"POST after a 429 is retried", 1, 0, func(e *env) error { _, err := e.conn.Create(context.Background(), learner("p")); return err },
			"POST", "/users", 4, 429, 4},
		{"GET after a 500 is retried", 0, 1, func(e *env) error { _, err := e.conn.Get(context.Background(), e.seeded); return err },
			"GET", "/users/", 4, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, absorbsim.Options{}, nil)
			e.seeded = e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
			if _, err := e.conn.Get(context.Background(), e.seeded); err != nil { // the token, before the faults
				t.Fatal(err)
			}
			e.sim.ResetCounters()
			e.sim.SetRates(tt.p429, tt.p5xx, 0)
			ce := asError(t, tt.call(e))
			if ce.Status != tt.status || !ce.Retryable {
				t.Fatalf("err %+v, want a retryable %d", ce, tt.status)
			}
			if n := e.count(tt.method, tt.path); n != tt.tries {
				t.Fatalf("%d %s %s requests, want %d", n, tt.method, tt.path, tt.tries)
			}
			if n := len(e.lim.Pauses()); n != tt.wantPauseReport {
				t.Fatalf("%d pauses reported, want %d", n, tt.wantPauseReport)
			}
		})
	}
}

// TestRetryKeepsTokenHandling checks that 429s around a revoked token do
// not make the connector log in more than once per revocation.
func TestRetryKeepsTokenHandling(t *testing.T) {
	e := setup(t, absorbsim.Options{Faults: absorbsim.Faults{Seed: 11}}, func(c *absorb.Config) { c.Retry.Attempts = 12 })
	ctx := context.Background()
	id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	if _, err := e.conn.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetCounters()
	e.sim.SetRates(0.3, 0, 0)
	const rounds = 6
	for i := range rounds {
		e.sim.InvalidateToken()
		if _, err := e.conn.Get(ctx, id); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if n := e.sim.Authentications(); n != rounds {
		t.Fatalf("%d logins for %d revoked tokens, want one each", n, rounds)
	}
	t.Logf("%d 429s, %d 401s", e.statuses(http.StatusTooManyRequests), e.statuses(http.StatusUnauthorized))
}
