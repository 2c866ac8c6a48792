package hooks_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// TestGroupRename: Okta renaming a group reaches the hooks either as
// group.profile.update or through a membership event naming the group
// anew. Either way every member's desired state changes, so each member
// is bumped once and gets one intent, exactly as for a SCIM rename.
func TestGroupRename(t *testing.T) {
	t.Parallel()
	const bobID = "00u2bob00ABCDEFgh3ij"
	// event builds a one-event delivery shaped like the samples: the
	// targets are (id, type, displayName) triples.
	event := func(uuid, typ string, targets ...[3]string) string {
		ev := sampleEvents(t, "group-user-membership-add")[0]
		ev["uuid"], ev["eventType"] = uuid, typ
		var ts []any
		for _, tg := range targets {
			ts = append(ts, map[string]any{"id": tg[0], "type": tg[1], "alternateId": "unknown", "displayName": tg[2]})
		}
		ev["target"] = ts
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"events": []any{ev}}})
		return string(b)
	}
	jane := [3]string{janeID, "User", "Jane Doe"}
	bob := [3]string{bobID, "User", "Bob Builder"}
	sales := func(name string) [3]string { return [3]string{salesID, "UserGroup", name} }

	e := newEnv(t, true, nil)
	e.send(t, sample(t, "user-lifecycle-create"))
	ctx := t.Context()
	if err := e.st.CreateIdentity(ctx, &store.Identity{ID: "bob", UserName: "bob@example.com", ExternalID: bobID, Active: true,
		Resource: []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@example.com","active":true}`)}); err != nil {
		t.Fatal(err)
	}
	janeIdentity := e.jane(t).ID
	e.q.take()

	steps := []struct {
		name      string
		body      string
		wantNames map[string][]string // identity → its groups' names
		wantQueue []string            // identities queued, each once
		reason    string
	}{
		{"jane joins: the group is created", event("r1", "group.user_membership.add", jane, sales("Sales EMEA")),
			map[string][]string{janeIdentity: {"Sales EMEA"}, "bob": nil}, []string{janeIdentity}, "hook.group.user_membership.add"},
		{"bob joins", event("r2", "group.user_membership.add", bob, sales("Sales EMEA")),
			map[string][]string{janeIdentity: {"Sales EMEA"}, "bob": {"Sales EMEA"}}, []string{"bob"}, "hook.group.user_membership.add"},
		{"profile update renames: every member queued", event("r3", "group.profile.update", sales("Sales Europe")),
			map[string][]string{janeIdentity: {"Sales Europe"}, "bob": {"Sales Europe"}}, []string{"bob", janeIdentity}, "hook.group.profile.update"},
		{"profile update without a new name: nothing queued", event("r4", "group.profile.update", sales("Sales Europe")),
			map[string][]string{janeIdentity: {"Sales Europe"}, "bob": {"Sales Europe"}}, nil, ""},
		{"profile update of an unknown group: nothing created", event("r5", "group.profile.update", [3]string{"00g1never0000000000", "UserGroup", "Never"}),
			map[string][]string{janeIdentity: {"Sales Europe"}, "bob": {"Sales Europe"}}, nil, ""},
		{"membership event under a new name: removed and renamed, each once", event("r6", "group.user_membership.remove", jane, sales("Sales World")),
			map[string][]string{janeIdentity: nil, "bob": {"Sales World"}}, []string{"bob", janeIdentity}, "hook.group.user_membership.remove"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if r := e.post(t, s.body, secret); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			for id, want := range s.wantNames {
				if got := e.groupsOf(t, id); !slices.Equal(got, want) {
					t.Errorf("groups of %s = %v, want %v", id, got, want)
				}
			}
			got := e.q.take()
			slices.SortFunc(got, func(a, b queue.Intent) int { return strings.Compare(a.IdentityID, b.IdentityID) })
			var ids []string
			for _, in := range got {
				ids = append(ids, in.IdentityID)
				cur, err := e.st.GetIdentity(ctx, in.IdentityID)
				if err != nil || in.Version != cur.Version || in.Reason != s.reason {
					t.Errorf("intent %+v; want version %d, reason %s (%v)", in, cur.Version, s.reason, err)
				}
			}
			if want := slices.Sorted(slices.Values(s.wantQueue)); !slices.Equal(ids, want) {
				t.Errorf("queued %v, want %v", ids, want)
			}
		})
	}
	if _, n, _ := e.written(t); n != 1 {
		t.Errorf("%d groups, want 1", n)
	}
}
