// Package storetest is the conformance suite every store.Store passes.
//
// Run checks each method and documented semantic of package store against
// fresh stores from newStore. Beyond the interface comments it pins down
// choices callers may rely on:
//   - the store sets Created/Modified (UTC) and Version and writes them back
//     into the struct passed in; Created survives updates;
//   - an ID held by a tombstone cannot be created again (ErrExists);
//   - Member.UserDisplay is the identity's userName, Member.GroupName the
//     group's displayName, both as they are now;
//   - ClearPending is a no-op (nil) when the identity moved past the version,
//     ErrNotFound when there is no such identity;
//   - Members of an unknown group and GroupsOf an unknown identity are
//     ErrNotFound; FindIdentitiesByExternalID with no match is empty, nil;
//   - FindTombstonesByExternalID finds a tombstone by the externalId it
//     carried when deleted, never a live identity (and
//     FindIdentitiesByExternalID never a tombstone);
//   - UpdateGroup applies add before remove;
//   - a displayName change (exact, case included) bumps every member once,
//     also when the same write changes members, and also for groups larger
//     than one DynamoDB transaction; other group attributes bump nobody;
//     FinishGroupWrites has nothing to do after writes that returned;
//   - PutLink sets Updated when zero; AppendAudit sets Time when zero.
//   - docs: an id may hold slashes; keys over 1 KiB, a negative expected
//     version and bad ListDocs kinds or cursors (another kind's key) are
//     plain errors; PutDoc keeps Expires to within a second, never earlier
//     than asked, and writes the stored value back (UTC); ListDocs sets
//     Next only when a live document follows; a deleted or expired doc is
//     created again from version 1.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Run runs the suite. Subtests run in parallel, each on its own store, so
// newStore must be safe to call concurrently and should register cleanup
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"IdentityRoundTrip", testIdentityRoundTrip},
		{"IdentityCreateConflicts", testIdentityCreateConflicts},
		{"IdentityGetByUserName", testIdentityGetByUserName},
		{"IdentityFindByExternalID", testFindByExternalID},
		{"TombstonesByExternalID", testFindTombstonesByExternalID},
		{"IdentityUpdate", testIdentityUpdate},
		{"IdentityUpdateUserName", testIdentityUpdateUserName},
		{"IdentityDelete", testIdentityDelete},
		{"IdentityDeleteRemovesMemberships", testDeleteRemovesMemberships},
		{"ListIdentitiesPaging", testListIdentitiesPaging},
		{"Counts", testCounts},
		{"GroupRoundTrip", testGroupRoundTrip},
		{"GroupDisplayName", testGroupDisplayName},
		{"CreateGroupMissingMembers", testCreateGroupMissingMembers},
		{"CreateGroupMembers", testCreateGroupMembers},
		{"UpdateGroupMembership", testUpdateGroupMembership},
		{"UpdateGroupRejected", testUpdateGroupRejected},
		{"RenameGroup", testRenameGroup},
		{"RenameLargeGroup", testRenameLargeGroup},
		{"DeleteGroup", testDeleteGroup},
		{"MembersAndGroupsOf", testMembersAndGroupsOf},
		{"ListGroupsPaging", testListGroupsPaging},
		{"PendingLifecycle", testPendingLifecycle},
		{"PendingMembership", testPendingMembership},
		{"ListPendingWindow", testListPendingWindow},
		{"Links", testLinks},
		{"ListLinksPaging", testListLinksPaging},
		{"Audit", testAudit},
		{"RejectsEmptyKeys", testRejectsEmptyKeys},
		{"ConcurrentCreateSameUserName", testConcurrentCreate},
		{"ConcurrentUpdateSameVersion", testConcurrentUpdate},
		{"ConcurrentGroupUpdates", testConcurrentGroupUpdates},
		{"ConcurrentRenames", testConcurrentRenames},
		{"DocWrites", testDocWrites},
		{"DocExpiry", testDocExpiry},
		{"DocDelete", testDocDelete},
		{"ListDocsPaging", testListDocsPaging},
		{"DocBadKeys", testDocBadKeys},
		{"ConcurrentDocWrites", testConcurrentDocWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// ---- helpers ----

// resource is a SCIM-ish body with whitespace, escapes and non-ASCII text
// that a re-encoding would change.
func resource(userName string) []byte {
	return fmt.Appendf(nil, "{\n  \"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\"],\n\t\"userName\":%q, \"name\":{\"givenName\":\"Zoë\",\"familyName\":\"O\\u2019Brien\"}, \"n\": 1.50e0 }", userName)
}

func newIdentity(id, userName, externalID string) *store.Identity {
	return &store.Identity{ID: id, UserName: userName, ExternalID: externalID, Active: true, Resource: resource(userName)}
}

func newGroup(id, name string) *store.Group {
	return &store.Group{ID: id, DisplayName: name, ExternalID: "ext-" + id,
		Resource: fmt.Appendf(nil, "{ \"displayName\" : %q,\n \"x\":[ 1, 2 ] }", name)}
}

func mustCreate(t *testing.T, s store.Store, id *store.Identity) *store.Identity {
	t.Helper()
	if err := s.CreateIdentity(t.Context(), id); err != nil {
		t.Fatalf("CreateIdentity(%s): %v", id.ID, err)
	}
	return id
}

func mustCreateN(t *testing.T, s store.Store, ids ...string) map[string]*store.Identity {
	t.Helper()
	out := map[string]*store.Identity{}
	for _, id := range ids {
		out[id] = mustCreate(t, s, newIdentity(id, id+"@example.com", "ext-"+id))
	}
	return out
}

func mustGet(t *testing.T, s store.Store, id string) *store.Identity {
	t.Helper()
	got, err := s.GetIdentity(t.Context(), id)
	if err != nil {
		t.Fatalf("GetIdentity(%s): %v", id, err)
	}
	return got
}

func mustCreateGroup(t *testing.T, s store.Store, g *store.Group, members ...string) []store.Changed {
	t.Helper()
	ch, err := s.CreateGroup(t.Context(), g, members)
	if err != nil {
		t.Fatalf("CreateGroup(%s): %v", g.ID, err)
	}
	return ch
}

func mustGetGroup(t *testing.T, s store.Store, id string) *store.Group {
	t.Helper()
	g, err := s.GetGroup(t.Context(), id)
	if err != nil {
		t.Fatalf("GetGroup(%s): %v", id, err)
	}
	return g
}

// sameTime compares to the millisecond, the precision the contract promises.
func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.IsZero() || !sameTime(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

func checkIdentity(t *testing.T, got, want *store.Identity) {
	t.Helper()
	if got.ID != want.ID || got.UserName != want.UserName || got.ExternalID != want.ExternalID ||
		got.Active != want.Active || got.Deleted != want.Deleted || got.Version != want.Version {
		t.Errorf("identity = %+v, want %+v", brief(got), brief(want))
	}
	if !bytes.Equal(got.Resource, want.Resource) {
		t.Errorf("identity %s Resource = %q, want %q", want.ID, got.Resource, want.Resource)
	}
	checkTime(t, want.ID+" Created", got.Created, want.Created)
	checkTime(t, want.ID+" Modified", got.Modified, want.Modified)
}

func brief(i *store.Identity) string {
	return fmt.Sprintf("{ID:%s UserName:%s ExternalID:%s Active:%t Deleted:%t Version:%d}",
		i.ID, i.UserName, i.ExternalID, i.Active, i.Deleted, i.Version)
}

func checkGroup(t *testing.T, got, want *store.Group) {
	t.Helper()
	if got.ID != want.ID || got.DisplayName != want.DisplayName || got.ExternalID != want.ExternalID || got.Version != want.Version {
		t.Errorf("group = %s/%s/%s/v%d, want %s/%s/%s/v%d", got.ID, got.DisplayName, got.ExternalID, got.Version,
			want.ID, want.DisplayName, want.ExternalID, want.Version)
	}
	if !bytes.Equal(got.Resource, want.Resource) {
		t.Errorf("group %s Resource = %q, want %q", want.ID, got.Resource, want.Resource)
	}
	checkTime(t, want.ID+" Created", got.Created, want.Created)
	checkTime(t, want.ID+" Modified", got.Modified, want.Modified)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func identityIDs(items []*store.Identity) []string {
	return ids(items, func(i *store.Identity) string { return i.ID })
}

func sortedChanged(c []store.Changed) []store.Changed {
	c = slices.Clone(c)
	slices.SortFunc(c, func(a, b store.Changed) int { return strings.Compare(a.ID, b.ID) })
	return c
}

func checkChanged(t *testing.T, what string, got, want []store.Changed) {
	t.Helper()
	if g, w := sortedChanged(got), sortedChanged(want); !slices.Equal(g, w) {
		t.Errorf("%s: changed = %v, want %v", what, g, w)
	}
}

func pendingOf(t *testing.T, s store.Store, id string) (store.Pending, bool) {
	t.Helper()
	all, err := s.ListPending(t.Context(), time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	var found []store.Pending
	for _, p := range all {
		if p.ID == id {
			found = append(found, p)
		}
	}
	if len(found) > 1 {
		t.Errorf("identity %s pending %d times: %v", id, len(found), found)
	}
	if len(found) == 0 {
		return store.Pending{}, false
	}
	return found[0], true
}

func checkPending(t *testing.T, s store.Store, id string, version int64, since time.Time) {
	t.Helper()
	p, ok := pendingOf(t, s, id)
	if !ok {
		t.Errorf("identity %s not pending, want version %d", id, version)
		return
	}
	if p.Version != version {
		t.Errorf("pending %s version = %d, want %d", id, p.Version, version)
	}
	checkTime(t, "pending "+id+" Since", p.Since, since)
}

// ---- identities ----

func testIdentityRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		in   *store.Identity
	}{
		{"pretty resource", newIdentity("u1", "Alice@Example.com", "00u1")},
		{"compact resource", &store.Identity{ID: "u2", UserName: "bob", Active: true, Resource: []byte(`{"userName":"bob"}`)}},
		{"inactive no externalId", &store.Identity{ID: "u3", UserName: "carol", Resource: []byte(`{"active":false,"x":"\u00e9\n"}`)}},
		{"unicode id and name", newIdentity("ü-4/π", "Ümit@例え.jp", "ext/4")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Add(-time.Minute)
			want := *tc.in
			want.Resource = bytes.Clone(tc.in.Resource)
			if err := s.CreateIdentity(ctx, tc.in); err != nil {
				t.Fatalf("CreateIdentity: %v", err)
			}
			if tc.in.Version != 1 || tc.in.Deleted {
				t.Errorf("after create Version=%d Deleted=%t, want 1, false", tc.in.Version, tc.in.Deleted)
			}
			if tc.in.Created.Before(before) || !tc.in.Created.Equal(tc.in.Modified) {
				t.Errorf("after create Created=%v Modified=%v, want now and equal", tc.in.Created, tc.in.Modified)
			}
			want.Version, want.Created, want.Modified = 1, tc.in.Created, tc.in.Modified
			checkIdentity(t, mustGet(t, s, tc.in.ID), &want)
		})
	}
	_, err := s.GetIdentity(ctx, "nobody")
	wantErr(t, "GetIdentity(unknown)", err, store.ErrNotFound)
}

func testIdentityCreateConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newIdentity("u1", "Alice@Example.com", "e1"))
	dead := mustCreate(t, s, newIdentity("dead", "dead@example.com", ""))
	if _, err := s.DeleteIdentity(ctx, "dead", dead.Version); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	tests := []struct {
		name string
		in   *store.Identity
		want error
	}{
		{"same id", newIdentity("u1", "other@example.com", ""), store.ErrExists},
		{"same id and name", newIdentity("u1", "Alice@Example.com", ""), store.ErrExists},
		{"tombstone id", newIdentity("dead", "fresh@example.com", ""), store.ErrExists},
		{"same name", newIdentity("u2", "Alice@Example.com", ""), store.ErrUserNameTaken},
		{"name upper", newIdentity("u3", "ALICE@EXAMPLE.COM", ""), store.ErrUserNameTaken},
		{"name lower", newIdentity("u4", "alice@example.com", ""), store.ErrUserNameTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateIdentity", s.CreateIdentity(ctx, tc.in), tc.want)
		})
	}
	// Nothing written by the failures.
	for _, id := range []string{"u2", "u3", "u4"} {
		_, err := s.GetIdentity(ctx, id)
		wantErr(t, "GetIdentity("+id+")", err, store.ErrNotFound)
	}
	if got := mustGet(t, s, "u1"); got.UserName != "Alice@Example.com" || got.Version != 1 {
		t.Errorf("u1 = %s, want untouched", brief(got))
	}
	if got := mustGet(t, s, "dead"); !got.Deleted || got.UserName != "dead@example.com" {
		t.Errorf("tombstone = %s, want untouched", brief(got))
	}
	if n, err := s.CountIdentities(ctx); err != nil || n != 1 {
		t.Errorf("CountIdentities = %d, %v; want 1", n, err)
	}
}

