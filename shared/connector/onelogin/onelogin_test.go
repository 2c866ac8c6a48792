package onelogin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin/oneloginsim"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

const (
	clientID     = "0f5e3c1a9b7d4e2f8a6c"
	clientSecret = "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4"
	adminClient  = "admin-portal-integration"
)

// limiter admits everything and records pauses.
type limiter struct {
	mu     sync.Mutex
	waits  int
	pauses []time.Duration
}

func (l *limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return ctx.Err()
}

func (l *limiter) Pause(_ context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, d)
	return nil
}

func (l *limiter) Pauses() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.pauses...)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	ctx   context.Context
	sim   *oneloginsim.Sim
	conn  *onelogin.Connector
	lim   *limiter
	clock *fakeClock
	cache *tokencache.Local
	sales int // role ids
	supp  int
	other int // a role learnerlink does not manage
}

func newEnv(t *testing.T, mod ...func(*oneloginsim.Options, *onelogin.Config)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	opts := oneloginsim.Options{
		Now:              clock.Now,
		CustomAttributes: []string{onelogin.DefaultOriginMarkerField, "employee_number", "cost_center"},
	}
	e := &env{ctx: context.Background(), lim: &limiter{}, clock: clock, cache: tokencache.NewLocal()}
	cfg := onelogin.Config{
		ClientID: clientID, ClientSecret: clientSecret,
		Limiter: e.lim, Tokens: e.cache, Now: clock.Now,
		EmployeeNumberField: "employee_number",
		// In-request retries on (the default policy) without real waits.
		Retry: vendorhttp.Retry{Sleep: instant},
	}
	for _, m := range mod {
		m(&opts, &cfg)
	}
	e.sim = oneloginsim.New(opts)
	t.Cleanup(e.sim.Close)
	e.sim.AddClient(clientID, clientSecret)
	e.sim.AddClient(adminClient, "admin-secret")
	e.sales = e.sim.AddRole("LMS Sales")
	e.supp = e.sim.AddRole("LMS Support")
	e.other = e.sim.AddRole("Okta Admins")
	cfg.BaseURL = e.sim.URL()
	cfg.RoleMap = map[string]int{"Sales": e.sales, "Support": e.supp}
	conn, err := onelogin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	return e
}

func learner(n int) connector.Learner {
	return connector.Learner{
		ExternalID: fmt.Sprintf("00u%04d", n),
		UserName:   fmt.Sprintf("learner%d@example.com", n),
		Email:      fmt.Sprintf("learner%d@example.com", n),
		FirstName:  "Ada",
		LastName:   fmt.Sprintf("Lovelace%d", n),
		Active:     true,
		Fields:     map[string]string{},
	}
}

func (e *env) simUser(t *testing.T, id string) oneloginsim.User {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(id, &n); err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	u, ok := e.sim.User(n)
	if !ok {
		t.Fatalf("no user %s in the sim", id)
	}
	return u
}

// writes counts the write requests the sim answered.
func (e *env) writes() []oneloginsim.Request {
	var out []oneloginsim.Request
	for _, r := range e.sim.Requests() {
		if r.Method != http.MethodGet && strings.HasPrefix(r.Path, "/api/") {
			out = append(out, r)
		}
	}
	return out
}

