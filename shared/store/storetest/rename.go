package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

// versionsOf reads every identity's version.
func versionsOf(t *testing.T, s store.Store, users []string) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, len(users))
	for _, u := range users {
		out[u] = mustGet(t, s, u).Version
	}
	return out
}

// checkBumped checks that exactly the identities in want went up by one
// from before, that ch names them at their new versions, and that they
// are pending since the group write (and were modified by it).
func checkBumped(t *testing.T, s store.Store, what string, ch []store.Changed, before map[string]int64, want []string, g *store.Group) {
	t.Helper()
	after := versionsOf(t, s, slices.Collect(maps.Keys(before)))
	var wantCh []store.Changed
	for u, v := range before {
		wantV := v
		if slices.Contains(want, u) {
			wantV++
			wantCh = append(wantCh, store.Changed{ID: u, Version: wantV})
		}
		if after[u] != wantV {
			t.Errorf("%s: %s version = %d, want %d", what, u, after[u], wantV)
		}
	}
	checkChanged(t, what, ch, wantCh)
	// Spot checks keep large groups fast: the first and the last.
	slices.Sort(want)
	for i, u := range want {
		if i != 0 && i != len(want)-1 {
			continue
		}
		checkPending(t, s, u, before[u]+1, g.Modified)
		checkTime(t, what+": "+u+" Modified", mustGet(t, s, u).Modified, g.Modified)
	}
}

func groupNamesOf(t *testing.T, s store.Store, uid string) []string {
	t.Helper()
	of, err := s.GroupsOf(t.Context(), uid)
	if err != nil {
		t.Fatalf("GroupsOf(%s): %v", uid, err)
	}
	names := ids(of, func(m store.Member) string { return m.GroupName })
	slices.Sort(names)
	return names
}

// testRenameGroup: a new displayName is part of every member's desired
// state, so a rename bumps each member once, together with any membership
// change in the same write; other group attributes bump nobody.
func testRenameGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	mustCreateN(t, s, users...)
	mustCreateGroup(t, s, newGroup("g1", "Team"), "u1", "u2", "u3")
	mustCreateGroup(t, s, newGroup("g2", "Other"), "u3")
	mustCreateGroup(t, s, newGroup("g3", "Empty"))

	other := func(name string) *store.Group {
		return &store.Group{ID: "g1", DisplayName: name, ExternalID: "00gNEW", Resource: []byte(`{"displayName":"` + name + `","description":"new"}`)}
	}
	steps := []struct {
		name        string
		gid         string
		g           *store.Group
		add, remove []string
		wantBumped  []string
		wantMembers []string
	}{
		{"rename", "g1", newGroup("g1", "Team EMEA"), nil, nil, []string{"u1", "u2", "u3"}, []string{"u1", "u2", "u3"}},
		{"case-only rename", "g1", newGroup("g1", "TEAM EMEA"), nil, nil, []string{"u1", "u2", "u3"}, []string{"u1", "u2", "u3"}},
		{"same name, other attributes", "g1", other("TEAM EMEA"), nil, nil, nil, []string{"u1", "u2", "u3"}},
		{"rename with adds and removes", "g1", newGroup("g1", "Team 2"), []string{"u4", "u1"}, []string{"u2", "u5"},
			[]string{"u1", "u2", "u3", "u4"}, []string{"u1", "u3", "u4"}},
		{"rename adding and removing one absent id", "g1", newGroup("g1", "Team 3"), []string{"u5"}, []string{"u5"},
			[]string{"u1", "u3", "u4"}, []string{"u1", "u3", "u4"}},
		{"rename removing everyone", "g1", newGroup("g1", "Team 4"), nil, []string{"u1", "u3", "u4"},
			[]string{"u1", "u3", "u4"}, nil},
		{"rename of an empty group", "g3", newGroup("g3", "Still empty"), nil, nil, nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cur := mustGetGroup(t, s, st.gid)
			before := versionsOf(t, s, users)
			ch, err := s.UpdateGroup(ctx, st.g, cur.Version, st.add, st.remove)
			if err != nil {
				t.Fatalf("UpdateGroup: %v", err)
			}
			checkGroup(t, mustGetGroup(t, s, st.gid), st.g)
			checkBumped(t, s, "UpdateGroup", ch, before, st.wantBumped, st.g)
			members, _ := membershipState(t, s, st.gid, nil)
			if !slices.Equal(members, st.wantMembers) {
				t.Errorf("members = %v, want %v", members, st.wantMembers)
			}
			for _, u := range st.wantMembers {
				if names := groupNamesOf(t, s, u); !slices.Contains(names, st.g.DisplayName) {
					t.Errorf("GroupsOf(%s) = %v, want it to hold %q", u, names, st.g.DisplayName)
				}
			}
		})
	}
	if names := groupNamesOf(t, s, "u3"); !slices.Equal(names, []string{"Other"}) {
		t.Errorf("GroupsOf(u3) = %v, want [Other]", names)
	}
	if ch, err := s.FinishGroupWrites(ctx, time.Now().Add(time.Hour), 10); err != nil || len(ch) != 0 {
		t.Errorf("FinishGroupWrites after completed writes = %v, %v; want none", ch, err)
	}
}

// largeGroup is more members than DynamoDB's 100-item transaction holds
// bumps for.
const largeGroup = 130

