package absorbsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	admin = "api-admin"
	pass  = "S3cret!pass"
	key   = "0d3c6d5e-8f6b-4b8a-9a57-2a1f0e3c4b5d"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

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

func newSim(t *testing.T, opts Options) (*Sim, *fakeClock) {
	t.Helper()
	clk := newClock()
	opts.Username, opts.Password, opts.PrivateKey = admin, pass, key
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	s := New(opts)
	t.Cleanup(s.Close)
	return s, clk
}

// client sends requests with the right key and version unless told
// otherwise.
type client struct {
	t     *testing.T
	s     *Sim
	token string
	hdr   map[string]string // overrides; "" deletes
}

func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.s.URL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("x-api-key", key)
	req.Header.Set("x-api-version", "2")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.StatusCode, data
}

func (c *client) login() string {
	c.t.Helper()
	st, body := c.do("POST", "/authenticate", map[string]string{"username": admin, "password": pass, "privateKey": key})
	if st != http.StatusOK {
		c.t.Fatalf("authenticate: %d %s", st, body)
	}
	var tok string
	if err := json.Unmarshal(body, &tok); err != nil {
		c.t.Fatalf("token is not a JSON string: %s", body)
	}
	c.token = tok
	return tok
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestAuth(t *testing.T) {
	s, clk := newSim(t, Options{})
	tests := []struct {
		name string
		hdr  map[string]string
		body any
		want int
	}{
		{"no key", map[string]string{"x-api-key": ""}, map[string]string{"username": admin, "password": pass, "privateKey": key}, 401},
		{"wrong key", map[string]string{"x-api-key": "nope"}, map[string]string{"username": admin, "password": pass, "privateKey": key}, 401},
		{"no version", map[string]string{"x-api-version": ""}, map[string]string{"username": admin, "password": pass, "privateKey": key}, 401},
		{"version 1", map[string]string{"x-api-version": "1"}, map[string]string{"username": admin, "password": pass, "privateKey": key}, 401},
		{"missing privateKey", nil, map[string]string{"username": admin, "password": pass}, 400},
		{"bad password", nil, map[string]string{"username": admin, "password": "x", "privateKey": key}, 401},
		{"ok", nil, map[string]string{"username": admin, "password": pass, "privateKey": key}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, s: s, hdr: tt.hdr}
			if st, body := c.do("POST", "/authenticate", tt.body); st != tt.want {
				t.Fatalf("status %d, want %d: %s", st, tt.want, body)
			}
		})
	}

	t.Run("one live token per admin", func(t *testing.T) {
		a := &client{t: t, s: s}
		b := &client{t: t, s: s}
		a.login()
		if st, _ := a.do("GET", "/users", nil); st != 200 {
			t.Fatalf("first token: %d", st)
		}
		b.login()
		if st, _ := a.do("GET", "/users", nil); st != 401 {
			t.Fatalf("old token after a new login: %d, want 401", st)
		}
		if st, _ := b.do("GET", "/users", nil); st != 200 {
			t.Fatalf("new token: %d", st)
		}
		bare := &client{t: t, s: s, hdr: map[string]string{"Authorization": b.token}}
		if st, _ := bare.do("GET", "/users", nil); st != 200 {
			t.Fatalf("bare token: %d", st)
		}
	})

	t.Run("4 hour expiry", func(t *testing.T) {
		c := &client{t: t, s: s}
		c.login()
		clk.Advance(TokenLifetime - time.Second)
		if st, _ := c.do("GET", "/users", nil); st != 200 {
			t.Fatalf("just before expiry: %d", st)
		}
		clk.Advance(time.Second)
		if st, _ := c.do("GET", "/users", nil); st != 401 {
			t.Fatalf("at expiry: %d, want 401", st)
		}
	})

	t.Run("no token", func(t *testing.T) {
		c := &client{t: t, s: s}
		if st, body := c.do("GET", "/users", nil); st != 401 {
			t.Fatalf("%d %s", st, body)
		}
	})
}

