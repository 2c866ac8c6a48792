package scimout_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/scimout"
	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
)

// TestRetries checks which failures a call sends again: the first
// request matching the fault fails, the call's later tries do not.
func TestRetries(t *testing.T) {
	noPatch := func(p scimout.Profile) scimout.Profile { p.PatchSupported = boolp(false); return p }
	tests := []struct {
		name    string
		profile func(scimout.Profile) scimout.Profile
		fault   scimoutsim.Fault
		call    func(e *env, id string) error
		tries   int // requests with the fault's method and path suffix
		ok      bool
	}{
		{name: "POST after a 500 is not retried", fault: scimoutsim.Fault{Method: http.MethodPost, PathSuffix: "/Users", Status: 500},
			call: func(e *env, _ string) error { _, err := e.conn.Create(ctx, learner("new")); return err }, tries: 1},
		{name: "POST after a 429 is retried", fault: scimoutsim.Fault{Method: http.MethodPost, PathSuffix: "/Users", Status: 429, RetryAfter: "1"},
			call: func(e *env, _ string) error { _, err := e.conn.Create(ctx, learner("new")); return err }, tries: 2, ok: true},
		{name: "GET after a 502 is retried", fault: scimoutsim.Fault{Method: http.MethodGet, Status: 502},
			call: func(e *env, id string) error { _, err := e.conn.Get(ctx, id); return err }, tries: 2, ok: true},
		{name: "GET after a 501 is not", fault: scimoutsim.Fault{Method: http.MethodGet, Status: 501},
			call: func(e *env, id string) error { _, err := e.conn.Get(ctx, id); return err }, tries: 1},
		{name: "PATCH after a 500 is retried", fault: scimoutsim.Fault{Method: http.MethodPatch, Status: 500},
			call: func(e *env, id string) error {
				l := learner("old")
				l.ID, l.FirstName = id, "Renamed"
				return e.conn.Update(ctx, l)
			}, tries: 2, ok: true},
		{name: "PUT after a 500 is retried", profile: noPatch, fault: scimoutsim.Fault{Method: http.MethodPut, Status: 500},
			call: func(e *env, id string) error {
				l := learner("old")
				l.ID, l.FirstName = id, "Renamed"
				return e.conn.Update(ctx, l)
			}, tries: 2, ok: true},
		{name: "group PATCH after a 500 is retried", fault: scimoutsim.Fault{Method: http.MethodPatch, PathSuffix: "", Status: 500},
			call: func(e *env, id string) error {
				return e.conn.Target().(connector.GroupSetter).SetGroups(ctx, id, []string{"Team"})
			}, tries: 2, ok: true},
		{name: "412 is left to the caller's re-read", fault: scimoutsim.Fault{Method: http.MethodPatch, Status: 412},
			call: func(e *env, id string) error {
				l := learner("old")
				l.ID, l.FirstName = id, "Renamed"
				return e.conn.Update(ctx, l)
			}, tries: 2, ok: true}, // the connector's own re-read and retry
		{name: "401 is not retried", fault: scimoutsim.Fault{Method: http.MethodGet, Status: 401},
			call: func(e *env, id string) error { _, err := e.conn.Get(ctx, id); return err }, tries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := profile(t, "generic")
			if tt.profile != nil {
				p = tt.profile(p)
			}
			e := newEnv(t, scimoutsim.Options{}, p, nil)
			id := e.create(learner("old"))
			if _, err := e.conn.Get(ctx, id); err != nil { // discovery done before the fault
				t.Fatal(err)
			}
			e.sim.Reset()
			e.sim.Inject(tt.fault)
			err := tt.call(e, id)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if ce := asError(t, err); ce.Status != tt.fault.Status {
					t.Fatalf("err %+v, want the %d unchanged", ce, tt.fault.Status)
				}
			}
			if n := len(e.requests(tt.fault.Method, tt.fault.PathSuffix)); n != tt.tries {
				t.Fatalf("%d %s requests, want %d", n, tt.fault.Method, tt.tries)
			}
		})
	}
}

// TestSyncUnderFaults creates learners while 20% of requests get 429,
// then updates, groups and reads them while 15% get 429, 5% 503 and 5%
// 500: every call succeeds within itself.
func TestSyncUnderFaults(t *testing.T) {
	var mu sync.Mutex
	var waits []time.Duration
	e := newEnv(t, scimoutsim.Options{Rate429: 0.2, RetryAfter: "1", Seed: 9}, profile(t, "generic"), func(c *scimout.Config) {
		c.Retry.Attempts = 8 // a call fails only after 8 faults in a row
		c.Retry.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err()
		}
	})
	const n = 20
	ids := make([]string, n)
	for i := range n {
		l := learner(fmt.Sprint("s", i))
		found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID})
		if err != nil || len(found) != 0 {
			t.Fatalf("find %d: %v %v", i, found, err)
		}
		if ids[i], err = e.conn.Create(ctx, l); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	e.sim.SetRates(0.15, 0.05)
	gs := e.conn.Target().(connector.GroupSetter)
	// The group is created (a POST) before 500s are injected.
	if err := gs.SetGroups(ctx, ids[0], []string{"All"}); err != nil {
		t.Fatal(err)
	}
	e.sim.SetRate500(0.05)
	for i, id := range ids {
		l := learner(fmt.Sprint("s", i))
		l.ID, l.FirstName = id, "Renamed"
		if err := e.conn.Update(ctx, l); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if err := gs.SetGroups(ctx, id, []string{"All"}); err != nil {
			t.Fatalf("groups %d: %v", i, err)
		}
	}
	e.sim.SetRates(0, 0)
	e.sim.SetRate500(0)
	for i, id := range ids {
		if got := e.get(id); got.FirstName != "Renamed" {
			t.Fatalf("learner %d = %+v", i, got)
		}
	}
	if m := e.groupMembers(e.groupByName("All")["id"].(string)); len(m) != n {
		t.Fatalf("All has %d members, want %d", len(m), n)
	}
	byStatus := map[int]int{}
	for _, r := range e.sim.Requests() {
		if r.Injected {
			byStatus[r.Status]++
		}
	}
	t.Logf("injected %v; %d retries", byStatus, len(waits))
	if byStatus[429] == 0 || byStatus[503] == 0 || byStatus[500] == 0 {
		t.Fatalf("faults not injected: %v", byStatus)
	}
	if len(waits) != byStatus[429]+byStatus[503]+byStatus[500] {
		t.Fatalf("%d retries for %v", len(waits), byStatus)
	}
}