func testIdentityGetByUserName(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := mustCreate(t, s, newIdentity("u1", "Alice.Smith@Example.COM", ""))
	mustCreate(t, s, newIdentity("u2", "bob@example.com", ""))
	tests := []struct {
		query  string
		wantID string
	}{
		{"Alice.Smith@Example.COM", "u1"},
		{"alice.smith@example.com", "u1"},
		{"ALICE.SMITH@EXAMPLE.COM", "u1"},
		{"BOB@example.com", "u2"},
		{"alice", ""},
		{"alice.smith@example.com ", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got, err := s.GetIdentityByUserName(ctx, tc.query)
			if tc.wantID == "" {
				wantErr(t, "GetIdentityByUserName", err, store.ErrNotFound)
				return
			}
			if err != nil {
				t.Fatalf("GetIdentityByUserName: %v", err)
			}
			if got.ID != tc.wantID {
				t.Errorf("got %s, want %s", got.ID, tc.wantID)
			}
		})
	}
	got, err := s.GetIdentityByUserName(ctx, "alice.smith@example.com")
	if err != nil {
		t.Fatalf("GetIdentityByUserName: %v", err)
	}
	checkIdentity(t, got, want)
}

func testFindByExternalID(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, newIdentity("a", "a@example.com", "00uSHARED"))
	b := mustCreate(t, s, newIdentity("b", "b@example.com", "00uSHARED"))
	mustCreate(t, s, newIdentity("c", "c@example.com", "00uOTHER"))
	mustCreate(t, s, newIdentity("d", "d@example.com", ""))

	find := func(ext string) []string {
		t.Helper()
		got, err := s.FindIdentitiesByExternalID(ctx, ext)
		if err != nil {
			t.Fatalf("FindIdentitiesByExternalID(%s): %v", ext, err)
		}
		out := identityIDs(got)
		slices.Sort(out)
		return out
	}
	tests := []struct {
		ext  string
		want []string
	}{
		{"00uSHARED", []string{"a", "b"}},
		{"00uOTHER", []string{"c"}},
		{"00ushared", []string{}}, // externalId is case-sensitive
		{"missing", []string{}},
	}
	for _, tc := range tests {
		if got := find(tc.ext); !slices.Equal(got, tc.want) {
			t.Errorf("find(%s) = %v, want %v", tc.ext, got, tc.want)
		}
	}
	// Full records come back.
	got, err := s.FindIdentitiesByExternalID(ctx, "00uOTHER")
	if err != nil || len(got) != 1 {
		t.Fatalf("FindIdentitiesByExternalID = %v, %v", got, err)
	}
	checkIdentity(t, got[0], mustGet(t, s, "c"))

	// Changing the externalId moves it; deleting hides it.
	a.ExternalID = "00uOTHER"
	if err := s.UpdateIdentity(ctx, a, 1); err != nil {
		t.Fatalf("UpdateIdentity: %v", err)
	}
	if _, err := s.DeleteIdentity(ctx, "b", b.Version); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	if got := find("00uSHARED"); len(got) != 0 {
		t.Errorf("after move and delete find(00uSHARED) = %v, want none", got)
	}
	if got := find("00uOTHER"); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("after move find(00uOTHER) = %v, want [a c]", got)
	}
}

