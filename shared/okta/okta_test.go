package okta_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
)

// fakeClock is shared by the sim and the client: Sleep advances it, so
// rate-limit waits cost no real time and are exactly observable.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	slept   []time.Duration
	noAdvan bool // Sleep records but does not move time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	if !c.noAdvan {
		c.t = c.t.Add(d)
	}
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

const token = "00sim-api-token"

func newSim(t *testing.T, clk *fakeClock, opts oktasim.Options) *oktasim.Sim {
	t.Helper()
	if opts.APIToken == "" && opts.ClientID == "" {
		opts.APIToken = token
	}
	opts.Now = clk.Now
	sim := oktasim.New(opts)
	t.Cleanup(sim.Close)
	return sim
}

func newClient(t *testing.T, sim *oktasim.Sim, clk *fakeClock, mod func(*okta.Config)) *okta.Client {
	t.Helper()
	cfg := okta.Config{OrgURL: sim.URL(), APIToken: token, Now: clk.Now, Sleep: clk.Sleep}
	if mod != nil {
		mod(&cfg)
	}
	c, err := okta.New(cfg)
	if err != nil {
		t.Fatalf("okta.New: %v", err)
	}
	return c
}

func jane() okta.User {
	return okta.User{ID: "00u1jane0000000000a1", Status: "ACTIVE", Profile: okta.Profile{
		Login: "jane.doe@atko.example", Email: "jane.doe@atko.example", FirstName: "Jane", LastName: "Doe",
		Title: "Engineer", Department: "R&D", EmployeeNumber: "1001", CostCenter: "Berlin", Division: "EMEA",
		Organization: "Atko", ManagerID: "00u1boss000000000000", Manager: "Bo Ss", Locale: "en_US", Timezone: "Europe/Berlin",
		Extra: map[string]any{"lmsRole": "learner", "seniority": 3.0},
	}}
}

