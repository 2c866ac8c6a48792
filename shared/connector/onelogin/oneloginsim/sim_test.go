package oneloginsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector/onelogin/oneloginsim"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	t     *testing.T
	sim   *oneloginsim.Sim
	clock *clock
}

func newHarness(t *testing.T, opts oneloginsim.Options) *harness {
	c := &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	opts.Now = c.Now
	s := oneloginsim.New(opts)
	t.Cleanup(s.Close)
	s.AddClient("cid", "secret")
	s.AddClient("other", "secret2")
	return &harness{t: t, sim: s, clock: c}
}

// do sends a request and returns status, headers and body.
func (h *harness) do(method, path, auth, contentType, body string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.sim.URL()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func (h *harness) token(id, secret string) string {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.sim.URL()+"/auth/oauth2/v2/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 || tok.TokenType != "bearer" {
		h.t.Fatalf("token: %d %v %+v", res.StatusCode, err, tok)
	}
	return tok.AccessToken
}

func TestTokens(t *testing.T) {
	h := newHarness(t, oneloginsim.Options{TokenTTL: time.Hour})
	first := h.token("cid", "secret")
	if again := h.token("cid", "secret"); again != first {
		t.Error("the same pair got a different token before expiry")
	}
	if other := h.token("other", "secret2"); other == first {
		t.Error("two clients share a token")
	}
	tests := []struct {
		name, ctype, auth, body string
		want                    int
	}{
		{"client_id header form", "application/json", "client_id:cid, client_secret:secret", `{"grant_type":"client_credentials"}`, 200},
		{"form body", "application/x-www-form-urlencoded", "", "grant_type=client_credentials&client_id=cid&client_secret=secret", 200},
		{"wrong secret", "application/json", "client_id:cid, client_secret:nope", `{"grant_type":"client_credentials"}`, 401},
		{"wrong grant", "application/json", "client_id:cid, client_secret:secret", `{"grant_type":"password"}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if st, _, body := h.do(http.MethodPost, "/auth/oauth2/v2/token", tc.auth, tc.ctype, tc.body); st != tc.want {
				t.Errorf("status %d (%s), want %d", st, body, tc.want)
			}
		})
	}
	for _, auth := range []string{"Bearer " + first, "bearer:" + first} {
		if st, _, _ := h.do(http.MethodGet, "/api/2/users", auth, "", ""); st != 200 {
			t.Errorf("%q: status %d", auth[:7], st)
		}
	}
	h.clock.Advance(time.Hour)
	if st, _, _ := h.do(http.MethodGet, "/api/2/users", "Bearer "+first, "", ""); st != 401 {
		t.Errorf("expired token: status %d, want 401", st)
	}
	if h.token("cid", "secret") == first {
		t.Error("an expired token was handed out again")
	}
}

func TestRateLimitHeaders(t *testing.T) {
	h := newHarness(t, oneloginsim.Options{RateLimit: 2, RateWindow: time.Minute, RetryAfter: true})
	auth := "Bearer " + h.token("cid", "secret")
	for i, want := range []string{"1", "0"} {
		st, hd, _ := h.do(http.MethodGet, "/api/2/users", auth, "", "")
		if st != 200 || hd.Get("X-RateLimit-Remaining") != want || hd.Get("X-RateLimit-Limit") != "2" || hd.Get("X-RateLimit-Reset") != "60" {
			t.Errorf("call %d: %d %v", i, st, hd)
		}
	}
	st, hd, body := h.do(http.MethodGet, "/api/2/users", auth, "", "")
	if st != 429 || hd.Get("Retry-After") != "60" || !strings.Contains(body, "TooManyRequestsError") {
		t.Errorf("over budget: %d %v %s", st, hd, body)
	}
	if _, _, body := h.do(http.MethodGet, "/auth/rate_limit", auth, "", ""); !strings.Contains(body, `"X-RateLimit-Remaining":0`) {
		t.Errorf("rate_limit = %s", body)
	}
	h.clock.Advance(time.Minute)
	if st, _, _ := h.do(http.MethodGet, "/api/2/users", auth, "", ""); st != 200 {
		t.Errorf("after the window: %d", st)
	}
}

func TestUsers(t *testing.T) {
	h := newHarness(t, oneloginsim.Options{CustomAttributes: []string{"cc"}})
	auth := "Bearer " + h.token("cid", "secret")
	locked := h.sim.SeedUser(oneloginsim.User{Username: "unl", Email: "unl@x.io", State: 3})
	tests := []struct {
		name, method, path, body string
		want                     int
		contains                 string
	}{
		{"create without password is pending", "POST", "/api/2/users", `{"username":"a","email":"a@x.io","custom_attributes":{"cc":"1"}}`, 201, `"status":7`},
		{"duplicate username", "POST", "/api/2/users", `{"username":"A","email":"b@x.io"}`, 422, "Username has already been taken"},
		{"duplicate email", "POST", "/api/2/users", `{"username":"b","email":"A@x.io"}`, 422, "Email has already been taken"},
		{"unknown custom attribute", "POST", "/api/2/users", `{"username":"c","email":"c@x.io","custom_attributes":{"nope":"1"}}`, 422, "custom attribute"},
		{"bad json", "POST", "/api/2/users", `{`, 400, "Input JSON is not valid"},
		{"find by username, wildcard", "GET", "/api/2/users?username=" + url.QueryEscape("*"), "", 200, `"username":"a"`},
		{"status 6 does not exist", "PUT", "/api/2/users/1001", `{"status":6}`, 422, "status"},
		{"unlicensed needs set_state", "PUT", "/api/2/users/" + itoa(locked), `{"state":1}`, 422, "set_state"},
		{"unknown user", "GET", "/api/2/users/42", "", 404, "NotFoundError"},
		{"role add needs an array", "POST", "/api/2/roles/501/users", `{"id":1}`, 400, "array"},
	}
	h.sim.AddRole("r1") // id 501
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _, body := h.do(tc.method, tc.path, auth, "application/json", tc.body)
			if st != tc.want || !strings.Contains(body, tc.contains) {
				t.Errorf("%d %s, want %d containing %q", st, body, tc.want, tc.contains)
			}
		})
	}
	// PUT changes only what it is sent; custom attributes merge.
	id := itoa(h.sim.Users()[1].ID)
	if st, _, body := h.do("PUT", "/api/2/users/"+id, auth, "application/json", `{"title":"T"}`); st != 200 || !strings.Contains(body, `"cc":"1"`) || !strings.Contains(body, `"email":"a@x.io"`) {
		t.Errorf("partial PUT: %d %s", st, body)
	}
	// Writes are recorded with the writer's client id; EditUser with another.
	if err := h.sim.EditUser("admin", h.sim.Users()[1].ID, func(u *oneloginsim.User) { u.Title = "X" }); err != nil {
		t.Fatal(err)
	}
	ev := h.sim.Events()
	if len(ev) != 3 || ev[0].ClientID != "cid" || ev[0].EventTypeID != oneloginsim.EventUserCreated || ev[2].ClientID != "admin" {
		t.Errorf("events = %+v", ev)
	}
	if st, _, body := h.do("GET", "/api/1/events?client_id=admin", auth, "", ""); st != 200 || !strings.Contains(body, `"client_id":"admin"`) || strings.Contains(body, `"client_id":"cid"`) {
		t.Errorf("events filter: %d %s", st, body)
	}
	for _, r := range h.sim.Requests() {
		if strings.Contains(r.Body, "secret") {
			t.Errorf("request log kept a secret: %+v", r)
		}
	}
}

func TestPaging(t *testing.T) {
	h := newHarness(t, oneloginsim.Options{})
	auth := "Bearer " + h.token("cid", "secret")
	for i := range 120 {
		h.sim.SeedUser(oneloginsim.User{Username: "u" + itoa(i), Email: "u" + itoa(i) + "@x.io"})
	}
	st, hd, _ := h.do("GET", "/api/2/users?limit=500", auth, "", "")
	if st != 200 || hd.Get("Page-Items") != "100" || hd.Get("Total-Count") != "120" || hd.Get("Total-Pages") != "2" || hd.Get("After-Cursor") == "" || !strings.Contains(hd.Get("Link"), `rel="next"`) {
		t.Fatalf("first page: %d %v", st, hd)
	}
	st, hd, _ = h.do("GET", "/api/2/users?limit=100&cursor="+url.QueryEscape(hd.Get("After-Cursor")), auth, "", "")
	if st != 200 || hd.Get("Page-Items") != "20" || hd.Get("After-Cursor") != "" || hd.Get("Before-Cursor") == "" || hd.Get("Current-Page") != "2" {
		t.Errorf("second page: %d %v", st, hd)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