// testFindTombstonesByExternalID: a person deleted, provisioned again and
// deleted again leaves two tombstones of one externalId; workers need both
// to tell which incarnation is the newest.
func testFindTombstonesByExternalID(t *testing.T, s store.Store) {
	ctx := t.Context()
	del := func(id string) {
		t.Helper()
		if _, err := s.DeleteIdentity(ctx, id, mustGet(t, s, id).Version); err != nil {
			t.Fatalf("DeleteIdentity(%s): %v", id, err)
		}
	}
	mustCreate(t, s, newIdentity("a", "jane@example.com", "00uJANE"))
	del("a")
	mustCreate(t, s, newIdentity("b", "jane@example.com", "00uJANE")) // re-provisioned
	del("b")
	mustCreate(t, s, newIdentity("c", "jane@example.com", "00uJANE")) // and again, still live
	mustCreate(t, s, newIdentity("d", "bob@example.com", "00uBOB"))
	del("d")
	mustCreate(t, s, newIdentity("e", "eve@example.com", ""))
	del("e")
	// A tombstone is found by the externalId it carried when deleted.
	moved := mustCreate(t, s, newIdentity("f", "fay@example.com", "00uJANE"))
	moved.ExternalID = "00uFAY"
	if err := s.UpdateIdentity(ctx, moved, moved.Version); err != nil {
		t.Fatalf("UpdateIdentity: %v", err)
	}
	del("f")

	sorted := func(got []*store.Identity) []string {
		out := identityIDs(got)
		slices.Sort(out)
		return out
	}
	tests := []struct {
		ext        string
		tombstones []string
		live       []string
	}{
		{"00uJANE", []string{"a", "b"}, []string{"c"}},
		{"00uBOB", []string{"d"}, []string{}},
		{"00uFAY", []string{"f"}, []string{}},
		{"00ujane", []string{}, []string{}}, // externalId is case-sensitive
		{"missing", []string{}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.ext, func(t *testing.T) {
			got, err := s.FindTombstonesByExternalID(ctx, tc.ext)
			if err != nil {
				t.Fatalf("FindTombstonesByExternalID: %v", err)
			}
			if ids := sorted(got); !slices.Equal(ids, tc.tombstones) {
				t.Errorf("FindTombstonesByExternalID = %v, want %v", ids, tc.tombstones)
			}
			for _, g := range got {
				checkIdentity(t, g, mustGet(t, s, g.ID)) // full records, Deleted set
				if !g.Deleted {
					t.Errorf("%s: Deleted = false", g.ID)
				}
			}
			live, err := s.FindIdentitiesByExternalID(ctx, tc.ext)
			if err != nil {
				t.Fatalf("FindIdentitiesByExternalID: %v", err)
			}
			if ids := sorted(live); !slices.Equal(ids, tc.live) {
				t.Errorf("FindIdentitiesByExternalID = %v, want %v (no tombstones)", ids, tc.live)
			}
		})
	}
	if got, err := s.FindTombstonesByExternalID(ctx, ""); err != nil || got != nil {
		t.Errorf("FindTombstonesByExternalID(\"\") = %v, %v; want nil, nil", identityIDs(got), err)
	}
}

func testIdentityUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := mustCreate(t, s, newIdentity("u1", "alice@example.com", "e1"))
	created := orig.Created
	mustCreate(t, s, newIdentity("u2", "bob@example.com", "e2"))

	// Successive updates bump the version by one each.
	for v := int64(1); v <= 3; v++ {
		upd := &store.Identity{ID: "u1", UserName: "alice@example.com", ExternalID: fmt.Sprintf("e1-%d", v),
			Active: v%2 == 0, Resource: fmt.Appendf(nil, "{ \"rev\" : %d }", v)}
		if err := s.UpdateIdentity(ctx, upd, v); err != nil {
			t.Fatalf("UpdateIdentity(v%d): %v", v, err)
		}
		if upd.Version != v+1 {
			t.Errorf("after update Version = %d, want %d", upd.Version, v+1)
		}
		if !sameTime(upd.Created, created) || upd.Modified.Before(created) {
			t.Errorf("after update Created=%v Modified=%v, want Created kept (%v), Modified later", upd.Created, upd.Modified, created)
		}
		want := *upd
		want.Created = created
		checkIdentity(t, mustGet(t, s, "u1"), &want)
	}
	current := mustGet(t, s, "u1")

	dead := mustCreate(t, s, newIdentity("dead", "dead@example.com", ""))
	if _, err := s.DeleteIdentity(ctx, "dead", dead.Version); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	tests := []struct {
		name     string
		id       string
		expected int64
		want     error
	}{
		{"stale version", "u1", 3, store.ErrVersionConflict},
		{"first version", "u1", 1, store.ErrVersionConflict},
		{"future version", "u1", 5, store.ErrVersionConflict},
		{"zero version", "u1", 0, store.ErrVersionConflict},
		{"unknown id", "nobody", 1, store.ErrNotFound},
		{"tombstone", "dead", 2, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upd := newIdentity(tc.id, "changed@example.com", "changed")
			wantErr(t, "UpdateIdentity", s.UpdateIdentity(ctx, upd, tc.expected), tc.want)
		})
	}
	checkIdentity(t, mustGet(t, s, "u1"), current)
	if _, err := s.GetIdentityByUserName(ctx, "changed@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rejected update claimed the userName: %v", err)
	}
}

func testIdentityUpdateUserName(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newIdentity("u1", "alice@example.com", ""))
	mustCreate(t, s, newIdentity("u2", "bob@example.com", ""))

	steps := []struct {
		name     string
		id       string
		userName string
		want     error
	}{
		{"rename to taken", "u1", "bob@example.com", store.ErrUserNameTaken},
		{"rename to taken other case", "u1", "BOB@Example.com", store.ErrUserNameTaken},
		{"case-only rename of own", "u1", "Alice@Example.com", nil},
		{"rename to free", "u1", "alice.smith@example.com", nil},
		{"old name is free again", "u2", "ALICE@example.com", nil},
		{"swap back is taken", "u1", "alice@example.com", store.ErrUserNameTaken},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cur := mustGet(t, s, st.id)
			upd := newIdentity(st.id, st.userName, "")
			err := s.UpdateIdentity(ctx, upd, cur.Version)
			if st.want != nil {
				wantErr(t, "UpdateIdentity", err, st.want)
				if got := mustGet(t, s, st.id); got.Version != cur.Version || got.UserName != cur.UserName {
					t.Errorf("rejected rename changed %s", brief(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("UpdateIdentity: %v", err)
			}
			got, err := s.GetIdentityByUserName(ctx, strings.ToUpper(st.userName))
			if err != nil || got.ID != st.id || got.UserName != st.userName {
				t.Errorf("GetIdentityByUserName(%s) = %v, %v; want %s", st.userName, got, err, st.id)
			}
			if !strings.EqualFold(cur.UserName, st.userName) {
				if _, err := s.GetIdentityByUserName(ctx, cur.UserName); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("old userName %s still found: %v", cur.UserName, err)
				}
			}
		})
	}
	// The freed name can be used by a new identity once nobody holds it.
	wantErr(t, "create with held name", s.CreateIdentity(ctx, newIdentity("u3", "alice.SMITH@example.com", "")), store.ErrUserNameTaken)
	mustCreate(t, s, newIdentity("u3", "bob@EXAMPLE.com", ""))
}

func testIdentityDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreate(t, s, newIdentity("u1", "Alice@example.com", "00u1"))
	mustCreate(t, s, newIdentity("u2", "bob@example.com", "00u2"))
	if err := s.UpdateIdentity(ctx, u, 1); err != nil {
		t.Fatalf("UpdateIdentity: %v", err)
	}

	wrong := []struct {
		name     string
		id       string
		expected int64
		want     error
	}{
		{"stale version", "u1", 1, store.ErrVersionConflict},
		{"future version", "u1", 3, store.ErrVersionConflict},
		{"unknown", "nobody", 1, store.ErrNotFound},
	}
	for _, tc := range wrong {
		_, err := s.DeleteIdentity(ctx, tc.id, tc.expected)
		wantErr(t, "DeleteIdentity "+tc.name, err, tc.want)
	}
	if got := mustGet(t, s, "u1"); got.Deleted || got.Version != 2 {
		t.Fatalf("rejected delete changed %s", brief(got))
	}

	tomb, err := s.DeleteIdentity(ctx, "u1", 2)
	if err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	if !tomb.Deleted || tomb.Version != 3 || tomb.ID != "u1" || tomb.UserName != "Alice@example.com" {
		t.Errorf("tombstone = %s, want Deleted v3 keeping its userName", brief(tomb))
	}
	if tomb.Modified.Before(u.Modified) || !sameTime(tomb.Created, u.Created) {
		t.Errorf("tombstone Created=%v Modified=%v, want Created kept and Modified later than %v", tomb.Created, tomb.Modified, u.Modified)
	}
	got := mustGet(t, s, "u1")
	checkIdentity(t, got, tomb)
	if !bytes.Equal(got.Resource, u.Resource) {
		t.Errorf("tombstone lost its Resource")
	}

	checks := []struct {
		name string
		err  error
	}{
		{"delete again", func() error { _, err := s.DeleteIdentity(ctx, "u1", 3); return err }()},
		{"update tombstone", s.UpdateIdentity(ctx, newIdentity("u1", "alice@example.com", ""), 3)},
		{"by userName", func() error { _, err := s.GetIdentityByUserName(ctx, "alice@example.com"); return err }()},
		{"recreate same id", s.CreateIdentity(ctx, newIdentity("u1", "x@example.com", ""))},
	}
	for _, c := range checks {
		want := store.ErrNotFound
		if c.name == "recreate same id" {
			want = store.ErrExists
		}
		wantErr(t, c.name, c.err, want)
	}
	if found, err := s.FindIdentitiesByExternalID(ctx, "00u1"); err != nil || len(found) != 0 {
		t.Errorf("FindIdentitiesByExternalID(tombstone's) = %v, %v; want none", identityIDs(found), err)
	}
	page, err := s.ListIdentities(ctx, "", 10)
	if err != nil || !slices.Equal(identityIDs(page.Items), []string{"u2"}) {
		t.Errorf("ListIdentities = %v, %v; want [u2]", identityIDs(page.Items), err)
	}
	if n, err := s.CountIdentities(ctx); err != nil || n != 1 {
		t.Errorf("CountIdentities = %d, %v; want 1", n, err)
	}
	// The userName is free again, in any case.
	mustCreate(t, s, newIdentity("u3", "ALICE@example.com", "00u1"))
	if got, err := s.GetIdentityByUserName(ctx, "alice@example.com"); err != nil || got.ID != "u3" {
		t.Errorf("GetIdentityByUserName after reuse = %v, %v; want u3", got, err)
	}
	if got := mustGet(t, s, "u1"); !got.Deleted || got.Version != 3 {
		t.Errorf("reusing the name changed the tombstone: %s", brief(got))
	}
}

