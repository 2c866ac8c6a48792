package oktasim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
)

func get(t testing.TB, url, auth string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func gen(i int) okta.User {
	return okta.User{Profile: okta.Profile{
		Login: fmt.Sprintf("user%d@atko.example", i), Email: fmt.Sprintf("user%d@atko.example", i),
		FirstName: "User", LastName: fmt.Sprint(i), Department: []string{"Sales", "R&D", "Ops"}[i%3],
	}}
}

// TestWire checks the raw answers: shapes, Link and rate-limit headers,
// Okta's error body.
func TestWire(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	sim := oktasim.New(oktasim.Options{APIToken: "tok", PageSize: 2, RateLimit: 4, Now: func() time.Time { return now }})
	defer sim.Close()
	sim.Populate(3, gen)
	sim.AssignPopulation("0oaapp")
	const auth = "SSWS tok"

	resp, body := get(t, sim.URL()+"/api/v1/apps/0oaapp/users?expand=user", auth)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var page []map[string]any
	if err := json.Unmarshal(body, &page); err != nil || len(page) != 2 {
		t.Fatalf("page = %s (%v)", body, err)
	}
	emb, _ := page[0]["_embedded"].(map[string]any)
	u, _ := emb["user"].(map[string]any)
	prof, _ := u["profile"].(map[string]any)
	if page[0]["id"] != oktasim.GeneratedID(0) || page[0]["scope"] != "USER" || prof["login"] != "user0@atko.example" {
		t.Fatalf("first app user = %v", page[0])
	}
	links := strings.Join(resp.Header.Values("Link"), " | ")
	if !strings.Contains(links, `rel="self"`) || !strings.Contains(links, "after="+oktasim.GeneratedID(1)) || !strings.Contains(links, `rel="next"`) {
		t.Fatalf("Link = %s", links)
	}
	if resp.Header.Get("X-Rate-Limit-Limit") != "4" || resp.Header.Get("X-Rate-Limit-Remaining") != "3" ||
		resp.Header.Get("X-Rate-Limit-Reset") != fmt.Sprint(time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC).Unix()) {
		t.Fatalf("rate headers = %v", resp.Header)
	}

	tests := []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"no auth", "/api/v1/users/" + oktasim.GeneratedID(0), "", 401, "E0000011"},
		{"unknown user", "/api/v1/users/00unope", auth, 404, "E0000007"},
		{"unknown app", "/api/v1/apps/0oanope/users", auth, 404, "E0000007"},
		{"rate limited", "/api/v1/apps/0oaapp/users", auth, 429, "E0000047"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.status == 429 {
				for range 3 {
					get(t, sim.URL()+tt.path, tt.auth)
				}
			}
			resp, body := get(t, sim.URL()+tt.path, tt.auth)
			var e map[string]any
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != tt.status || e["errorCode"] != tt.code || e["errorSummary"] == "" || e["errorId"] == "" {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}

// TestPopulationIsLean: a million generated users cost no memory until
// read, and a page deep into them is found by binary search.
func TestPopulationIsLean(t *testing.T) {
	t.Parallel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sim := oktasim.New(oktasim.Options{APIToken: "tok", PageSize: 500})
	defer sim.Close()
	sim.Populate(1_000_000, gen)
	sim.AssignPopulation("0oaapp")
	sim.AddPopulationToGroup("00gall")
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("populating 1M users grew the heap by %d bytes", grew)
	}
	c, _ := okta.New(okta.Config{OrgURL: sim.URL(), APIToken: "tok", PageSize: 500})
	p, err := c.ListGroupUsers(t.Context(), "00gall", oktasim.GeneratedID(999_000))
	if err != nil || len(p.Users) != 500 || p.Users[0].ID != oktasim.GeneratedID(999_001) || p.Next != oktasim.GeneratedID(999_500) {
		t.Fatalf("deep page: %d users, first %v, next %q, err %v", len(p.Users), p.Users[0].ID, p.Next, err)
	}
}

// BenchmarkListAppUsers100k pages through 100,000 assigned users with
// their profiles (expand=user), 500 a page, as reconciliation does.
func BenchmarkListAppUsers100k(b *testing.B) {
	sim := oktasim.New(oktasim.Options{APIToken: "tok", PageSize: 500})
	defer sim.Close()
	sim.Populate(100_000, gen)
	sim.AssignPopulation("0oaapp")
	c, _ := okta.New(okta.Config{OrgURL: sim.URL(), APIToken: "tok", PageSize: 500})
	b.ReportAllocs()
	for b.Loop() {
		n, after := 0, ""
		for {
			p, err := c.ListAppUsers(b.Context(), "0oaapp", after)
			if err != nil {
				b.Fatal(err)
			}
			n += len(p.Users)
			if after = p.Next; after == "" {
				break
			}
		}
		if n != 100_000 {
			b.Fatalf("listed %d", n)
		}
	}
}
