package dynamo_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
)

// TestRenameCrash: a rename of a group too large for one transaction
// whose writer dies part-way is durable, and FinishGroupWrites (the
// sweeper) bumps exactly the members the writer did not reach.
func TestRenameCrash(t *testing.T) {
	t.Parallel()
	const n = 130 // one page of 99 bumps, then 31
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("m%03d", i))
	}
	tests := []struct {
		name    string
		survive int      // transactions the dying writer completes
		add     []string // added by the dying write
		// then runs on a healthy store before the sweep.
		then func(t *testing.T, s *dynamo.Store)
		// wantFinished is how many identities the sweep bumps; wantDelta
		// how many times in all each identity was bumped since the start.
		wantFinished int
		wantDelta    func(uid string) int64
	}{
		{name: "dies after the rename's own transaction", survive: 1, wantFinished: n,
			wantDelta: func(string) int64 { return 1 }},
		{name: "dies after one page of bumps", survive: 2, wantFinished: n - 99,
			wantDelta: func(string) int64 { return 1 }},
		{name: "dies after adding members", survive: 1, add: []string{"x1", "x2"}, wantFinished: n + 2,
			// The sweep cannot tell the added members were bumped already.
			wantDelta: func(uid string) int64 {
				if strings.HasPrefix(uid, "x") {
					return 2
				}
				return 1
			}},
		{name: "a later rename takes over", survive: 1, wantFinished: 0,
			then: func(t *testing.T, s *dynamo.Store) {
				g, err := s.GetGroup(t.Context(), "g1")
				if err != nil {
					t.Fatal(err)
				}
				g.DisplayName = "Team Three"
				if ch, err := s.UpdateGroup(t.Context(), g, g.Version, nil, nil); err != nil || len(ch) != n {
					t.Fatalf("second rename: %d changed, %v", len(ch), err)
				}
			},
			wantDelta: func(string) int64 { return 1 }},
		{name: "a later rename small enough for one transaction takes over", survive: 1, wantFinished: 0,
			then: func(t *testing.T, s *dynamo.Store) {
				ctx := t.Context()
				g, err := s.GetGroup(ctx, "g1")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.UpdateGroup(ctx, g, g.Version, nil, members[40:]); err != nil {
					t.Fatal(err)
				}
				g.DisplayName = "Team Three"
				if ch, err := s.UpdateGroup(ctx, g, g.Version, nil, nil); err != nil || len(ch) != 40 {
					t.Fatalf("small rename: %d changed, %v", len(ch), err)
				}
			},
			wantDelta: func(string) int64 { return 1 }},
		{name: "deleting the group takes over", survive: 1, wantFinished: 0,
			then: func(t *testing.T, s *dynamo.Store) {
				if ch, err := s.DeleteGroup(t.Context(), "g1"); err != nil || len(ch) != n {
					t.Fatalf("DeleteGroup: %d changed, %v", len(ch), err)
				}
			},
			wantDelta: func(string) int64 { return 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			client, table := newTable(t)
			s := dynamo.New(client, table)
			users := append(slices.Clone(members), tc.add...)
			for _, u := range users {
				if err := s.CreateIdentity(ctx, &store.Identity{ID: u, UserName: u + "@example.com", Active: true, Resource: []byte(`{}`)}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.CreateGroup(ctx, &store.Group{ID: "g1", DisplayName: "Team"}, members); err != nil {
				t.Fatal(err)
			}
			before := map[string]int64{}
			for _, u := range users {
				before[u] = version(t, s, u)
			}

			dying := dynamo.NewCrashing(client, table, tc.survive)
			_, err := dying.UpdateGroup(ctx, &store.Group{ID: "g1", DisplayName: "Team Two"}, 1, tc.add, nil)
			if !errors.Is(err, dynamo.ErrCrash) {
				t.Fatalf("dying UpdateGroup: %v, want the crash", err)
			}
			if tc.then == nil {
				if g, err := s.GetGroup(ctx, "g1"); err != nil || g.DisplayName != "Team Two" {
					t.Fatalf("after the crash: %+v, %v; want the rename stored", g, err)
				}
			} else {
				tc.then(t, s)
			}

			// A marker with recent progress is its writer's: not due.
			if ch, err := s.FinishGroupWrites(ctx, time.Now().Add(-time.Hour), 10); err != nil || len(ch) != 0 {
				t.Fatalf("FinishGroupWrites(not due) = %d, %v", len(ch), err)
			}
			ch, err := s.FinishGroupWrites(ctx, time.Now().Add(time.Minute), 10)
			if err != nil || len(ch) != tc.wantFinished {
				t.Fatalf("FinishGroupWrites = %d changed, %v; want %d", len(ch), err, tc.wantFinished)
			}
			for _, c := range ch {
				if v := version(t, s, c.ID); v != c.Version {
					t.Errorf("%s: changed at version %d, stored %d", c.ID, c.Version, v)
				}
			}
			for _, u := range users {
				if d := version(t, s, u) - before[u]; d != tc.wantDelta(u) {
					t.Errorf("%s bumped %d times, want %d", u, d, tc.wantDelta(u))
				}
			}
			pending, err := s.ListPending(ctx, time.Now().Add(time.Hour), 1000)
			if err != nil || len(pending) != len(users) {
				t.Errorf("ListPending = %d, %v; want every identity", len(pending), err)
			}
			if ch, err := s.FinishGroupWrites(ctx, time.Now().Add(time.Minute), 10); err != nil || len(ch) != 0 {
				t.Errorf("second FinishGroupWrites = %d, %v; want nothing left", len(ch), err)
			}
		})
	}
}

func version(t *testing.T, s *dynamo.Store, id string) int64 {
	t.Helper()
	got, err := s.GetIdentity(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return got.Version
}