func testDeleteRemovesMemberships(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateN(t, s, "u1", "u2")
	mustCreateGroup(t, s, newGroup("g1", "One"), "u1", "u2")
	mustCreateGroup(t, s, newGroup("g2", "Two"), "u1")
	u1 := mustGet(t, s, "u1")
	if _, err := s.DeleteIdentity(ctx, "u1", u1.Version); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	for g, want := range map[string][]string{"g1": {"u2"}, "g2": {}} {
		m, err := s.Members(ctx, g)
		if err != nil {
			t.Fatalf("Members(%s): %v", g, err)
		}
		if got := ids(m, func(m store.Member) string { return m.UserID }); !slices.Equal(got, want) {
			t.Errorf("Members(%s) = %v, want %v", g, got, want)
		}
	}
	if of, err := s.GroupsOf(ctx, "u1"); err != nil || len(of) != 0 {
		t.Errorf("GroupsOf(tombstone) = %v, %v; want none", of, err)
	}
	// Removing the departed identity is not a change; u2 is untouched.
	g1 := mustGetGroup(t, s, "g1")
	ch, err := s.UpdateGroup(ctx, g1, g1.Version, nil, []string{"u1"})
	if err != nil || len(ch) != 0 {
		t.Errorf("UpdateGroup(remove tombstone) = %v, %v; want no change", ch, err)
	}
	// Deleting the group does not touch the tombstone.
	ch, err = s.DeleteGroup(ctx, "g2")
	if err != nil || len(ch) != 0 {
		t.Errorf("DeleteGroup(g2) = %v, %v; want no change", ch, err)
	}
	if got := mustGet(t, s, "u1"); got.Version != u1.Version+1 {
		t.Errorf("tombstone version = %d, want %d", got.Version, u1.Version+1)
	}
}

func pageIDs[T any](t *testing.T, list func(cursor string, limit int) (store.Page[T], error), id func(T) string, limit int) ([]string, []int) {
	t.Helper()
	var all []string
	var sizes []int
	cursor := ""
	for range 100 {
		page, err := list(cursor, limit)
		if err != nil {
			t.Fatalf("list(%q, %d): %v", cursor, limit, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("page of %d items, limit %d", len(page.Items), limit)
		}
		all = append(all, ids(page.Items, id)...)
		sizes = append(sizes, len(page.Items))
		if page.Next == "" {
			return all, sizes
		}
		cursor = page.Next
	}
	t.Fatalf("paging did not end")
	return nil, nil
}

func testListIdentitiesPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	page, err := s.ListIdentities(ctx, "", 10)
	if err != nil || len(page.Items) != 0 || page.Next != "" {
		t.Errorf("empty ListIdentities = %v, %q, %v", page.Items, page.Next, err)
	}
	// Created out of order; one becomes a tombstone.
	for _, id := range []string{"id-5", "id-1", "id-7", "id-3", "id-2", "id-6", "id-4", "id-0"} {
		mustCreate(t, s, newIdentity(id, id+"@example.com", ""))
	}
	if _, err := s.DeleteIdentity(ctx, "id-0", 1); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	want := []string{"id-1", "id-2", "id-3", "id-4", "id-5", "id-6", "id-7"}
	list := func(cursor string, limit int) (store.Page[*store.Identity], error) {
		return s.ListIdentities(ctx, cursor, limit)
	}
	tests := []struct {
		limit     int
		wantSizes []int
	}{
		{1, []int{1, 1, 1, 1, 1, 1, 1}},
		{2, []int{2, 2, 2, 1}},
		{3, []int{3, 3, 1}},
		{6, []int{6, 1}},
		{7, []int{7}},
		{100, []int{7}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("limit", tc.limit), func(t *testing.T) {
			got, sizes := pageIDs(t, list, func(i *store.Identity) string { return i.ID }, tc.limit)
			if !slices.Equal(got, want) || !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("pages = %v sizes %v, want %v sizes %v", got, sizes, want, tc.wantSizes)
			}
		})
	}
	page, err = s.ListIdentities(ctx, "", 1)
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("ListIdentities: %v, %v", page, err)
	}
	checkIdentity(t, page.Items[0], mustGet(t, s, "id-1"))
}

func testCounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	count := func() (int, int) {
		t.Helper()
		ni, err := s.CountIdentities(ctx)
		if err != nil {
			t.Fatalf("CountIdentities: %v", err)
		}
		ng, err := s.CountGroups(ctx)
		if err != nil {
			t.Fatalf("CountGroups: %v", err)
		}
		return ni, ng
	}
	steps := []struct {
		name   string
		do     func() error
		wi, wg int
	}{
		{"empty", func() error { return nil }, 0, 0},
		{"create 3", func() error {
			mustCreateN(t, s, "a", "b", "c")
			return nil
		}, 3, 0},
		{"failed create", func() error {
			if err := s.CreateIdentity(ctx, newIdentity("d", "A@example.com", "")); !errors.Is(err, store.ErrUserNameTaken) {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}, 3, 0},
		{"update", func() error { return s.UpdateIdentity(ctx, newIdentity("a", "a2@example.com", ""), 1) }, 3, 0},
		{"delete", func() error { _, err := s.DeleteIdentity(ctx, "b", 1); return err }, 2, 0},
		{"groups", func() error {
			mustCreateGroup(t, s, newGroup("g1", "G1"), "a")
			mustCreateGroup(t, s, newGroup("g2", "G2"))
			return nil
		}, 2, 2},
		{"delete group", func() error { _, err := s.DeleteGroup(ctx, "g1"); return err }, 2, 1},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if ni, ng := count(); ni != st.wi || ng != st.wg {
			t.Errorf("%s: counts = %d identities, %d groups; want %d, %d", st.name, ni, ng, st.wi, st.wg)
		}
	}
}

// ---- groups ----

func testGroupRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := newGroup("g1", "Sales Team")
	want := *g
	want.Resource = bytes.Clone(g.Resource)
	if ch := mustCreateGroup(t, s, g); len(ch) != 0 {
		t.Errorf("CreateGroup without members changed %v", ch)
	}
	if g.Version != 1 || g.Created.IsZero() || !g.Created.Equal(g.Modified) {
		t.Errorf("after create Version=%d Created=%v Modified=%v", g.Version, g.Created, g.Modified)
	}
	want.Version, want.Created, want.Modified = 1, g.Created, g.Modified
	checkGroup(t, mustGetGroup(t, s, "g1"), &want)

	upd := &store.Group{ID: "g1", DisplayName: "Sales", ExternalID: "00gNEW", Resource: []byte(`{"displayName": "Sales"}`)}
	if _, err := s.UpdateGroup(ctx, upd, 1, nil, nil); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	if upd.Version != 2 || !sameTime(upd.Created, g.Created) || upd.Modified.Before(g.Modified) {
		t.Errorf("after update Version=%d Created=%v Modified=%v", upd.Version, upd.Created, upd.Modified)
	}
	checkGroup(t, mustGetGroup(t, s, "g1"), upd)

	for _, q := range []string{"sales", "SALES", "Sales"} {
		got, err := s.GetGroupByDisplayName(ctx, q)
		if err != nil {
			t.Errorf("GetGroupByDisplayName(%s): %v", q, err)
			continue
		}
		checkGroup(t, got, upd)
	}
	for _, q := range []string{"Sales Team", "sale", ""} {
		_, err := s.GetGroupByDisplayName(ctx, q)
		wantErr(t, "GetGroupByDisplayName("+q+")", err, store.ErrNotFound)
	}
	_, err := s.GetGroup(ctx, "nope")
	wantErr(t, "GetGroup(unknown)", err, store.ErrNotFound)
}