func TestCreateGetFind(t *testing.T) {
	e := newEnv(t)
	l := learner(1)
	l.Fields = map[string]string{
		"jobTitle":                      "Engineer",
		"department":                    "R&D",
		"custom_attributes.cost_center": "CC-42",
		"employeeNumber":                "E-1001",
		"location":                      "Berlin", // no OneLogin attribute: ignored
	}
	ctx := onelogin.WithOrigin(e.ctx, "ident-1", 3)
	id, err := e.conn.Create(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	u := e.simUser(t, id)
	if u.Status != 7 || u.State != 1 || u.HasPassword {
		t.Errorf("status/state/password = %d/%d/%v, want 7/1/false (created without password)", u.Status, u.State, u.HasPassword)
	}
	if u.Title != "Engineer" || u.Department != "R&D" || u.CustomAttributes["cost_center"] != "CC-42" || u.CustomAttributes["employee_number"] != "E-1001" {
		t.Errorf("sim user = %+v", u)
	}
	if got := u.CustomAttributes[onelogin.DefaultOriginMarkerField]; got != "learnerlink:ident-1:3" {
		t.Errorf("origin marker = %q", got)
	}

	got, err := e.conn.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.ExternalID != l.ExternalID || got.UserName != l.UserName || got.Email != l.Email ||
		got.FirstName != "Ada" || got.LastName != l.LastName || !got.Active {
		t.Errorf("Get = %+v", got)
	}
	for k, v := range map[string]string{"title": "Engineer", "department": "R&D", "custom_attributes.cost_center": "CC-42", "employeeNumber": "E-1001"} {
		if got.Fields[k] != v {
			t.Errorf("Get Fields[%s] = %q, want %q", k, got.Fields[k], v)
		}
	}
	if ident, v, ok := onelogin.OriginOf(*got); !ok || ident != "ident-1" || v != 3 {
		t.Errorf("OriginOf = %q, %d, %v", ident, v, ok)
	}
	// location has no OneLogin attribute, so it can never match.
	if d := fmt.Sprint(onelogin.Differences(l, *got)); d != "[location]" {
		t.Errorf("Differences(created, read back) = %s, want [location]", d)
	}

	e.sim.SeedUser(oneloginsim.User{Username: "other@example.com", Email: "other@example.com"})
	for _, tc := range []struct {
		name string
		key  connector.Key
		want int
	}{
		{"external id", connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID}, 1},
		{"username, other case", connector.Key{Kind: connector.KeyUserName, Value: strings.ToUpper(l.UserName)}, 1},
		{"email", connector.Key{Kind: connector.KeyEmail, Value: l.Email}, 1},
		{"employee number", connector.Key{Kind: connector.KeyEmployeeNumber, Value: "E-1001"}, 1},
		{"wildcard is not a match", connector.Key{Kind: connector.KeyEmail, Value: "*@example.com"}, 0},
		{"absent", connector.Key{Kind: connector.KeyExternalID, Value: "00unobody"}, 0},
		{"empty value", connector.Key{Kind: connector.KeyEmail, Value: ""}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			found, err := e.conn.Find(e.ctx, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != tc.want || (tc.want == 1 && found[0].ID != id) {
				t.Errorf("found %+v, want %d (id %s)", found, tc.want, id)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name      string
		seed      oneloginsim.User
		change    func(l *connector.Learner)
		wantWrite bool
		check     func(t *testing.T, u oneloginsim.User, body string)
	}{
		{
			name:   "one attribute: only it and the marker are sent",
			change: func(l *connector.Learner) { l.Fields["title"] = "Manager" },
			check: func(t *testing.T, u oneloginsim.User, body string) {
				if u.Title != "Manager" || u.Department != "Ops" {
					t.Errorf("title/department = %q/%q", u.Title, u.Department)
				}
				if body != `{"custom_attributes":{"learnerlink_origin":"learnerlink:ident-9:7"},"title":"Manager"}` {
					t.Errorf("PUT body = %s", body)
				}
			},
			wantWrite: true,
		},
		{
			name:   "nothing differs: no write",
			change: func(l *connector.Learner) {},
		},
		{
			name:   "only the origin differs: no write",
			change: func(l *connector.Learner) { l.Fields[onelogin.OriginKey] = "learnerlink:ident-9:99" },
		},
		{
			name:      "deactivate suspends",
			change:    func(l *connector.Learner) { l.Active = false },
			wantWrite: true,
			check: func(t *testing.T, u oneloginsim.User, _ string) {
				if u.Status != 2 {
					t.Errorf("status = %d, want 2 (suspended)", u.Status)
				}
			},
		},
		{
			name:      "reactivate a suspended user",
			seed:      oneloginsim.User{Status: 2},
			change:    func(l *connector.Learner) {},
			wantWrite: true,
			check: func(t *testing.T, u oneloginsim.User, _ string) {
				if u.Status != 1 {
					t.Errorf("status = %d, want 1", u.Status)
				}
			},
		},
		{
			name:   "password pending counts as active",
			seed:   oneloginsim.User{Status: 7},
			change: func(l *connector.Learner) {},
		},
		{
			name:   "empty core values are never written",
			change: func(l *connector.Learner) { l.Email, l.FirstName = "", "" },
		},
		{
			name:      "an empty field clears, custom attributes too",
			change:    func(l *connector.Learner) { l.Fields["department"], l.Fields["custom_attributes.cost_center"] = "", "" },
			wantWrite: true,
			check: func(t *testing.T, u oneloginsim.User, _ string) {
				if u.Department != "" || u.CustomAttributes["cost_center"] != "" {
					t.Errorf("department %q cost center %q, want cleared", u.Department, u.CustomAttributes["cost_center"])
				}
			},
		},
		{
			name:      "aliases map to OneLogin names",
			change:    func(l *connector.Learner) { l.Fields["departmentName"] = "Sales" },
			wantWrite: true,
			check: func(t *testing.T, u oneloginsim.User, _ string) {
				if u.Department != "Sales" {
					t.Errorf("department = %q", u.Department)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			seed := tc.seed
			seed.Username, seed.Email, seed.Firstname, seed.Lastname = "jo@example.com", "jo@example.com", "Jo", "Doe"
			seed.ExternalID, seed.Title, seed.Department = "00u9", "Analyst", "Ops"
			seed.CustomAttributes = map[string]string{"cost_center": "CC-1"}
			id := fmt.Sprint(e.sim.SeedUser(seed))
			l := connector.Learner{ID: id, ExternalID: "00u9", UserName: "jo@example.com", Email: "jo@example.com",
				FirstName: "Jo", LastName: "Doe", Active: true,
				Fields: map[string]string{"title": "Analyst", "department": "Ops", "custom_attributes.cost_center": "CC-1"}}
			tc.change(&l)
			e.sim.ResetRequests()
			if err := e.conn.Update(onelogin.WithOrigin(e.ctx, "ident-9", 7), l); err != nil {
				t.Fatal(err)
			}
			w := e.writes()
			if got := len(w) > 0; got != tc.wantWrite {
				t.Fatalf("writes = %+v, want a write: %v", w, tc.wantWrite)
			}
			if tc.check != nil {
				body := ""
				if len(w) > 0 {
					body = strings.TrimSpace(w[0].Body)
				}
				tc.check(t, e.simUser(t, id), body)
			}
		})
	}
}

func TestUpdateResolvesManager(t *testing.T) {
	e := newEnv(t)
	boss := e.sim.SeedUser(oneloginsim.User{Username: "boss@example.com", Email: "boss@example.com", ExternalID: "00uboss"})
	id := fmt.Sprint(e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com"}))
	l := connector.Learner{ID: id, Active: true, Fields: map[string]string{"supervisorExternalId": "00uboss"}}
	if err := e.conn.Update(e.ctx, l); err != nil {
		t.Fatal(err)
	}
	if u := e.simUser(t, id); u.ManagerUserID != boss {
		t.Errorf("manager = %d, want %d", u.ManagerUserID, boss)
	}
	// A manager not provisioned yet leaves the attribute alone.
	l.Fields["supervisorExternalId"] = "00unotyet"
	if err := e.conn.Update(e.ctx, l); err != nil {
		t.Fatal(err)
	}
	if u := e.simUser(t, id); u.ManagerUserID != boss {
		t.Errorf("manager = %d, want it kept (%d)", u.ManagerUserID, boss)
	}
}

func TestDeactivateReactivate(t *testing.T) {
	e := newEnv(t)
	l := learner(2)
	id, err := e.conn.Create(e.ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	l.ID = id
	for i, active := range []bool{false, false, true, true} {
		l.Active = active
		if err := e.conn.Update(e.ctx, l); err != nil {
			t.Fatal(err)
		}
		got, err := e.conn.Get(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Active != active {
			t.Errorf("step %d: Active = %v, want %v", i, got.Active, active)
		}
	}
	for _, r := range e.sim.Requests() {
		if r.Method == http.MethodDelete && strings.HasPrefix(r.Path, "/api/2/users") {
			t.Errorf("a user was deleted: %+v", r)
		}
	}
	// Two state changes, one PUT each; the repeats wrote nothing.
	puts := 0
	for _, w := range e.writes() {
		if w.Method == http.MethodPut {
			puts++
		}
	}
	if puts != 2 {
		t.Errorf("%d PUTs, want 2", puts)
	}
	if u := e.simUser(t, id); u.Status != 1 {
		t.Errorf("final status %d, want 1", u.Status)
	}
}

func TestSetGroups(t *testing.T) {
	e := newEnv(t)
	uid := e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com", RoleIDs: []int{e.other, e.supp}})
	id := fmt.Sprint(uid)
	steps := []struct {
		groups []string
		want   []int
	}{
		{[]string{"sales", "Everyone"}, []int{e.sales, e.other}},        // case-insensitive; unmapped ignored; Support removed
		{[]string{"Sales", "Support"}, []int{e.sales, e.supp, e.other}}, // add
		{nil, []int{e.other}}, // remove managed only
		{nil, []int{e.other}}, // idempotent
	}
	for i, s := range steps {
		e.sim.ResetRequests()
		if err := e.conn.SetGroups(e.ctx, id, s.groups); err != nil {
			t.Fatal(err)
		}
		u := e.simUser(t, id)
		if fmt.Sprint(sorted(u.RoleIDs)) != fmt.Sprint(sorted(s.want)) {
			t.Errorf("step %d: roles %v, want %v", i, u.RoleIDs, s.want)
		}
		if i == len(steps)-1 && len(e.writes()) != 0 {
			t.Errorf("idempotent SetGroups wrote %+v", e.writes())
		}
	}
	for _, w := range e.writes() {
		if !strings.HasPrefix(w.Path, "/api/2/roles/") || w.Body != fmt.Sprintf("[%d]", uid) {
			t.Errorf("unexpected role write %+v", w)
		}
	}
}

func sorted(ids []int) []int {
	out := append([]int(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestList(t *testing.T) {
	e := newEnv(t)
	for i := range 250 {
		e.sim.SeedUser(oneloginsim.User{Username: fmt.Sprintf("u%03d", i), Email: fmt.Sprintf("u%03d@example.com", i)})
	}
	seen := map[string]bool{}
	var sizes []int
	cursor := ""
	for {
		page, next, err := e.conn.List(e.ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page))
		for _, l := range page {
			if seen[l.ID] {
				t.Errorf("learner %s listed twice", l.ID)
			}
			seen[l.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 250 || fmt.Sprint(sizes) != "[100 100 50]" {
		t.Errorf("listed %d learners in pages %v, want 250 in [100 100 50]", len(seen), sizes)
	}
}

func TestTokenSharedByWorkers(t *testing.T) {
	e := newEnv(t)
	id := fmt.Sprint(e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com"}))
	conns := make([]*onelogin.Connector, 8)
	for i := range conns {
		c, err := onelogin.New(onelogin.Config{BaseURL: e.sim.URL(), ClientID: clientID, ClientSecret: clientSecret,
			Limiter: e.lim, Tokens: e.cache, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(conns)*3)
	for _, c := range conns {
		wg.Go(func() {
			for range 3 {
				if _, err := c.Get(e.ctx, id); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.sim.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

func TestTokenRefresh(t *testing.T) {
	e := newEnv(t)
	id := fmt.Sprint(e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com"}))
	get := func() {
		t.Helper()
		if _, err := e.conn.Get(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	get()
	first, _ := e.cache.Get(e.ctx)
	if want := e.clock.Now().Add(10 * time.Hour); !first.Expires.Equal(want) {
		t.Errorf("token expires %v, want %v (expires_in 36000)", first.Expires, want)
	}

	// Shortly before expiry OneLogin would hand back the same dying token:
	// the connector revokes it and gets a fresh one.
	e.clock.Advance(10*time.Hour - 2*time.Minute)
	get()
	second, _ := e.cache.Get(e.ctx)
	if second.Value == first.Value || !second.Expires.After(e.clock.Now().Add(9*time.Hour)) {
		t.Errorf("token not rolled over early: same=%v expires %v", second.Value == first.Value, second.Expires)
	}
	revoked := 0
	for _, r := range e.sim.Requests() {
		if r.Path == "/auth/oauth2/revoke" {
			revoked++
		}
	}
	if revoked != 1 || e.sim.TokenRequests() != 3 {
		t.Errorf("revokes %d, token requests %d; want 1 and 3", revoked, e.sim.TokenRequests())
	}

	// A revoked token (401) is replaced and the call retried.
	e.sim.RevokeAll()
	get()
	third, _ := e.cache.Get(e.ctx)
	if third.Value == second.Value || e.sim.TokenRequests() != 4 {
		t.Errorf("after revocation: new token %v, token requests %d (want 4)", third.Value != second.Value, e.sim.TokenRequests())
	}
}

func TestBadCredentials(t *testing.T) {
	e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) { c.ClientSecret = "wrong" })
	_, err := e.conn.Get(e.ctx, "1001")
	var ce *connector.Error
	if !errors.As(err, &ce) || !ce.Retryable || ce.RetryAfter != time.Minute {
		t.Fatalf("err = %#v, want Retryable with a 1 minute hold", err)
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), clientID) {
		t.Errorf("error leaks a credential: %v", err)
	}
	// Other workers fail fast instead of hammering the token endpoint.
	if _, err := e.conn.Get(e.ctx, "1001"); !connector.IsRetryable(err) {
		t.Errorf("second call: %v", err)
	}
	if n := e.sim.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

func TestRateLimits(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter bool
		window     time.Duration
		want       time.Duration
	}{
		{"Retry-After", true, time.Hour, time.Hour},
		{"X-RateLimit-Reset only", false, 30 * time.Minute, 30 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *oneloginsim.Options, _ *onelogin.Config) { o.RetryAfter = tc.retryAfter })
			id := fmt.Sprint(e.sim.SeedUser(oneloginsim.User{Username: "jo@example.com", Email: "jo@example.com"}))
			e.sim.SetRateLimit(2, tc.window)
			for i := range 2 {
				if _, err := e.conn.Get(e.ctx, id); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			// The second call spent the budget: everyone pauses until reset.
			if p := e.lim.Pauses(); len(p) != 1 || p[0] != tc.want {
				t.Errorf("pauses after the budget ran out = %v, want [%v]", p, tc.want)
			}
			_, err := e.conn.Get(e.ctx, id)
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusTooManyRequests || !ce.Retryable || ce.RetryAfter != tc.want {
				t.Fatalf("err = %#v, want a retryable 429 with RetryAfter %v", err, tc.want)
			}
			if p := e.lim.Pauses(); len(p) != 2 || p[1] != tc.want {
				t.Errorf("pauses = %v", p)
			}
			// A new window admits calls again.
			e.clock.Advance(tc.window)
			if _, err := e.conn.Get(e.ctx, id); err != nil {
				t.Errorf("after reset: %v", err)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	// One try per call: this is about how an answer is reported
	// (TestRetries covers retrying).
	e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) { c.Retry.Attempts = 1 })
	taken := learner(3)
	if _, err := e.conn.Create(e.ctx, taken); err != nil {
		t.Fatal(err)
	}
	undefined := learner(4)
	undefined.Fields["custom_attributes.no_such_field"] = "x"
	noEmail := learner(5)
	noEmail.Email = ""
	badEmail := learner(6)
	badEmail.Email = "not-an-email"

	tests := []struct {
		name                          string
		run                           func() error
		retryable, conflict, notFound bool
		status                        int
		after                         time.Duration
	}{
		{name: "duplicate username is a conflict", run: func() error { _, err := e.conn.Create(e.ctx, taken); return err }, conflict: true, status: 422},
		{name: "undefined custom attribute is permanent", run: func() error { _, err := e.conn.Create(e.ctx, undefined); return err }, status: 422},
		{name: "invalid email is permanent", run: func() error { _, err := e.conn.Create(e.ctx, badEmail); return err }, status: 422},
		{name: "missing email is refused locally", run: func() error { _, err := e.conn.Create(e.ctx, noEmail); return err }},
		{name: "unknown id is not found", run: func() error { _, err := e.conn.Get(e.ctx, "999999"); return err }, notFound: true, status: 404},
		{name: "non-numeric id is not found", run: func() error { _, err := e.conn.Get(e.ctx, "abc"); return err }, notFound: true},
		{name: "403 is permanent", run: func() error {
			e.sim.FailNext(http.StatusForbidden, nil, `{"statusCode":403,"name":"ForbiddenError","message":"Forbidden"}`)
			_, err := e.conn.Get(e.ctx, "1001")
			return err
		}, status: 403},
		{name: "500 is retryable", run: func() error {
			e.sim.FailNext(http.StatusInternalServerError, nil, `{"statusCode":500,"name":"InternalServerError","message":"boom"}`)
			_, err := e.conn.Get(e.ctx, "1001")
			return err
		}, retryable: true, status: 500},
		{name: "503 is retryable with its hint", run: func() error {
			e.sim.FailNext(http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}}, ``)
			_, err := e.conn.Get(e.ctx, "1001")
			return err
		}, retryable: true, status: 503, after: 7 * time.Second},
		{name: "unsupported key kind", run: func() error {
			_, err := e.conn.Find(e.ctx, connector.Key{Kind: "phone", Value: "1"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var ce *connector.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *connector.Error", err)
			}
			if ce.Retryable != tc.retryable || ce.Conflict != tc.conflict || ce.NotFound != tc.notFound || ce.Status != tc.status || ce.RetryAfter != tc.after {
				t.Errorf("err = %+v (%v), want retryable=%v conflict=%v notFound=%v status=%d retryAfter=%v",
					*ce, err, tc.retryable, tc.conflict, tc.notFound, tc.status, tc.after)
			}
			if strings.Contains(err.Error(), "@example.com") || strings.Contains(err.Error(), "not-an-email") {
				t.Errorf("error text leaks learner data: %v", err)
			}
		})
	}
}

// TestBidirectionalRoundSettles walks OneLogin → Okta → learnerlink →
// OneLogin: an admin edits a user in OneLogin, Okta imports the change
// and pushes it back through learnerlink, whose Update finds nothing to
// write; learnerlink's own writes are recognised as echoes.
func TestBidirectionalRoundSettles(t *testing.T) {
	e := newEnv(t)
	l := learner(7)
	l.Fields["department"] = "Ops"
	id, err := e.conn.Create(onelogin.WithOrigin(e.ctx, "ident-7", 1), l)
	if err != nil {
		t.Fatal(err)
	}
	l.ID = id
	n := 0
	if _, err := fmt.Sscan(id, &n); err != nil {
		t.Fatal(err)
	}

	// 1. The admin changes the department in OneLogin.
	if err := e.sim.EditUser(adminClient, n, func(u *oneloginsim.User) { u.Department = "Sales" }); err != nil {
		t.Fatal(err)
	}
	// 2. Okta imports it and pushes SCIM; learnerlink's identity is now at
	// version 2 and the desired learner carries the new department.
	l.Fields["department"] = "Sales"
	before := len(e.sim.Events())
	e.sim.ResetRequests()
	if err := e.conn.Update(onelogin.WithOrigin(e.ctx, "ident-7", 2), l); err != nil {
		t.Fatal(err)
	}
	// 3. OneLogin already has it: no write, no event, nothing to echo.
	if w := e.writes(); len(w) != 0 {
		t.Errorf("the round wrote %+v", w)
	}
	if after := len(e.sim.Events()); after != before {
		t.Errorf("the round produced %d events", after-before)
	}
	cur, err := e.conn.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !onelogin.Same(l, *cur) {
		t.Errorf("Differences = %v", onelogin.Differences(l, *cur))
	}
	// The marker still names the version learnerlink last wrote.
	if ident, v, ok := onelogin.OriginOf(*cur); !ok || ident != "ident-7" || v != 1 {
		t.Errorf("OriginOf = %q %d %v, want ident-7 1", ident, v, ok)
	}

	// An inbound poller sees the admin's change as foreign and
	// learnerlink's create as an echo.
	var events []onelogin.Event
	cursor := ""
	for {
		page, next, err := e.conn.Events(e.ctx, time.Time{}, cursor)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(events) != 2 {
		t.Fatalf("events = %+v, want create and admin edit", events)
	}
	if !e.conn.IsEcho(events[0]) || events[0].EventTypeID != oneloginsim.EventUserCreated || events[0].UserID != int64(n) {
		t.Errorf("create event %+v is not recognised as ours", events[0])
	}
	if e.conn.IsEcho(events[1]) || events[1].ClientID != adminClient {
		t.Errorf("admin event %+v taken for an echo", events[1])
	}
}

func TestEventsPaging(t *testing.T) {
	e := newEnv(t)
	for i := range 60 {
		if _, err := e.conn.Create(e.ctx, learner(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	cursor := ""
	for {
		page, next, err := e.conn.Events(e.ctx, e.clock.Now().Add(-time.Minute), cursor)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page))
		for _, ev := range page {
			if !e.conn.IsEcho(ev) {
				t.Errorf("event %d not ours", ev.ID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(sizes) != "[50 10]" {
		t.Errorf("pages %v, want [50 10]", sizes)
	}
}

func TestNewValidates(t *testing.T) {
	ok := onelogin.Config{BaseURL: "https://acme.onelogin.com", ClientID: "id", ClientSecret: "s", Limiter: &limiter{}}
	tests := []struct {
		name   string
		change func(c *onelogin.Config)
		ok     bool
	}{
		{"valid", func(*onelogin.Config) {}, true},
		{"regional host", func(c *onelogin.Config) { c.BaseURL = "https://api.eu.onelogin.com/" }, true},
		{"plain http", func(c *onelogin.Config) { c.BaseURL = "http://acme.onelogin.com" }, false},
		{"a path", func(c *onelogin.Config) { c.BaseURL = "https://acme.onelogin.com/api/2" }, false},
		{"no secret", func(c *onelogin.Config) { c.ClientSecret = "" }, false},
		{"no limiter", func(c *onelogin.Config) { c.Limiter = nil }, false},
		{"bad mappings", func(c *onelogin.Config) { c.Mappings = "off" }, false},
		{"bad marker field", func(c *onelogin.Config) { c.OriginMarkerField = "learnerlink origin" }, false},
		{"bad role id", func(c *onelogin.Config) { c.RoleMap = map[string]int{"Sales": 0} }, false},
		{"role names clash", func(c *onelogin.Config) { c.RoleMap = map[string]int{"Sales": 1, "SALES": 2} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			_, err := onelogin.New(c)
			if (err == nil) != tc.ok {
				t.Errorf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestMappingsQuery(t *testing.T) {
	e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) { c.Mappings = "disabled" })
	if _, err := e.conn.Create(e.ctx, learner(8)); err != nil {
		t.Fatal(err)
	}
	w := e.writes()
	if len(w) != 1 || w[0].Query != "mappings=disabled" {
		t.Errorf("create request %+v, want ?mappings=disabled", w)
	}
}

// TestLogsCarryNoSecretsOrPersonalData runs every operation with a debug
// logger and checks the output for credentials, tokens and learner values.
func TestLogsCarryNoSecretsOrPersonalData(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(_ *oneloginsim.Options, c *onelogin.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	l := learner(9)
	l.Fields["custom_attributes.cost_center"] = "CC-SECRET-9"
	l.Fields["location"] = "Atlantis"
	id, err := e.conn.Create(e.ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	l.ID, l.LastName = id, "Byron"
	if err := e.conn.Update(e.ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.Find(e.ctx, connector.Key{Kind: connector.KeyEmail, Value: l.Email}); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.SetGroups(e.ctx, id, []string{"Sales"}); err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeAll()
	if _, err := e.conn.Get(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	tok, _ := e.cache.Get(e.ctx)
	out := buf.String()
	if !strings.Contains(out, "onelogin: request") {
		t.Fatalf("no debug logs captured: %s", out)
	}
	for _, secret := range []string{clientSecret, tok.Value, l.Email, "Byron", "Lovelace", "CC-SECRET-9", "Atlantis", l.ExternalID} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instant is a retry sleep that does not wait.
func instant(ctx context.Context, _ time.Duration) error { return ctx.Err() }