func TestUsersCRUD(t *testing.T) {
	s, _ := newSim(t, Options{})
	c := &client{t: t, s: s}
	c.login()
	dept := s.DefaultDepartmentID()

	st, body := c.do("POST", "/users", map[string]any{"username": "jdoe", "firstName": "J"})
	if st != 422 {
		t.Fatalf("create without required fields: %d", st)
	}
	e := decode[apiError](t, body)
	if e.Code != 422 || len(e.Validations) != 2 || e.Message == "" {
		t.Fatalf("error body %+v", e)
	}

	st, body = c.do("POST", "/users", map[string]any{
		"username": "jdoe", "firstName": "Jane", "lastName": "Doe", "departmentId": dept,
		"password": "Weak", "emailAddress": "jane@example.com",
	})
	if st != 422 || !strings.Contains(string(body), "complexity") {
		t.Fatalf("weak password: %d %s", st, body)
	}

	st, body = c.do("POST", "/users", map[string]any{
		"username": "jdoe", "firstName": "Jane", "lastName": "Doe", "departmentId": dept,
		"password": "Str0ngPassw0rd", "emailAddress": "jane@example.com", "jobTitle": "Engineer",
		"customFields": map[string]any{"string5": "keep", "decimal1": 4.5}, "roleIds": []string{"r1"},
	})
	if st != 201 {
		t.Fatalf("create: %d %s", st, body)
	}
	created := decode[map[string]any](t, body)
	id, _ := created["id"].(string)
	if id == "" || created["password"] != nil || created["middleName"] != nil {
		t.Fatalf("created resource %v", created)
	}

	st, body = c.do("POST", "/users", map[string]any{"username": "JDOE", "firstName": "X", "lastName": "Y", "departmentId": dept})
	if st != 422 || !strings.Contains(string(body), "Username is already in use") {
		t.Fatalf("duplicate username (case-insensitive): %d %s", st, body)
	}

	// PUT replaces the whole record: omitted fields are cleared, the
	// password is kept.
	st, body = c.do("PUT", "/users/"+id, map[string]any{"username": "jdoe", "firstName": "Janet", "lastName": "Doe", "departmentId": dept})
	if st != 200 {
		t.Fatalf("put: %d %s", st, body)
	}
	u, _ := s.User(id)
	if u.FirstName != "Janet" || u.JobTitle != "" || u.EmailAddress != "" || len(u.CustomFields) != 0 || len(u.RoleIDs) != 0 {
		t.Fatalf("after PUT: %+v", u)
	}
	if u.Password != "Str0ngPassw0rd" {
		t.Fatal("PUT without a password changed it")
	}
	if st, _ := c.do("PUT", "/users/"+id, map[string]any{"firstName": "Janet"}); st != 422 {
		t.Fatalf("PUT without required fields: %d", st)
	}
	if st, _ := c.do("GET", "/users/00000000-0000-4000-8000-00000000ffff", nil); st != 404 {
		t.Fatalf("get unknown: %d", st)
	}
	if st, _ := c.do("DELETE", "/users/"+id, nil); st != 404 && st != 405 {
		t.Fatalf("delete: %d", st)
	}
	if _, ok := s.User(id); !ok {
		t.Fatal("user deleted")
	}
}