func testGroupDisplayName(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateGroup(t, s, newGroup("g1", "Engineering"))
	mustCreateGroup(t, s, newGroup("g2", "Support"))
	creates := []struct {
		name string
		in   *store.Group
		want error
	}{
		{"same id", newGroup("g1", "Other"), store.ErrExists},
		{"same name", newGroup("g3", "Engineering"), store.ErrDisplayNameTaken},
		{"same name upper", newGroup("g4", "ENGINEERING"), store.ErrDisplayNameTaken},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateGroup(ctx, tc.in, nil)
			wantErr(t, "CreateGroup", err, tc.want)
		})
	}
	for _, id := range []string{"g3", "g4"} {
		_, err := s.GetGroup(ctx, id)
		wantErr(t, "GetGroup("+id+")", err, store.ErrNotFound)
	}
	renames := []struct {
		name, id, to string
		want         error
	}{
		{"rename to taken", "g2", "engineering", store.ErrDisplayNameTaken},
		{"case-only rename", "g2", "SUPPORT", nil},
		{"rename to free", "g1", "Eng", nil},
		{"old name free", "g2", "Engineering", nil},
	}
	for _, tc := range renames {
		t.Run(tc.name, func(t *testing.T) {
			cur := mustGetGroup(t, s, tc.id)
			_, err := s.UpdateGroup(ctx, newGroup(tc.id, tc.to), cur.Version, nil, nil)
			if tc.want != nil {
				wantErr(t, "UpdateGroup", err, tc.want)
				if got := mustGetGroup(t, s, tc.id); got.Version != cur.Version || got.DisplayName != cur.DisplayName {
					t.Errorf("rejected rename changed the group: v%d %s", got.Version, got.DisplayName)
				}
				return
			}
			if err != nil {
				t.Fatalf("UpdateGroup: %v", err)
			}
			if got, err := s.GetGroupByDisplayName(ctx, strings.ToLower(tc.to)); err != nil || got.ID != tc.id {
				t.Errorf("GetGroupByDisplayName(%s) = %v, %v", tc.to, got, err)
			}
		})
	}
	// Deleting frees the name.
	if _, err := s.DeleteGroup(ctx, "g1"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	mustCreateGroup(t, s, newGroup("g5", "ENG"))
}

func testCreateGroupMissingMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateN(t, s, "u1", "u2", "dead")
	if _, err := s.DeleteIdentity(ctx, "dead", 1); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	pendingBefore, err := s.ListPending(ctx, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	tests := []struct {
		name        string
		members     []string
		wantMissing []string
	}{
		{"unknown", []string{"u1", "ghost"}, []string{"ghost"}},
		{"tombstone", []string{"dead", "u2"}, []string{"dead"}},
		{"several", []string{"ghost", "u1", "dead", "u2", "ghost2"}, []string{"dead", "ghost", "ghost2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateGroup(ctx, newGroup("g-"+tc.name, "Group "+tc.name), tc.members)
			var mm *store.MissingMembersError
			if !errors.As(err, &mm) || !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("CreateGroup err = %v, want *MissingMembersError wrapping ErrNotFound", err)
			}
			got := slices.Clone(mm.IDs)
			slices.Sort(got)
			if !slices.Equal(got, tc.wantMissing) {
				t.Errorf("missing = %v, want %v", got, tc.wantMissing)
			}
			// Nothing written.
			_, err = s.GetGroup(ctx, "g-"+tc.name)
			wantErr(t, "GetGroup", err, store.ErrNotFound)
			_, err = s.GetGroupByDisplayName(ctx, "Group "+tc.name)
			wantErr(t, "GetGroupByDisplayName", err, store.ErrNotFound)
		})
	}
	for _, id := range []string{"u1", "u2"} {
		if got := mustGet(t, s, id); got.Version != 1 {
			t.Errorf("%s version = %d after failed CreateGroup, want 1", id, got.Version)
		}
		if of, err := s.GroupsOf(ctx, id); err != nil || len(of) != 0 {
			t.Errorf("GroupsOf(%s) = %v, %v; want none", id, of, err)
		}
	}
	pendingAfter, err := s.ListPending(ctx, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if !slices.EqualFunc(pendingBefore, pendingAfter, func(a, b store.Pending) bool {
		return a.ID == b.ID && a.Version == b.Version && a.Since.Equal(b.Since)
	}) {
		t.Errorf("pending changed by failed CreateGroup: %v -> %v", pendingBefore, pendingAfter)
	}
	if n, err := s.CountGroups(ctx); err != nil || n != 0 {
		t.Errorf("CountGroups = %d, %v; want 0", n, err)
	}
}

func testCreateGroupMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateN(t, s, "u1", "u2", "u3")
	if err := s.UpdateIdentity(ctx, newIdentity("u2", "u2@example.com", ""), 1); err != nil {
		t.Fatalf("UpdateIdentity: %v", err)
	}
	g := newGroup("g1", "Team")
	ch := mustCreateGroup(t, s, g, "u2", "u1", "u2") // a repeat counts once
	checkChanged(t, "CreateGroup", ch, []store.Changed{{ID: "u1", Version: 2}, {ID: "u2", Version: 3}})
	for _, c := range ch {
		got := mustGet(t, s, c.ID)
		if got.Version != c.Version {
			t.Errorf("%s version = %d, want %d", c.ID, got.Version, c.Version)
		}
		checkTime(t, c.ID+" Modified", got.Modified, g.Modified)
		checkPending(t, s, c.ID, c.Version, g.Modified)
	}
	if got := mustGet(t, s, "u3"); got.Version != 1 {
		t.Errorf("non-member u3 version = %d, want 1", got.Version)
	}
	m, err := s.Members(ctx, "g1")
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	got := ids(m, func(m store.Member) string { return m.UserID })
	slices.Sort(got)
	if !slices.Equal(got, []string{"u1", "u2"}) {
		t.Errorf("Members = %v, want [u1 u2]", got)
	}
}

// membershipState reads the members of g and every identity's version.
func membershipState(t *testing.T, s store.Store, gid string, users []string) ([]string, map[string]int64) {
	t.Helper()
	m, err := s.Members(t.Context(), gid)
	if err != nil {
		t.Fatalf("Members(%s): %v", gid, err)
	}
	members := ids(m, func(m store.Member) string { return m.UserID })
	slices.Sort(members)
	versions := map[string]int64{}
	for _, u := range users {
		versions[u] = mustGet(t, s, u).Version
	}
	return members, versions
}

func testUpdateGroupMembership(t *testing.T, s store.Store) {
	ctx := t.Context()
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	mustCreateN(t, s, users...)
	mustCreateGroup(t, s, newGroup("g1", "Team"), "u1", "u2")

	steps := []struct {
		name        string
		add, remove []string
		wantMembers []string
		wantChanged []string
	}{
		{"add present", []string{"u1"}, nil, []string{"u1", "u2"}, nil},
		{"remove absent", nil, []string{"u3"}, []string{"u1", "u2"}, nil},
		{"remove unknown id", nil, []string{"ghost"}, []string{"u1", "u2"}, nil},
		{"no membership change", nil, nil, []string{"u1", "u2"}, nil},
		{"add new", []string{"u3", "u4"}, nil, []string{"u1", "u2", "u3", "u4"}, []string{"u3", "u4"}},
		{"remove present", nil, []string{"u1"}, []string{"u2", "u3", "u4"}, []string{"u1"}},
		{"mixed", []string{"u1", "u2", "u5"}, []string{"u3", "u5x"}, []string{"u1", "u2", "u4", "u5"}, []string{"u1", "u3", "u5"}},
		{"repeats", []string{"u3", "u3"}, []string{"u4", "u4"}, []string{"u1", "u2", "u3", "u5"}, []string{"u3", "u4"}},
		{"add and remove same absent", []string{"u4"}, []string{"u4"}, []string{"u1", "u2", "u3", "u5"}, nil},
		{"add and remove same present", []string{"u1"}, []string{"u1"}, []string{"u2", "u3", "u5"}, []string{"u1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			g := mustGetGroup(t, s, "g1")
			_, before := membershipState(t, s, "g1", users)
			upd := newGroup("g1", "Team")
			ch, err := s.UpdateGroup(ctx, upd, g.Version, st.add, st.remove)
			if err != nil {
				t.Fatalf("UpdateGroup: %v", err)
			}
			if upd.Version != g.Version+1 {
				t.Errorf("group version = %d, want %d", upd.Version, g.Version+1)
			}
			checkGroup(t, mustGetGroup(t, s, "g1"), upd)
			members, after := membershipState(t, s, "g1", users)
			if !slices.Equal(members, st.wantMembers) {
				t.Errorf("members = %v, want %v", members, st.wantMembers)
			}
			var want []store.Changed
			for _, u := range users {
				if slices.Contains(st.wantChanged, u) {
					want = append(want, store.Changed{ID: u, Version: before[u] + 1})
					checkPending(t, s, u, before[u]+1, upd.Modified)
					checkTime(t, u+" Modified", mustGet(t, s, u).Modified, upd.Modified)
				}
				wantV := before[u]
				if slices.Contains(st.wantChanged, u) {
					wantV++
				}
				if after[u] != wantV {
					t.Errorf("%s version = %d, want %d", u, after[u], wantV)
				}
			}
			checkChanged(t, "UpdateGroup", ch, want)
		})
	}
}

