package scim

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

func TestCursorCache(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	k := cursorKey{usersEndpoint, 101}
	cases := []struct {
		name string
		// act runs between put(k, "c", 500, gen at start) and get(k, total).
		act   func(c *cursorCache, now *time.Time)
		total int
		want  bool
	}{
		{name: "hit", act: func(*cursorCache, *time.Time) {}, total: 500, want: true},
		{name: "count changed", act: func(*cursorCache, *time.Time) {}, total: 501},
		{name: "just inside the TTL", act: func(_ *cursorCache, now *time.Time) { *now = now.Add(cursorTTL) }, total: 500, want: true},
		{name: "expired", act: func(_ *cursorCache, now *time.Time) { *now = now.Add(cursorTTL + time.Second) }, total: 500},
		{name: "user created or deleted", act: func(c *cursorCache, _ *time.Time) { c.invalidate(usersEndpoint) }, total: 500},
		{name: "group created or deleted", act: func(c *cursorCache, _ *time.Time) { c.invalidate(groupsEndpoint) }, total: 500, want: true},
		{name: "evicted", act: func(c *cursorCache, _ *time.Time) {
			for i := range cursorCacheSize {
				c.put(cursorKey{usersEndpoint, 1000 + i}, "x", 500, 0)
			}
		}, total: 500},
		{name: "recently used survives eviction", act: func(c *cursorCache, _ *time.Time) {
			for i := range cursorCacheSize - 1 {
				c.put(cursorKey{usersEndpoint, 1000 + i}, "x", 500, 0)
			}
			c.get(k, 500)
			c.put(cursorKey{groupsEndpoint, 1}, "x", 500, 0)
		}, total: 500, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			c := newCursorCache(func() time.Time { return now })
			c.put(k, "c", 500, c.generation(usersEndpoint))
			tc.act(c, &now)
			got, ok := c.get(k, tc.total)
			if ok != tc.want || (ok && got != "c") {
				t.Errorf("get = %q, %v; want hit %v", got, ok, tc.want)
			}
			if n := c.order.Len(); n > cursorCacheSize || n != len(c.byKey) {
				t.Errorf("%d entries (%d keys), at most %d", n, len(c.byKey), cursorCacheSize)
			}
		})
	}
}

// A put recorded with the generation read before a concurrent create is
// never served.
func TestCursorCacheStaleGeneration(t *testing.T) {
	c := newCursorCache(time.Now)
	gen := c.generation(usersEndpoint)
	c.invalidate(usersEndpoint) // the create lands while the list runs
	c.put(cursorKey{usersEndpoint, 11}, "c", 10, gen)
	if _, ok := c.get(cursorKey{usersEndpoint, 11}, 10); ok {
		t.Fatal("served a cursor recorded across a create")
	}
}

func TestCursorEndpoints(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{userResourceType().Endpoint, usersEndpoint},
		{groupResourceType().Endpoint, groupsEndpoint},
	} {
		if tc.got != tc.want {
			t.Errorf("endpoint %q, the cache invalidates %q", tc.got, tc.want)
		}
	}
}

// fakePages lists 0..n-1; the cursor is the last index read. mode bends
// the contract the way real stores may.
func fakePages(n int, mode string) func(context.Context, string, int) (store.Page[int], error) {
	return func(_ context.Context, cursor string, limit int) (store.Page[int], error) {
		from := 0
		if cursor != "" {
			c, err := strconv.Atoi(cursor)
			if err != nil {
				return store.Page[int]{}, err
			}
			from = c + 1
		}
		switch mode {
		case "ignores limit":
			limit = n
		case "short pages": // e.g. tombstones filtered out of a page
			limit = max(1, limit/2)
		}
		to := min(from+limit, n)
		var p store.Page[int]
		for i := from; i < to; i++ {
			p.Items = append(p.Items, i)
		}
		if to < n {
			p.Next = strconv.Itoa(to - 1)
		}
		return p, nil
	}
}

func TestSeek(t *testing.T) {
	cases := []struct {
		mode       string
		total      int
		cursor     string
		n          int
		wantFirst  int
		wantCount  int
		wantCursor string
	}{
		{mode: "", total: 100, n: 10, wantFirst: 0, wantCount: 10, wantCursor: "9"},
		{mode: "", total: 100, cursor: "9", n: 10, wantFirst: 10, wantCount: 10, wantCursor: "19"},
		{mode: "", total: 1200, n: 1100, wantFirst: 0, wantCount: 1100, wantCursor: "1099"}, // several scanPage pages
		{mode: "", total: 100, cursor: "94", n: 10, wantFirst: 95, wantCount: 5, wantCursor: ""},
		{mode: "", total: 100, cursor: "89", n: 10, wantFirst: 90, wantCount: 10, wantCursor: ""},
		{mode: "short pages", total: 100, n: 25, wantFirst: 0, wantCount: 25, wantCursor: "24"},
		{mode: "ignores limit", total: 100, n: 10, wantFirst: 0, wantCount: 10, wantCursor: ""},
		{mode: "ignores limit", total: 100, cursor: "49", n: 10, wantFirst: 50, wantCount: 10, wantCursor: ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s total=%d cursor=%q n=%d", tc.mode, tc.total, tc.cursor, tc.n), func(t *testing.T) {
			var got []int
			next, err := seek(context.Background(), fakePages(tc.total, tc.mode), tc.cursor, tc.n, func(i int) { got = append(got, i) })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantCount || (len(got) > 0 && got[0] != tc.wantFirst) {
				t.Fatalf("read %d starting at %v, want %d starting at %d", len(got), got[:min(1, len(got))], tc.wantCount, tc.wantFirst)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("not contiguous at %d: %v", i, got)
				}
			}
			if next != tc.wantCursor {
				t.Errorf("cursor %q, want %q", next, tc.wantCursor)
			}
		})
	}
}