func TestGetUser(t *testing.T) {
	t.Parallel()
	clk := newClock()
	sim := newSim(t, clk, oktasim.Options{})
	sim.PutUser(jane())
	c := newClient(t, sim, clk, nil)
	ctx := t.Context()

	tests := []struct {
		name    string
		id      string
		client  *okta.Client
		want    *okta.User
		wantErr error
		status  int
	}{
		{name: "by id", id: jane().ID, client: c, want: ptr(jane())},
		{name: "by login", id: "Jane.Doe@atko.example", client: c, want: ptr(jane())},
		{name: "unknown", id: "00unknown", client: c, wantErr: okta.ErrNotFound, status: 404},
		{name: "bad token", id: jane().ID, client: newClient(t, sim, clk, func(c *okta.Config) { c.APIToken = "wrong" }), status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.client.GetUser(ctx, tt.id)
			if tt.status != 0 {
				var ae *okta.APIError
				if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code == "" {
					t.Fatalf("err = %v, want an APIError %d with a code", err, tt.status)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), token) {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			if !equalUser(*got, *tt.want) {
				t.Fatalf("GetUser = %+v, want %+v", *got, *tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func equalUser(a, b okta.User) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && (a.App == nil) == (b.App == nil) && (a.App == nil || *a.App == *b.App)
}

func TestProfileJSON(t *testing.T) {
	t.Parallel()
	var p okta.Profile
	in := `{"login":"a@b.example","firstName":null,"title":7,"costCenter":"X","nickName":"Al","custom":[1,2],"gone":null}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.Login != "a@b.example" || p.FirstName != "" || p.Title != "" || p.CostCenter != "X" {
		t.Fatalf("standard fields = %+v", p)
	}
	if p.Extra["nickName"] != "Al" || len(p.Extra) != 2 {
		t.Fatalf("Extra = %v, want nickName and custom only", p.Extra)
	}
	out, _ := json.Marshal(p)
	var back okta.Profile
	if err := json.Unmarshal(out, &back); err != nil || back.Login != p.Login || back.Extra["nickName"] != "Al" {
		t.Fatalf("round trip %s → %+v (%v)", out, back, err)
	}
}

// collect pages through a listing and returns the ids and the page count.
func collect(t *testing.T, list func(after string) (okta.Page, error)) ([]okta.User, int) {
	t.Helper()
	var all []okta.User
	after, pages := "", 0
	for {
		p, err := list(after)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		all = append(all, p.Users...)
		if p.Next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		after = p.Next
	}
}

func ids(us []okta.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func TestPaging(t *testing.T) {
	t.Parallel()
	clk := newClock()
	sim := newSim(t, clk, oktasim.Options{PageSize: 7})
	// 40 generated users, all assigned to the app and in the group, plus
	// stored ones that sort before, between and after them.
	sim.Populate(40, func(i int) okta.User {
		return okta.User{Profile: okta.Profile{Login: fmt.Sprintf("gen%d@atko.example", i), FirstName: "Gen", LastName: fmt.Sprint(i)}}
	})
	sim.AssignPopulation("0oaapp")
	sim.AddPopulationToGroup("00gsales")
	stored := []string{"00u0000000000000000a", "00ugen00000000000005x", "00uzzzzzzzzzzzzzzzzz"}
	for _, id := range stored {
		sim.PutUser(okta.User{ID: id, Profile: okta.Profile{Login: id + "@atko.example"}})
		sim.Assign("0oaapp", id, "GROUP")
		sim.AddMember("00gsales", id)
	}
	sim.Unassign("0oaapp", oktasim.GeneratedID(3))
	sim.RemoveMember("00gsales", oktasim.GeneratedID(4))
	sim.DeleteUser(oktasim.GeneratedID(5))
	sim.PutUser(okta.User{ID: oktasim.GeneratedID(6), Status: "SUSPENDED", Profile: okta.Profile{Login: "changed@atko.example"}})
	sim.CreateApp("0oaempty")

	want := func(skip string) []string {
		var out []string
		for i := range 40 {
			if id := oktasim.GeneratedID(i); id != skip && i != 5 {
				out = append(out, id)
			}
		}
		out = append(out, stored...)
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name      string
		pageSize  int
		list      func(c *okta.Client) func(string) (okta.Page, error)
		want      []string
		wantPages int
	}{
		{"app users, sim pages of 7", 200, func(c *okta.Client) func(string) (okta.Page, error) {
			return func(a string) (okta.Page, error) { return c.ListAppUsers(t.Context(), "0oaapp", a) }
		}, want(oktasim.GeneratedID(3)), 6},
		{"group users, client pages of 5", 5, func(c *okta.Client) func(string) (okta.Page, error) {
			return func(a string) (okta.Page, error) { return c.ListGroupUsers(t.Context(), "00gsales", a) }
		}, want(oktasim.GeneratedID(4)), 9},
		{"empty app", 200, func(c *okta.Client) func(string) (okta.Page, error) {
			return func(a string) (okta.Page, error) { return c.ListAppUsers(t.Context(), "0oaempty", a) }
		}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, sim, clk, func(c *okta.Config) { c.PageSize = tt.pageSize })
			got, pages := collect(t, tt.list(c))
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("ids = %v\nwant %v", ids(got), tt.want)
			}
			if pages != tt.wantPages {
				t.Errorf("pages = %d, want %d", pages, tt.wantPages)
			}
		})
	}

	t.Run("app user fields", func(t *testing.T) {
		c := newClient(t, sim, clk, nil)
		got, _ := collect(t, func(a string) (okta.Page, error) { return c.ListAppUsers(t.Context(), "0oaapp", a) })
		byID := map[string]okta.User{}
		for _, u := range got {
			byID[u.ID] = u
		}
		g := byID[oktasim.GeneratedID(7)]
		if g.App == nil || g.App.Scope != "USER" || g.App.UserName != "gen7@atko.example" || g.Profile.FirstName != "Gen" || g.Status != "ACTIVE" {
			t.Errorf("generated app user = %+v (app %+v)", g, g.App)
		}
		if s := byID[stored[0]]; s.App == nil || s.App.Scope != "GROUP" {
			t.Errorf("stored app user scope = %+v", s.App)
		}
		if ch := byID[oktasim.GeneratedID(6)]; ch.Status != "SUSPENDED" || ch.Profile.Login != "changed@atko.example" {
			t.Errorf("changed generated user = %+v", ch)
		}
	})
	t.Run("unknown group is ErrNotFound", func(t *testing.T) {
		c := newClient(t, sim, clk, nil)
		if _, err := c.ListGroupUsers(t.Context(), "00gnope", ""); !errors.Is(err, okta.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("429 waits until the reset and retries", func(t *testing.T) {
		clk := newClock()
		clk.Advance(15 * time.Second) // the window resets at 10:01:00
		sim := newSim(t, clk, oktasim.Options{RateLimit: 3})
		sim.PutUser(jane())
		other := newClient(t, sim, clk, nil)
		for range 3 { // someone else spends the window
			if _, err := other.GetUser(t.Context(), jane().ID); err != nil {
				t.Fatal(err)
			}
		}
		clk.mu.Lock()
		clk.slept = nil
		clk.mu.Unlock()
		c := newClient(t, sim, clk, nil)
		untilReset := time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC).Sub(clk.Now())
		if _, err := c.GetUser(t.Context(), jane().ID); err != nil {
			t.Fatalf("GetUser after a 429: %v", err)
		}
		if got := clk.Slept(); !slices.Equal(got, []time.Duration{untilReset}) {
			t.Fatalf("slept %v, want exactly until the reset (%s)", got, untilReset)
		}
		if st := sim.Stats(); st.Limited != 1 || st.Requests["users"] != 5 {
			t.Fatalf("stats = %+v, want one 429 among 5 requests", st)
		}
	})
	t.Run("retries are bounded", func(t *testing.T) {
		clk := newClock()
		clk.noAdvan = true // the window never resets
		sim := newSim(t, clk, oktasim.Options{RateLimit: 1})
		sim.PutUser(jane())
		_, _ = newClient(t, sim, clk, nil).GetUser(t.Context(), jane().ID) // spends the window
		c := newClient(t, sim, clk, func(c *okta.Config) { c.MaxRetries = 3 })
		_, err := c.GetUser(t.Context(), jane().ID)
		if !errors.Is(err, okta.ErrRateLimited) {
			t.Fatalf("err = %v, want ErrRateLimited", err)
		}
		if st := sim.Stats(); st.Limited != 4 {
			t.Fatalf("429s = %d, want 1 + 3 retries", st.Limited)
		}
	})
	t.Run("a wait past the deadline fails at once", func(t *testing.T) {
		clk := newClock()
		sim := newSim(t, clk, oktasim.Options{RateLimit: 1})
		sim.PutUser(jane())
		c := newClient(t, sim, clk, nil)
		if _, err := c.GetUser(t.Context(), jane().ID); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute/2)
		defer cancel()
		// The client knows the window is spent: it does not even ask.
		if _, err := c.GetUser(ctx, jane().ID); !errors.Is(err, okta.ErrRateLimited) {
			t.Fatalf("err = %v, want ErrRateLimited", err)
		}
		if got := clk.Slept(); len(got) != 0 {
			t.Fatalf("slept %v; want no sleep into the deadline", got)
		}
		if st := sim.Stats(); st.Requests["users"] != 1 {
			t.Fatalf("requests = %d, want 1", st.Requests["users"])
		}
	})
	t.Run("slows down when remaining is low, never hits 429", func(t *testing.T) {
		clk := newClock()
		sim := newSim(t, clk, oktasim.Options{RateLimit: 20})
		sim.PutUser(jane())
		c := newClient(t, sim, clk, func(c *okta.Config) { c.LowWater = 0.25 })
		start := clk.Now()
		const n = 70
		for range n {
			if _, err := c.GetUser(t.Context(), jane().ID); err != nil {
				t.Fatal(err)
			}
		}
		st := sim.Stats()
		if st.Limited != 0 {
			t.Fatalf("429s = %d, want 0: the client should pace itself", st.Limited)
		}
		// 70 requests at 20 a minute need at least three window changes.
		if elapsed := clk.Now().Sub(start); elapsed < 3*time.Minute {
			t.Fatalf("simulated time %s, want ≥ 3m", elapsed)
		}
		// Pacing spreads the last quarter of each window over the time
		// left (here 5 requests over 60 s: 10 s apart) instead of bursting
		// and then waiting a whole window.
		slept := clk.Slept()
		if len(slept) <= 3 || slices.Max(slept) >= time.Minute {
			t.Fatalf("sleeps %v: want many waits, each shorter than a window", slept)
		}
	})
}

func rsaKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func ecKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func TestOAuth(t *testing.T) {
	t.Parallel()
	rk, rpem := rsaKey(t)
	ek, epem := ecKey(t)
	tests := []struct {
		name string
		pub  crypto.PublicKey
		pem  string
	}{
		{"RS256 PKCS#8", &rk.PublicKey, rpem},
		{"ES256 SEC1", &ek.PublicKey, epem},
		{"PEM with literal \\n", &rk.PublicKey, strings.ReplaceAll(rpem, "\n", `\n`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			sim := newSim(t, clk, oktasim.Options{ClientID: "0oaservice", PublicKey: tt.pub, TokenLifetime: time.Hour})
			sim.PutUser(jane())
			sim.AddMember("00gsales", jane().ID)
			c := newClient(t, sim, clk, func(c *okta.Config) {
				c.APIToken = ""
				c.OAuth = &okta.OAuth{ClientID: "0oaservice", PrivateKeyPEM: tt.pem, KeyID: "kid1"}
			})
			steps := []struct {
				name       string
				advance    time.Duration
				revoke     bool
				wantTokens int
			}{
				{"first call fetches a token", 0, false, 1},
				{"cached", 0, false, 1},
				{"still cached after 50m", 50 * time.Minute, false, 1},
				{"renewed within a minute of expiry", 9*time.Minute + 30*time.Second, false, 2},
				{"revoked token: one retry with a new one", 0, true, 3},
				{"cached again", time.Minute, false, 3},
			}
			for _, s := range steps {
				clk.Advance(s.advance)
				if s.revoke {
					sim.RevokeTokens()
				}
				if _, err := c.GetUser(t.Context(), jane().ID); err != nil {
					t.Fatalf("%s: GetUser: %v", s.name, err)
				}
				if _, err := c.ListGroupUsers(t.Context(), "00gsales", ""); err != nil {
					t.Fatalf("%s: ListGroupUsers: %v", s.name, err)
				}
				if got := sim.Stats().Tokens; got != s.wantTokens {
					t.Fatalf("%s: tokens issued = %d, want %d", s.name, got, s.wantTokens)
				}
			}
		})
	}

	t.Run("wrong key is rejected without leaking it", func(t *testing.T) {
		clk := newClock()
		sim := newSim(t, clk, oktasim.Options{ClientID: "0oaservice", PublicKey: &rk.PublicKey})
		sim.PutUser(jane())
		c := newClient(t, sim, clk, func(c *okta.Config) {
			c.APIToken = ""
			c.OAuth = &okta.OAuth{ClientID: "0oaservice", PrivateKeyPEM: epem}
		})
		_, err := c.GetUser(t.Context(), jane().ID)
		var ae *okta.APIError
		if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "invalid_client" {
			t.Fatalf("err = %v, want 401 invalid_client", err)
		}
	})
	t.Run("scopes", func(t *testing.T) {
		clk := newClock()
		sim := newSim(t, clk, oktasim.Options{ClientID: "0oaservice", Scopes: []string{"okta.users.read"}})
		sim.PutUser(jane())
		sim.CreateApp("0oaapp")
		withScopes := func(s ...string) *okta.Client {
			return newClient(t, sim, clk, func(c *okta.Config) {
				c.APIToken = ""
				c.OAuth = &okta.OAuth{ClientID: "0oaservice", PrivateKeyPEM: epem, Scopes: s}
			})
		}
		var ae *okta.APIError
		if _, err := withScopes().GetUser(t.Context(), jane().ID); !errors.As(err, &ae) || ae.Code != "invalid_scope" {
			t.Fatalf("default scopes on an app granted only users.read: err = %v, want invalid_scope", err)
		}
		c := withScopes("okta.users.read")
		if _, err := c.GetUser(t.Context(), jane().ID); err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if _, err := c.ListAppUsers(t.Context(), "0oaapp", ""); !errors.As(err, &ae) || ae.Status != 403 {
			t.Fatalf("ListAppUsers without okta.apps.read: err = %v, want 403", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, rpem := rsaKey(t)
	tests := []struct {
		name string
		cfg  okta.Config
		ok   bool
	}{
		{"token", okta.Config{OrgURL: "https://acme.okta.com", APIToken: "x"}, true},
		{"oauth", okta.Config{OrgURL: "https://acme.okta.com/", OAuth: &okta.OAuth{ClientID: "c", PrivateKeyPEM: rpem}}, true},
		{"neither", okta.Config{OrgURL: "https://acme.okta.com"}, false},
		{"both", okta.Config{OrgURL: "https://acme.okta.com", APIToken: "x", OAuth: &okta.OAuth{ClientID: "c", PrivateKeyPEM: rpem}}, false},
		{"path in org URL", okta.Config{OrgURL: "https://acme.okta.com/api/v1", APIToken: "x"}, false},
		{"no scheme", okta.Config{OrgURL: "acme.okta.com", APIToken: "x"}, false},
		{"garbage key", okta.Config{OrgURL: "https://acme.okta.com", OAuth: &okta.OAuth{ClientID: "c", PrivateKeyPEM: "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----"}}, false},
		{"no client id", okta.Config{OrgURL: "https://acme.okta.com", OAuth: &okta.OAuth{PrivateKeyPEM: rpem}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := okta.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}