func testUpdateGroupRejected(t *testing.T, s store.Store) {
	ctx := t.Context()
	users := []string{"u1", "u2", "u3", "dead"}
	mustCreateN(t, s, users...)
	if _, err := s.DeleteIdentity(ctx, "dead", 1); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	mustCreateGroup(t, s, newGroup("g1", "Team"), "u1")
	mustCreateGroup(t, s, newGroup("g2", "Other"))
	g1 := mustGetGroup(t, s, "g1")
	members0, versions0 := membershipState(t, s, "g1", users)

	tests := []struct {
		name        string
		id, dn      string
		expected    int64
		add, remove []string
		want        error
		wantMissing []string
	}{
		{"stale version", "g1", "Team", 0, []string{"u2"}, []string{"u1"}, store.ErrVersionConflict, nil},
		{"future version", "g1", "Team", 2, []string{"u2"}, nil, store.ErrVersionConflict, nil},
		{"unknown group", "g9", "Nine", 1, []string{"u2"}, nil, store.ErrNotFound, nil},
		{"name taken", "g1", "OTHER", 1, []string{"u2"}, []string{"u1"}, store.ErrDisplayNameTaken, nil},
		{"unknown member", "g1", "Renamed", 1, []string{"u2", "ghost", "u3"}, []string{"u1"}, store.ErrNotFound, []string{"ghost"}},
		{"tombstone member", "g1", "Renamed", 1, []string{"dead", "u2"}, []string{"u1"}, store.ErrNotFound, []string{"dead"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := s.UpdateGroup(ctx, newGroup(tc.id, tc.dn), tc.expected, tc.add, tc.remove)
			wantErr(t, "UpdateGroup", err, tc.want)
			if len(ch) != 0 {
				t.Errorf("rejected UpdateGroup returned changes %v", ch)
			}
			if tc.wantMissing != nil {
				var mm *store.MissingMembersError
				if !errors.As(err, &mm) {
					t.Fatalf("err = %v, want *MissingMembersError", err)
				}
				if got := slices.Sorted(slices.Values(mm.IDs)); !slices.Equal(got, tc.wantMissing) {
					t.Errorf("missing = %v, want %v", got, tc.wantMissing)
				}
			}
			// Nothing written.
			checkGroup(t, mustGetGroup(t, s, "g1"), g1)
			members, versions := membershipState(t, s, "g1", users)
			if !slices.Equal(members, members0) {
				t.Errorf("members = %v, want %v", members, members0)
			}
			for u, v := range versions0 {
				if versions[u] != v {
					t.Errorf("%s version = %d, want %d", u, versions[u], v)
				}
			}
			if _, err := s.GetGroupByDisplayName(ctx, "Renamed"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("rejected update claimed the displayName: %v", err)
			}
		})
	}
}

func testDeleteGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateN(t, s, "u1", "u2", "u3")
	g := newGroup("g1", "Team")
	mustCreateGroup(t, s, g, "u1", "u2")
	mustCreateGroup(t, s, newGroup("g2", "Other"), "u1")
	before := map[string]int64{"u1": mustGet(t, s, "u1").Version, "u2": mustGet(t, s, "u2").Version}

	ch, err := s.DeleteGroup(ctx, "g1")
	if err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	checkChanged(t, "DeleteGroup", ch, []store.Changed{{ID: "u1", Version: before["u1"] + 1}, {ID: "u2", Version: before["u2"] + 1}})
	for _, c := range ch {
		if got := mustGet(t, s, c.ID); got.Version != c.Version {
			t.Errorf("%s version = %d, want %d", c.ID, got.Version, c.Version)
		}
		if p, ok := pendingOf(t, s, c.ID); !ok || p.Version != c.Version || p.Since.Before(g.Modified) {
			t.Errorf("pending %s = %v, %t; want version %d", c.ID, p, ok, c.Version)
		}
	}
	if got := mustGet(t, s, "u3"); got.Version != 1 {
		t.Errorf("u3 version = %d, want 1", got.Version)
	}
	_, err = s.GetGroup(ctx, "g1")
	wantErr(t, "GetGroup", err, store.ErrNotFound)
	_, err = s.GetGroupByDisplayName(ctx, "team")
	wantErr(t, "GetGroupByDisplayName", err, store.ErrNotFound)
	_, err = s.Members(ctx, "g1")
	wantErr(t, "Members", err, store.ErrNotFound)
	of, err := s.GroupsOf(ctx, "u1")
	if err != nil || !slices.Equal(ids(of, func(m store.Member) string { return m.GroupID }), []string{"g2"}) {
		t.Errorf("GroupsOf(u1) = %v, %v; want [g2]", of, err)
	}
	_, err = s.DeleteGroup(ctx, "g1")
	wantErr(t, "DeleteGroup again", err, store.ErrNotFound)
	_, err = s.UpdateGroup(ctx, newGroup("g1", "Team"), 1, nil, nil)
	wantErr(t, "UpdateGroup deleted", err, store.ErrNotFound)
	// A group with no members: no change.
	mustCreateGroup(t, s, newGroup("g3", "Empty"))
	if ch, err := s.DeleteGroup(ctx, "g3"); err != nil || len(ch) != 0 {
		t.Errorf("DeleteGroup(empty) = %v, %v", ch, err)
	}
	// The id and name can be used again.
	mustCreateGroup(t, s, newGroup("g1", "TEAM"), "u3")
}

func testMembersAndGroupsOf(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newIdentity("u1", "Alice@example.com", ""))
	mustCreate(t, s, newIdentity("u2", "bob@example.com", ""))
	mustCreate(t, s, newIdentity("u3", "carol@example.com", ""))
	mustCreateGroup(t, s, newGroup("g1", "Sales"), "u2", "u1")
	mustCreateGroup(t, s, newGroup("g2", "Support"), "u1")
	mustCreateGroup(t, s, newGroup("g3", "Empty"))

	sortMembers := func(m []store.Member) []store.Member {
		m = slices.Clone(m)
		slices.SortFunc(m, func(a, b store.Member) int {
			return strings.Compare(a.GroupID+"\x00"+a.UserID, b.GroupID+"\x00"+b.UserID)
		})
		return m
	}
	checkMembers := func(what string, got []store.Member, err error, want []store.Member) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		// GroupsOf need not fill UserDisplay, Members need not fill GroupName.
		got = sortMembers(got)
		for i := range got {
			if strings.HasPrefix(what, "Members") {
				got[i].GroupName = ""
			} else {
				got[i].UserDisplay = ""
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
	}
	read := func() {
		t.Helper()
		for _, tc := range []struct {
			gid  string
			want []store.Member
		}{
			{"g1", []store.Member{{GroupID: "g1", UserID: "u1", UserDisplay: mustGet(t, s, "u1").UserName}, {GroupID: "g1", UserID: "u2", UserDisplay: "bob@example.com"}}},
			{"g2", []store.Member{{GroupID: "g2", UserID: "u1", UserDisplay: mustGet(t, s, "u1").UserName}}},
			{"g3", nil},
		} {
			m, err := s.Members(ctx, tc.gid)
			checkMembers("Members("+tc.gid+")", m, err, tc.want)
		}
		for _, tc := range []struct {
			uid  string
			want []store.Member
		}{
			{"u1", []store.Member{{GroupID: "g1", GroupName: mustGetGroup(t, s, "g1").DisplayName, UserID: "u1"}, {GroupID: "g2", GroupName: "Support", UserID: "u1"}}},
			{"u2", []store.Member{{GroupID: "g1", GroupName: mustGetGroup(t, s, "g1").DisplayName, UserID: "u2"}}},
			{"u3", nil},
		} {
			m, err := s.GroupsOf(ctx, tc.uid)
			checkMembers("GroupsOf("+tc.uid+")", m, err, tc.want)
		}
	}
	read()
	// Renames show through: names are current, not copied at join time.
	if err := s.UpdateIdentity(ctx, newIdentity("u1", "alice.smith@example.com", ""), mustGet(t, s, "u1").Version); err != nil {
		t.Fatalf("UpdateIdentity: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, newGroup("g1", "Sales EMEA"), 1, nil, nil); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	read()
	_, err := s.Members(ctx, "nope")
	wantErr(t, "Members(unknown)", err, store.ErrNotFound)
	_, err = s.GroupsOf(ctx, "nope")
	wantErr(t, "GroupsOf(unknown)", err, store.ErrNotFound)
}

func testListGroupsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"g3", "g1", "g5", "g2", "g4", "g0"} {
		mustCreateGroup(t, s, newGroup(id, "Group "+id))
	}
	if _, err := s.DeleteGroup(ctx, "g0"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	want := []string{"g1", "g2", "g3", "g4", "g5"}
	list := func(cursor string, limit int) (store.Page[*store.Group], error) {
		return s.ListGroups(ctx, cursor, limit)
	}
	for _, tc := range []struct {
		limit     int
		wantSizes []int
	}{
		{1, []int{1, 1, 1, 1, 1}},
		{2, []int{2, 2, 1}},
		{5, []int{5}},
		{50, []int{5}},
	} {
		got, sizes := pageIDs(t, list, func(g *store.Group) string { return g.ID }, tc.limit)
		if !slices.Equal(got, want) || !slices.Equal(sizes, tc.wantSizes) {
			t.Errorf("limit %d: pages = %v sizes %v, want %v sizes %v", tc.limit, got, sizes, want, tc.wantSizes)
		}
	}
	page, err := s.ListGroups(ctx, "g4", 10)
	if err != nil || len(page.Items) != 1 || page.Next != "" {
		t.Fatalf("ListGroups after g4 = %v, %v", page, err)
	}
	checkGroup(t, page.Items[0], mustGetGroup(t, s, "g5"))
}

// ---- pending ----

func testPendingLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreate(t, s, newIdentity("u1", "a@example.com", ""))
	checkPending(t, s, "u1", 1, u.Modified)

	steps := []struct {
		name        string
		do          func() error
		wantPending bool
		wantVersion int64
	}{
		{"clear old version is a no-op", func() error { return s.ClearPending(ctx, "u1", 0) }, true, 1},
		{"clear future version is a no-op", func() error { return s.ClearPending(ctx, "u1", 2) }, true, 1},
		{"clear current", func() error { return s.ClearPending(ctx, "u1", 1) }, false, 0},
		{"clear again", func() error { return s.ClearPending(ctx, "u1", 1) }, false, 0},
		{"update marks pending", func() error { return s.UpdateIdentity(ctx, u, 1) }, true, 2},
		{"update again moves the mark", func() error { return s.UpdateIdentity(ctx, u, 2) }, true, 3},
		{"clear superseded version", func() error { return s.ClearPending(ctx, "u1", 2) }, true, 3},
		{"clear current again", func() error { return s.ClearPending(ctx, "u1", 3) }, false, 0},
		{"delete marks pending", func() error {
			tomb, err := s.DeleteIdentity(ctx, "u1", 3)
			if err == nil {
				*u = *tomb
			}
			return err
		}, true, 4},
		{"tombstone clears", func() error { return s.ClearPending(ctx, "u1", 4) }, false, 0},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		p, ok := pendingOf(t, s, "u1")
		if ok != st.wantPending || p.Version != st.wantVersion {
			t.Errorf("%s: pending = %v, %t; want version %d, %t", st.name, p, ok, st.wantVersion, st.wantPending)
		}
		if ok {
			checkTime(t, st.name+": Since", p.Since, u.Modified)
		}
	}
	wantErr(t, "ClearPending(unknown)", s.ClearPending(ctx, "nobody", 1), store.ErrNotFound)
}

