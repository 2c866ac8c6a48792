package onelogin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin/oneloginsim"
)

// faulty answers a seeded share of requests itself, before they reach
// OneLogin (so they are never executed): p429 get 429 with Retry-After: 1,
// p5xx get 500.
type faulty struct {
	next       http.RoundTripper
	mu         sync.Mutex
	rng        *rand.Rand
	p429, p5xx float64
	n429, n5xx int
}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	x := f.rng.Float64()
	status := 0
	switch {
	case x < f.p429:
		status = http.StatusTooManyRequests
		f.n429++
	case x < f.p429+f.p5xx:
		status = http.StatusInternalServerError
		f.n5xx++
	}
	f.mu.Unlock()
	if status == 0 {
		return f.next.RoundTrip(r)
	}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	return &http.Response{StatusCode: status, Header: h, Request: r,
		Body: io.NopCloser(strings.NewReader(fmt.Sprintf(`{"statusCode":%d,"name":"Injected","message":"injected"}`, status)))}, nil
}

func (f *faulty) set(p429, p5xx float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.p429, f.p5xx = p429, p5xx
}

func (f *faulty) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n429, f.n5xx
}

// TestSyncUnderFaults creates learners while 20% of requests get 429,
// then updates and reads them while 20% get 429 and 5% get 500: every
// call succeeds within itself.
func TestSyncUnderFaults(t *testing.T) {
	f := &faulty{next: http.DefaultTransport, rng: rand.New(rand.NewPCG(5, 5)), p429: 0.2}
	var waits []time.Duration
	var mu sync.Mutex
	e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) {
		c.HTTPClient = &http.Client{Transport: f}
		c.Retry.Attempts = 8 // a call fails only after 8 faults in a row
		c.Retry.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err()
		}
	})
	const n = 25
	ids := make([]string, n)
	for i := range n {
		l := learner(100 + i)
		found, err := e.conn.Find(e.ctx, connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID})
		if err != nil || len(found) != 0 {
			t.Fatalf("find %d: %v %v", i, found, err)
		}
		if ids[i], err = e.conn.Create(e.ctx, l); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	f.set(0.2, 0.05)
	for i, id := range ids {
		l := learner(100 + i)
		l.ID = id
		l.Fields["title"] = "Engineer"
		if err := e.conn.Update(e.ctx, l); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if got := e.simUser(t, id); got.Title != "Engineer" {
			t.Fatalf("learner %d title %q", i, got.Title)
		}
	}
	n429, n5xx := f.counts()
	t.Logf("%d 429s, %d 500s injected; %d retries", n429, n5xx, len(waits))
	if n429 == 0 || n5xx == 0 || len(waits) != n429+n5xx {
		t.Fatalf("%d 429s and %d 500s injected, %d retries", n429, n5xx, len(waits))
	}
	if p := e.lim.Pauses(); len(p) != n429 {
		t.Fatalf("%d pauses reported for %d 429s", len(p), n429)
	}
}

// failFirst answers the first /api request with method itself (status,
// header) and counts the /api requests with that method.
type failFirst struct {
	next   http.RoundTripper
	method string
	status int
	header http.Header
	mu     sync.Mutex
	tries  int
}

func (f *failFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != f.method || !strings.HasPrefix(r.URL.Path, "/api/") {
		return f.next.RoundTrip(r)
	}
	f.mu.Lock()
	f.tries++
	first := f.tries == 1
	f.mu.Unlock()
	if !first {
		return f.next.RoundTrip(r)
	}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	h := f.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: f.status, Header: h, Request: r,
		Body: io.NopCloser(strings.NewReader(`{"statusCode":0,"name":"Injected","message":"injected"}`))}, nil
}

// TestRetries checks which answers a call sends again.
func TestRetries(t *testing.T) {
	create := func(e *env, _ string) error { _, err := e.conn.Create(e.ctx, learner(7)); return err }
	get := func(e *env, id string) error { _, err := e.conn.Get(e.ctx, id); return err }
	tests := []struct {
		name   string
		method string
		status int
		header http.Header
		call   func(e *env, id string) error
		tries  int
		ok     bool
	}{
		{"POST after a 500 is not retried", http.MethodPost, 500, nil, create, 1, false},
		{"POST after a timeout-like 504 is not retried", http.MethodPost, 504, nil, create, 1, false},
		{"POST after a 429 is retried", http.MethodPost, 429, http.Header{"Retry-After": {"2"}}, create, 2, true},
		{"POST after a 503 is retried", http.MethodPost, 503, nil, create, 2, true},
		{"GET after a 502 is retried", http.MethodGet, 502, nil, get, 2, true},
		{"GET after a 404 is not", http.MethodGet, 404, nil, get, 1, false},
		{"PUT after a 500 is retried", http.MethodPut, 500, nil, func(e *env, id string) error {
			l := learner(8)
			l.ID = id
			return e.conn.Update(e.ctx, l)
		}, 2, true},
		{"DELETE (leaving a role) after a 500 is retried", http.MethodDelete, 500, nil, func(e *env, id string) error {
			return e.conn.SetGroups(e.ctx, id, nil)
		}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &failFirst{next: http.DefaultTransport, method: tt.method, status: tt.status, header: tt.header}
			e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) { c.HTTPClient = &http.Client{Transport: ft} })
			id := fmt.Sprint(e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com", RoleIDs: []int{e.sales}}))
			err := tt.call(e, id)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			var ce *connector.Error
			if err != nil && (!errors.As(err, &ce) || ce.Status != tt.status) {
				t.Fatalf("err = %v, want the %d unchanged", err, tt.status)
			}
			if ft.tries != tt.tries {
				t.Fatalf("%d %s requests, want %d", ft.tries, tt.method, tt.tries)
			}
		})
	}
}
