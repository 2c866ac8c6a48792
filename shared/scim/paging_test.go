package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

// readCounter counts the identities and groups the store hands out, so a
// test can tell O(N) paging from O(N²).
type readCounter struct {
	scim.Store
	mu    sync.Mutex
	items int
}

func (r *readCounter) ListIdentities(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error) {
	p, err := r.Store.ListIdentities(ctx, cursor, limit)
	r.add(len(p.Items))
	return p, err
}

func (r *readCounter) ListGroups(ctx context.Context, cursor string, limit int) (store.Page[*store.Group], error) {
	p, err := r.Store.ListGroups(ctx, cursor, limit)
	r.add(len(p.Items))
	return p, err
}

func (r *readCounter) add(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items += n
}

func (r *readCounter) reset() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.items
	r.items = 0
	return n
}

// pageAll pages through path (startIndex from 1, count per page) the way
// Okta's import does and returns the ids in order.
func pageAll(t testing.TB, e *env, path string, count int) []string {
	t.Helper()
	var out []string
	for start := 1; ; start += count {
		r := e.mustCall(http.StatusOK, "GET", fmt.Sprintf("%s?startIndex=%d&count=%d", path, start, count), "")
		res, _ := r.body["Resources"].([]any)
		for _, x := range res {
			out = append(out, x.(map[string]any)["id"].(string))
		}
		if len(res) == 0 || start+count > int(r.body["totalResults"].(float64)) {
			return out
		}
	}
}

// pagingEnv is env with the store behind a readCounter and a clock the
// test moves.
func pagingEnv(t *testing.T) (*env, *readCounter, *time.Time) {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &env{t: t, st: openBolt(t), q: &recQueue{}}
	rc := &readCounter{Store: e.st}
	e.hooks = newHookStore(rc)
	h, err := scim.NewHandler(e.hooks, e.q, scim.Config{Token: testToken, NewID: seqIDs(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	e.h = h
	return e, rc, &now
}

// TestSequentialPaging: paging an unfiltered listing returns every
// resource exactly once and reads each from the store about once (the
// cursor cache); a cold, expired or invalidated cache changes the cost,
// never the answer.
func TestSequentialPaging(t *testing.T) {
	e, rc, now := pagingEnv(t)
	const users, groups = 150, 23
	var wantUsers, wantGroups []string
	for i := range users {
		wantUsers = append(wantUsers, e.createUser(fmt.Sprintf("user%03d@x", i)))
	}
	for i := range groups {
		wantGroups = append(wantGroups, e.createGroup(fmt.Sprintf("group%02d", i)))
	}
	sort.Strings(wantUsers)
	sort.Strings(wantGroups)

	cases := []struct {
		name  string
		path  string
		count int
		want  *[]string
		// before runs before the second pass.
		before func()
	}{
		{name: "users by 7", path: "/scim/v2/Users", count: 7, want: &wantUsers},
		{name: "users by 100", path: "/scim/v2/Users", count: 100, want: &wantUsers},
		{name: "users by 1", path: "/scim/v2/Users", count: 1, want: &wantUsers},
		{name: "groups by 4", path: "/scim/v2/Groups", count: 4, want: &wantGroups},
		{name: "users after the TTL", path: "/scim/v2/Users", count: 9, want: &wantUsers,
			before: func() { *now = now.Add(6 * time.Minute) }},
		{name: "users after a create and a delete through the API", path: "/scim/v2/Users", count: 11, want: &wantUsers,
			before: func() {
				id := e.createUser("late@x")
				e.mustCall(http.StatusNoContent, "DELETE", "/scim/v2/Users/"+wantUsers[0], "")
				wantUsers = append(wantUsers[1:], id)
				sort.Strings(wantUsers)
			}},
		{name: "users after a create behind the API's back", path: "/scim/v2/Users", count: 13, want: &wantUsers,
			before: func() {
				ident := &store.Identity{ID: "00000000-0000-4000-8000-000000000000", UserName: "direct@x", Active: true, Resource: []byte(`{}`)}
				if err := e.st.CreateIdentity(context.Background(), ident); err != nil {
					t.Fatalf("direct create: %v", err)
				}
				wantUsers = append([]string{ident.ID}, wantUsers...)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The first pass fills the cache; the second must agree
			// after whatever before changes.
			for pass := range 2 {
				if pass == 1 && tc.before != nil {
					tc.before()
				}
				rc.reset()
				got := pageAll(t, e, tc.path, tc.count)
				if !slices.Equal(got, *tc.want) {
					t.Fatalf("pass %d: got %d ids %v, want %d %v", pass, len(got), got, len(*tc.want), *tc.want)
				}
				// Sequential pages read each resource once, plus at most
				// one page's worth when the cache was cold.
				if reads, n := rc.reset(), len(*tc.want); reads > n+tc.count {
					t.Errorf("pass %d: %d store reads for %d resources by %d; want at most %d", pass, reads, n, tc.count, n+tc.count)
				}
			}
		})
	}
}

// TestPagingRandomAccess: a page requested out of order (no cache entry)
// is still the right window.
func TestPagingRandomAccess(t *testing.T) {
	e, _, _ := pagingEnv(t)
	var all []string
	for i := range 30 {
		all = append(all, e.createUser(fmt.Sprintf("u%02d@x", i)))
	}
	sort.Strings(all)
	// 1→6 caches startIndex 6; 21 is a miss; 6 again is a hit.
	for _, start := range []int{1, 21, 6, 6, 26, 11, 30, 31} {
		r := e.mustCall(http.StatusOK, "GET", fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=5", start), "")
		want := all[min(start-1, len(all)):min(start+4, len(all))]
		if got := ids(t, r); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("startIndex=%d: %v, want %v", start, got, want)
		}
	}
}

// BenchmarkUnfilteredPaging pages through 2,000 users 100 at a time, as a
// full Okta import does.
func BenchmarkUnfilteredPaging(b *testing.B) {
	e := newEnv(b, nil)
	const n = 2000
	for i := range n {
		benchCall(b, e, http.StatusCreated, "POST", "/scim/v2/Users", benchUser(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := len(pageAll(b, e, "/scim/v2/Users", 100)); got != n {
			b.Fatalf("%d users, want %d", got, n)
		}
	}
}