func TestUsersListPagingAndFilter(t *testing.T) {
	s, _ := newSim(t, Options{})
	for i := range 45 {
		s.SeedUser(User{Username: fmt.Sprintf("user%02d", i), FirstName: "F", LastName: "L", ExternalID: fmt.Sprintf("ext%02d", i), ActiveStatus: i % 2})
	}
	c := &client{t: t, s: s}
	c.login()
	type page struct {
		TotalItems, ReturnedItems, Limit, Offset int
		Users                                    []map[string]any
	}
	tests := []struct {
		query                 string
		status, total, n, off int
	}{
		{query: "", status: 200, total: 45, n: 20},
		{query: "?_limit=20&_offset=2", status: 200, total: 45, n: 5, off: 2},
		{query: "?_limit=20&_offset=3", status: 200, total: 45, n: 0, off: 3},
		{query: "?limit=10&offset=4", status: 200, total: 45, n: 5, off: 4},
		{query: "?_limit=1000", status: 200, total: 45, n: 45},
		{query: "?_limit=1001", status: 422},
		{query: "?_offset=65536", status: 422},
		{query: "?_filter=activeStatus%20eq%201&_limit=100", status: 200, total: 22, n: 22},
		{query: "?_filter=externalId%20eq%20%27ext07%27", status: 200, total: 1, n: 1},
		{query: "?_filter=bogus%20eq%201", status: 422},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			st, body := c.do("GET", "/users"+tt.query, nil)
			if st != tt.status {
				t.Fatalf("status %d, want %d: %s", st, tt.status, body)
			}
			if st != 200 {
				return
			}
			p := decode[page](t, body)
			if p.TotalItems != tt.total || p.ReturnedItems != tt.n || len(p.Users) != tt.n || p.Offset != tt.off {
				t.Fatalf("page %+v (users %d)", p, len(p.Users))
			}
		})
	}
}

func TestUpload(t *testing.T) {
	s, _ := newSim(t, Options{})
	dept := s.DefaultDepartmentID()
	old := s.SeedUser(User{Username: "old", FirstName: "O", LastName: "L", JobTitle: "was"})
	c := &client{t: t, s: s}
	c.login()
	rows := []map[string]any{
		{"username": "new1", "firstName": "N", "lastName": "One", "departmentId": dept},
		{"username": "old", "firstName": "O", "lastName": "L", "departmentId": dept, "jobTitle": "now"}, // by username
		{"id": old, "username": "old", "firstName": "Olga", "lastName": "L", "departmentId": dept},
		{"username": "bad", "firstName": "No last name", "departmentId": dept},
	}
	st, body := c.do("POST", "/users/upload", rows)
	if st != 200 {
		t.Fatalf("upload: %d %s", st, body)
	}
	got := decode[[]struct{ Key, Value string }](t, body)
	if len(got) != 3 || got[0].Value != "new1" || got[1].Key != old || got[2].Key != old {
		t.Fatalf("answer %+v", got)
	}
	if u, _ := s.User(old); u.FirstName != "Olga" || u.JobTitle != "" {
		t.Fatalf("old after upload %+v", u)
	}
	many := make([]map[string]any, 201)
	if st, _ := c.do("POST", "/users/upload", many); st != 422 {
		t.Fatalf("201 rows: %d", st)
	}
}

func TestRateLimit(t *testing.T) {
	s, clk := newSim(t, Options{RateLimit: 3})
	c := &client{t: t, s: s}
	c.login() // 1
	for i := range 2 {
		if st, _ := c.do("GET", "/users", nil); st != 200 {
			t.Fatalf("request %d: %d", i+2, st)
		}
	}
	req, _ := http.NewRequest("GET", s.URL()+"/users", nil)
	req.Header.Set("x-api-key", key)
	req.Header.Set("x-api-version", "2")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("4th request in the window: %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	clk.Advance(time.Second)
	if st, _ := c.do("GET", "/users", nil); st != 200 {
		t.Fatalf("after the window slid: %d", st)
	}
	reqs := s.Requests()
	if len(reqs) != 5 || reqs[3].Status != 429 || reqs[4].Status != 200 {
		t.Fatalf("requests %+v", reqs)
	}
	s.ResetCounters()
	if len(s.Requests()) != 0 || s.Authentications() != 0 {
		t.Fatal("ResetCounters kept something")
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		want   int
	}{
		{"429", Faults{P429: 1}, 429},
		{"5xx", Faults{P5xx: 1}, 500},
		{"none", Faults{Seed: 7}, 401}, // reaches auth
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newSim(t, Options{Faults: tt.faults})
			c := &client{t: t, s: s}
			if st, _ := c.do("GET", "/users", nil); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		s, _ := newSim(t, Options{Faults: Faults{PTimeout: 1}})
		hc := &http.Client{Timeout: 50 * time.Millisecond}
		req, _ := http.NewRequest("GET", s.URL()+"/users", nil)
		res, err := hc.Do(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("answered %d, want a client timeout", res.StatusCode)
		}
	})
}