func testPendingMembership(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateN(t, s, "u1", "u2")
	for _, id := range []string{"u1", "u2"} {
		if err := s.ClearPending(ctx, id, 1); err != nil {
			t.Fatalf("ClearPending: %v", err)
		}
	}
	g := newGroup("g1", "Team")
	mustCreateGroup(t, s, g, "u1")
	checkPending(t, s, "u1", 2, g.Modified)
	if _, ok := pendingOf(t, s, "u2"); ok {
		t.Errorf("u2 pending without a change")
	}
	// A group write that changes no membership marks nobody.
	if err := s.ClearPending(ctx, "u1", 2); err != nil {
		t.Fatalf("ClearPending: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, g, 1, []string{"u1"}, []string{"u2"}); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	if all, _ := s.ListPending(ctx, time.Now().Add(time.Hour), 10); len(all) != 0 {
		t.Errorf("pending after no-op membership change: %v", all)
	}
	if _, err := s.UpdateGroup(ctx, g, 2, []string{"u2"}, []string{"u1"}); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	checkPending(t, s, "u1", 3, g.Modified)
	checkPending(t, s, "u2", 2, g.Modified)
}

func testListPendingWindow(t *testing.T, s store.Store) {
	ctx := t.Context()
	var created []*store.Identity
	for _, id := range []string{"p1", "p2", "p3", "p4", "p5"} {
		created = append(created, mustCreate(t, s, newIdentity(id, id+"@example.com", "")))
	}
	if err := s.ClearPending(ctx, "p3", 1); err != nil {
		t.Fatalf("ClearPending: %v", err)
	}
	since := map[string]time.Time{}
	for _, u := range created {
		if u.ID != "p3" {
			since[u.ID] = u.Modified
		}
	}
	// Expected answers are derived from the stored times themselves, so
	// equal timestamps from a coarse clock do not make the test flaky.
	expect := func(olderThan time.Time) []string {
		var out []string
		for id, t := range since {
			if t.Before(olderThan) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	p2 := created[1].Modified
	tests := []struct {
		name      string
		olderThan time.Time
		limit     int
	}{
		{"before all", created[0].Modified.Add(-time.Second), 10},
		{"at first is exclusive", created[0].Modified, 10},
		{"just after first", created[0].Modified.Add(time.Nanosecond), 10},
		{"at p2", p2, 10},
		{"just after p2", p2.Add(time.Millisecond), 10},
		{"after all", time.Now().Add(time.Hour), 10},
		{"non-UTC bound", time.Now().Add(time.Hour).In(time.FixedZone("X", -7*3600)), 10},
		{"limit", time.Now().Add(time.Hour), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListPending(ctx, tc.olderThan, tc.limit)
			if err != nil {
				t.Fatalf("ListPending: %v", err)
			}
			want := expect(tc.olderThan)
			if len(got) > tc.limit {
				t.Fatalf("ListPending returned %d > limit %d", len(got), tc.limit)
			}
			for i, p := range got {
				if !p.Since.Before(tc.olderThan) {
					t.Errorf("%s pending since %v, not before %v", p.ID, p.Since, tc.olderThan)
				}
				if p.Version != 1 || !sameTime(p.Since, since[p.ID]) {
					t.Errorf("pending %v, want version 1 since %v", p, since[p.ID])
				}
				if i > 0 && p.Since.Before(got[i-1].Since) {
					t.Errorf("ListPending not oldest first: %v", got)
				}
			}
			gotIDs := ids(got, func(p store.Pending) string { return p.ID })
			slices.Sort(gotIDs)
			if len(want) > tc.limit {
				// Which of equal-time entries make the cut is unspecified;
				// the oldest must.
				if len(got) != tc.limit {
					t.Errorf("got %v, want %d of %v", gotIDs, tc.limit, want)
				}
				return
			}
			if !slices.Equal(gotIDs, want) {
				t.Errorf("got %v, want %v", gotIDs, want)
			}
		})
	}
}

// ---- links ----

func testLinks(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetLink(ctx, "u1", "absorb")
	wantErr(t, "GetLink(none)", err, store.ErrNotFound)

	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	steps := []struct {
		name    string
		link    store.Link
		want    error
		wantVer int64
	}{
		{"first", store.Link{IdentityID: "u1", Target: "absorb", LearnerID: "L-1", ExternalID: "00u1", SyncedVersion: 3, Hash: "h3", Applied: []string{"rule-a", "rule-b"}, Updated: at}, nil, 3},
		{"equal version", store.Link{IdentityID: "u1", Target: "absorb", LearnerID: "L-1", ExternalID: "00u1", SyncedVersion: 3, Hash: "h3b", Updated: at}, nil, 3},
		{"higher version", store.Link{IdentityID: "u1", Target: "absorb", LearnerID: "L-1", ExternalID: "00u1", SyncedVersion: 5, Hash: "h5", Applied: []string{"rule-a"}, Updated: at.Add(time.Second)}, nil, 5},
		{"lower version", store.Link{IdentityID: "u1", Target: "absorb", LearnerID: "L-OLD", SyncedVersion: 4, Hash: "h4", Updated: at}, store.ErrVersionConflict, 5},
		{"other target", store.Link{IdentityID: "u1", Target: "onelogin", LearnerID: "OL-9", SyncedVersion: 1, Hash: "x"}, nil, 1},
	}
	stored := map[string]store.Link{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			l := st.link
			err := s.PutLink(ctx, &l)
			if st.want != nil {
				wantErr(t, "PutLink", err, st.want)
			} else if err != nil {
				t.Fatalf("PutLink: %v", err)
			} else {
				stored[l.Target] = l
			}
			got, err := s.GetLink(ctx, "u1", l.Target)
			if err != nil {
				t.Fatalf("GetLink: %v", err)
			}
			want := stored[l.Target]
			if got.SyncedVersion != st.wantVer || got.IdentityID != want.IdentityID || got.Target != want.Target ||
				got.LearnerID != want.LearnerID || got.ExternalID != want.ExternalID || got.SyncedVersion != want.SyncedVersion ||
				got.Hash != want.Hash || !slices.Equal(got.Applied, want.Applied) {
				t.Errorf("GetLink = %+v, want %+v", got, want)
			}
			if want.Updated.IsZero() {
				t.Errorf("PutLink did not set Updated")
			}
			checkTime(t, "Updated", got.Updated, want.Updated)
		})
	}
	_, err = s.GetLink(ctx, "u2", "absorb")
	wantErr(t, "GetLink(other identity)", err, store.ErrNotFound)
	_, err = s.GetLink(ctx, "u1", "scim")
	wantErr(t, "GetLink(other target)", err, store.ErrNotFound)
}

func testListLinksPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"u4", "u2", "u5", "u1", "u3"} {
		for _, target := range []string{"absorb", "onelogin"} {
			if target == "onelogin" && id > "u2" {
				continue
			}
			if err := s.PutLink(ctx, &store.Link{IdentityID: id, Target: target, LearnerID: "L-" + id, SyncedVersion: 1}); err != nil {
				t.Fatalf("PutLink: %v", err)
			}
		}
	}
	linkID := func(l *store.Link) string { return l.IdentityID }
	for _, tc := range []struct {
		target    string
		limit     int
		want      []string
		wantSizes []int
	}{
		{"absorb", 2, []string{"u1", "u2", "u3", "u4", "u5"}, []int{2, 2, 1}},
		{"absorb", 5, []string{"u1", "u2", "u3", "u4", "u5"}, []int{5}},
		{"onelogin", 1, []string{"u1", "u2"}, []int{1, 1}},
		{"scim", 10, nil, []int{0}},
	} {
		list := func(cursor string, limit int) (store.Page[*store.Link], error) {
			return s.ListLinks(ctx, tc.target, cursor, limit)
		}
		got, sizes := pageIDs(t, list, linkID, tc.limit)
		if !slices.Equal(got, tc.want) || !slices.Equal(sizes, tc.wantSizes) {
			t.Errorf("%s limit %d: %v sizes %v, want %v sizes %v", tc.target, tc.limit, got, sizes, tc.want, tc.wantSizes)
		}
	}
	page, err := s.ListLinks(ctx, "absorb", "u4", 10)
	if err != nil || len(page.Items) != 1 || page.Items[0].LearnerID != "L-u5" || page.Items[0].Target != "absorb" {
		t.Errorf("ListLinks after u4 = %+v, %v", page, err)
	}
}

// ---- audit ----

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ListAudit(ctx, "u1", 10); err != nil || len(got) != 0 {
		t.Errorf("ListAudit(empty) = %v, %v", got, err)
	}
	base := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("PDT", -7*3600))
	records := []store.AuditRecord{
		{IdentityID: "u1", Time: base.Add(2 * time.Second), Target: "absorb", Actor: "worker", Action: "learner.update", Detail: "fields: email", SourceVersion: 3, Reason: "identity.updated", RequestID: "r3", Result: "ok"},
		{IdentityID: "u1", Time: base, Target: "absorb", Actor: "worker", Action: "learner.create", SourceVersion: 1, Reason: "identity.created", RequestID: "r1", Result: "ok"},
		{IdentityID: "u2", Time: base.Add(time.Second), Actor: "scim", Action: "identity.create", Result: "ok"},
		{IdentityID: "u1", Time: base.Add(time.Second + time.Millisecond), Target: "absorb", Actor: "rules", Action: "enroll", Detail: "rule: onboarding", SourceVersion: 2, Result: "error: 429"},
	}
	for i := range records {
		r := records[i]
		if err := s.AppendAudit(ctx, &r); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	zero := store.AuditRecord{IdentityID: "u3", Actor: "worker", Action: "learner.deactivate"}
	if err := s.AppendAudit(ctx, &zero); err != nil || zero.Time.IsZero() {
		t.Fatalf("AppendAudit(zero time) = %v, Time %v", err, zero.Time)
	}

	tests := []struct {
		id    string
		limit int
		want  []int // indexes into records, newest first
	}{
		{"u1", 10, []int{0, 3, 1}},
		{"u1", 2, []int{0, 3}},
		{"u1", 1, []int{0}},
		{"u2", 10, []int{2}},
		{"u9", 10, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.id, tc.limit), func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.id, tc.limit)
			if err != nil {
				t.Fatalf("ListAudit: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ListAudit = %d records, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, idx := range tc.want {
				want := records[idx]
				checkTime(t, "Time", got[i].Time, want.Time)
				got[i].Time, want.Time = time.Time{}, time.Time{}
				if got[i] != want {
					t.Errorf("record %d = %+v, want %+v", i, got[i], want)
				}
			}
		})
	}
	got, err := s.ListAudit(ctx, "u3", 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("ListAudit(u3) = %v, %v", got, err)
	}
	checkTime(t, "defaulted Time", got[0].Time, zero.Time)
}

// testRejectsEmptyKeys: ids and unique names cannot be empty.
func testRejectsEmptyKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newIdentity("u1", "a@example.com", ""))
	mustCreateGroup(t, s, newGroup("g1", "Team"))
	tests := []struct {
		name string
		err  error
	}{
		{"identity id", s.CreateIdentity(ctx, newIdentity("", "b@example.com", ""))},
		{"identity userName", s.CreateIdentity(ctx, newIdentity("u2", "", ""))},
		{"update to empty userName", s.UpdateIdentity(ctx, newIdentity("u1", "", ""), 1)},
		{"group id", func() error { _, err := s.CreateGroup(ctx, newGroup("", "Other"), nil); return err }()},
		{"group displayName", func() error { _, err := s.CreateGroup(ctx, newGroup("g2", ""), nil); return err }()},
		{"update to empty displayName", func() error { _, err := s.UpdateGroup(ctx, newGroup("g1", ""), 1, nil, nil); return err }()},
		{"link identity", s.PutLink(ctx, &store.Link{Target: "absorb", SyncedVersion: 1})},
		{"link target", s.PutLink(ctx, &store.Link{IdentityID: "u1", SyncedVersion: 1})},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if got := mustGet(t, s, "u1"); got.Version != 1 {
		t.Errorf("u1 version = %d, want 1", got.Version)
	}
	if n, err := s.CountIdentities(ctx); err != nil || n != 1 {
		t.Errorf("CountIdentities = %d, %v; want 1", n, err)
	}
}

// ---- concurrency ----

const racers = 8

func testConcurrentCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			name := "Race@Example.com"
			if i%2 == 1 {
				name = strings.ToLower(name)
			}
			errs[i] = s.CreateIdentity(ctx, newIdentity(fmt.Sprintf("r%d", i), name, ""))
		})
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrUserNameTaken):
			t.Errorf("racer %d: %v, want nil or ErrUserNameTaken", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d racers created the same userName, want exactly 1", winners)
	}
	if n, err := s.CountIdentities(ctx); err != nil || n != 1 {
		t.Errorf("CountIdentities = %d, %v; want 1", n, err)
	}
}

func testConcurrentUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newIdentity("u1", "a@example.com", ""))
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			errs[i] = s.UpdateIdentity(ctx, newIdentity("u1", fmt.Sprintf("a%d@example.com", i), ""), 1)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("racers %d and %d both updated version 1", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrVersionConflict):
			t.Errorf("racer %d: %v, want nil or ErrVersionConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won")
	}
	got := mustGet(t, s, "u1")
	if got.Version != 2 || got.UserName != fmt.Sprintf("a%d@example.com", winner) {
		t.Errorf("after race %s, want version 2 by racer %d", brief(got), winner)
	}
	// Only the winner's userName is held.
	for i := range racers {
		_, err := s.GetIdentityByUserName(ctx, fmt.Sprintf("a%d@example.com", i))
		if (i == winner) != (err == nil) {
			t.Errorf("GetIdentityByUserName(racer %d) = %v", i, err)
		}
	}
}

// testConcurrentGroupUpdates races distinct member additions to one group,
// each retrying on version conflicts: all must land, each member bumped once.
func testConcurrentGroupUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	users := make([]string, racers)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	mustCreateN(t, s, users...)
	mustCreateGroup(t, s, newGroup("g1", "Team"))
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
				_, err = s.UpdateGroup(ctx, g, g.Version, []string{users[i]}, nil)
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
	members, versions := membershipState(t, s, "g1", users)
	if !slices.Equal(members, users) {
		t.Errorf("members = %v, want %v", members, users)
	}
	for u, v := range versions {
		if v != 2 {
			t.Errorf("%s version = %d, want 2", u, v)
		}
	}
	if g := mustGetGroup(t, s, "g1"); g.Version != racers+1 {
		t.Errorf("group version = %d, want %d", g.Version, racers+1)
	}
}