// testRenameLargeGroup renames a group too large for one DynamoDB
// transaction: every member is bumped exactly once all the same, and
// nothing is left for FinishGroupWrites.
func testRenameLargeGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	var members, extra []string
	for i := range largeGroup {
		members = append(members, fmt.Sprintf("m%03d", i))
	}
	for i := range 5 {
		extra = append(extra, fmt.Sprintf("x%03d", i))
	}
	users := append(slices.Clone(members), extra...)
	// A few writers at a time: the DynamoDB server is shared.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make([]error, len(users))
	for i, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.CreateIdentity(ctx, newIdentity(u, u+"@example.com", ""))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	mustCreateGroup(t, s, newGroup("big", "Big"), members...)

	removed := members[:5]
	stayers := members[5:]
	steps := []struct {
		name        string
		dn          string
		add, remove []string
		wantBumped  []string
		wantMembers int
	}{
		{"rename", "Big Renamed", nil, nil, members, largeGroup},
		{"same name", "Big Renamed", nil, nil, nil, largeGroup},
		{"rename with adds and removes", "Bigger", append(slices.Clone(extra), members[7]), removed,
			users, largeGroup},
		{"membership only", "Bigger", nil, extra[:2], extra[:2], largeGroup - 2},
		{"rename back", "Big", nil, nil, append(slices.Clone(stayers), extra[2:]...), largeGroup - 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cur := mustGetGroup(t, s, "big")
			before := versionsOf(t, s, users)
			g := newGroup("big", st.dn)
			ch, err := s.UpdateGroup(ctx, g, cur.Version, st.add, st.remove)
			if err != nil {
				t.Fatalf("UpdateGroup: %v", err)
			}
			if g.Version != cur.Version+1 {
				t.Errorf("group version = %d, want %d", g.Version, cur.Version+1)
			}
			checkBumped(t, s, "UpdateGroup", ch, before, st.wantBumped, g)
			m, _ := membershipState(t, s, "big", nil)
			if len(m) != st.wantMembers {
				t.Errorf("%d members, want %d", len(m), st.wantMembers)
			}
			if names := groupNamesOf(t, s, m[len(m)-1]); !slices.Equal(names, []string{st.dn}) {
				t.Errorf("GroupsOf(%s) = %v, want [%s]", m[len(m)-1], names, st.dn)
			}
			// Nothing is left for the sweeper to finish.
			before = versionsOf(t, s, users)
			if ch, err := s.FinishGroupWrites(ctx, time.Now().Add(time.Hour), 100); err != nil || len(ch) != 0 {
				t.Errorf("FinishGroupWrites = %v, %v; want none", ch, err)
			}
			checkBumped(t, s, "FinishGroupWrites", nil, before, nil, g)
		})
	}
	// A rejected rename of the large group changes nothing.
	mustCreateGroup(t, s, newGroup("small", "Small"))
	cur := mustGetGroup(t, s, "big")
	before := versionsOf(t, s, users)
	_, err := s.UpdateGroup(ctx, newGroup("big", "SMALL"), cur.Version, nil, nil)
	wantErr(t, "rename to a taken name", err, store.ErrDisplayNameTaken)
	_, err = s.UpdateGroup(ctx, newGroup("big", "Fresh"), cur.Version, []string{"ghost"}, nil)
	wantErr(t, "rename with a missing member", err, store.ErrNotFound)
	_, err = s.UpdateGroup(ctx, newGroup("big", "Fresh"), cur.Version-1, nil, nil)
	wantErr(t, "rename at a stale version", err, store.ErrVersionConflict)
	checkBumped(t, s, "rejected renames", nil, before, nil, cur)
	checkGroup(t, mustGetGroup(t, s, "big"), cur)
	if ch, err := s.FinishGroupWrites(ctx, time.Now().Add(time.Hour), 100); err != nil || len(ch) != 0 {
		t.Errorf("FinishGroupWrites after rejected renames = %v, %v; want none", ch, err)
	}
}

// testConcurrentRenames races renames that each also add a member, every
// racer retrying on version conflicts: all land, and the members present
// throughout are bumped once per rename, none lost.
func testConcurrentRenames(t *testing.T, s store.Store) {
	ctx := t.Context()
	stayers := []string{"s1", "s2", "s3"}
	joiners := make([]string, racers)
	for i := range joiners {
		joiners[i] = fmt.Sprintf("j%d", i)
	}
	mustCreateN(t, s, append(slices.Clone(stayers), joiners...)...)
	mustCreateGroup(t, s, newGroup("g1", "Team"), stayers...)
	before := versionsOf(t, s, stayers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			for range 100 {
				g, err := s.GetGroup(ctx, "g1")
				if err != nil {
					errs[i] = err
					return
				}
				_, err = s.UpdateGroup(ctx, newGroup("g1", fmt.Sprintf("Team %d", i)), g.Version, []string{joiners[i]}, nil)
				if !errors.Is(err, store.ErrVersionConflict) {
					errs[i] = err
					return
				}
			}
			errs[i] = errors.New("too many conflicts")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	g := mustGetGroup(t, s, "g1")
	if g.Version != racers+1 {
		t.Errorf("group version = %d, want %d", g.Version, racers+1)
	}
	for u, v := range versionsOf(t, s, stayers) {
		if v != before[u]+racers {
			t.Errorf("%s version = %d, want %d (one bump per rename)", u, v, before[u]+racers)
		}
	}
	for _, j := range joiners {
		if names := groupNamesOf(t, s, j); !slices.Equal(names, []string{g.DisplayName}) {
			t.Errorf("GroupsOf(%s) = %v, want [%s]", j, names, g.DisplayName)
		}
		// Joined (one bump), then one per later rename.
		if v := mustGet(t, s, j).Version; v < 2 || v > racers+1 {
			t.Errorf("%s version = %d, want 2..%d", j, v, racers+1)
		}
	}
}