func TestGroupsAndEnrollments(t *testing.T) {
	s, _ := newSim(t, Options{})
	a := s.SeedUser(User{Username: "a", FirstName: "A", LastName: "A", CustomFields: map[string]any{"string30": "|Eng|Sales|"}})
	b := s.SeedUser(User{Username: "b", FirstName: "B", LastName: "B", CustomFields: map[string]any{"string30": "|Sales Ops|"}})
	sales := s.SeedGroup(Group{Name: "Sales", IsAutomatic: true, RuleField: "customFields/string30", RuleContains: "|Sales|"})
	manual := s.SeedGroup(Group{Name: "Manual", UserIDs: []string{b}})
	course := s.SeedCourse(Course{Name: "Safety"})
	c := &client{t: t, s: s}
	c.login()

	st, body := c.do("GET", "/groups/"+sales, nil)
	if st != 200 {
		t.Fatalf("group: %d", st)
	}
	if g := decode[struct{ UserIDs []string }](t, body); len(g.UserIDs) != 1 || g.UserIDs[0] != a {
		t.Fatalf("automatic members %v, want [%s]", g.UserIDs, a)
	}
	st, body = c.do("GET", "/groups?_filter=name%20eq%20%27Manual%27", nil)
	if g := decode[struct{ Groups []struct{ ID string } }](t, body); st != 200 || len(g.Groups) != 1 || g.Groups[0].ID != manual {
		t.Fatalf("groups by name: %d %s", st, body)
	}

	tests := []struct {
		name, method, path string
		want               int
	}{
		{"not enrolled yet", "GET", "/users/" + a + "/enrollments/" + course, 404},
		{"enroll", "POST", "/users/" + a + "/enrollments/" + course, 201},
		{"enrolled", "GET", "/users/" + a + "/enrollments/" + course, 200},
		{"enroll again", "POST", "/users/" + a + "/enrollments/" + course, 409},
		{"unknown course", "POST", "/users/" + a + "/enrollments/00000000-0000-4000-8000-00000000ffff", 404},
		{"unknown user", "POST", "/users/00000000-0000-4000-8000-00000000ffff/enrollments/" + course, 404},
		{"list", "GET", "/users/" + a + "/enrollments", 200},
	}
	for _, tt := range tests {
		if st, body := c.do(tt.method, tt.path, map[string]any{}); st != tt.want {
			t.Fatalf("%s: %d, want %d: %s", tt.name, st, tt.want, body)
		}
	}
	if e := s.Enrollments(a); len(e) != 1 || e[0].CourseID != course || !e[0].IsActive {
		t.Fatalf("enrollments %+v", e)
	}
}

func TestDepartments(t *testing.T) {
	for _, noWrites := range []bool{false, true} {
		t.Run(fmt.Sprint("noWrites=", noWrites), func(t *testing.T) {
			s, _ := newSim(t, Options{NoDepartmentWrites: noWrites})
			s.SeedDepartment(Department{Name: "Sales", ExternalID: "D1"})
			c := &client{t: t, s: s}
			c.login()
			st, body := c.do("GET", "/departments?departmentName=sales", nil)
			if d := decode[struct{ Departments []Department }](t, body); st != 200 || len(d.Departments) != 1 || d.Departments[0].ExternalID != "D1" {
				t.Fatalf("by name: %d %s", st, body)
			}
			want := 201
			if noWrites {
				want = 404
			}
			if st, body := c.do("POST", "/departments", map[string]any{"name": "Support"}); st != want {
				t.Fatalf("create: %d, want %d: %s", st, want, body)
			}
		})
	}
}
