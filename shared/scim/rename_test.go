package scim_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/scim"
)

// intentGolden is a golden exchange plus the intents it queued.
type intentGolden struct {
	golden
	Intents []goldenIntent `json:"intents"`
}

type goldenIntent struct {
	Identity string `json:"identity"`
	Version  int64  `json:"version"`
	Reason   string `json:"reason"`
}

// TestGoldenRenameIntents: a group's name is part of each member's
// desired state, so a rename, however it is sent (Okta's path-less
// replace, Entra's path, PUT), queues one intent per member with its new
// version, together with membership changes in the same request (each
// identity once); a request that keeps the name queues nothing.
// testdata/golden/group-rename-*.json record the exchanges and intents.
func TestGoldenRenameIntents(t *testing.T) {
	e := newEnv(t, func(c *scim.Config) { c.Now = fixedClock(); c.NewID = seqIDs() })
	norm := newNormaliser()
	var users []string
	for _, u := range []string{"jane@atko.example", "adele@atko.example", "bob@atko.example", "carol@atko.example"} {
		users = append(users, e.createUser(u))
	}
	for _, id := range users {
		norm.str(id) // placeholders <id-1>… in creation order
	}
	gid := e.createGroup("Sales Learners", users[0], users[1], users[2])
	norm.str(gid)
	e.q.all()
	patch := func(ops ...string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
	}
	put := func(name string, members ...string) string {
		var ms []string
		for _, m := range members {
			ms = append(ms, `{"value":"`+m+`"}`)
		}
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"` + gid + `","displayName":"` + name + `","members":[` + strings.Join(ms, ",") + `]}`
	}
	path := "/scim/v2/Groups/" + gid
	cases := []goldenCase{
		// As Okta's Push Groups sends a rename (OKTA.md): a path-less
		// replace carrying the id and the new displayName.
		{name: "group-rename-okta-patch", method: "PATCH", path: path,
			body: patch(`{"op":"replace","value":{"id":"` + gid + `","displayName":"EMEA Sales Learners"}}`)},
		{name: "group-rename-okta-patch-same-name", method: "PATCH", path: path,
			body: patch(`{"op":"replace","value":{"id":"` + gid + `","displayName":"EMEA Sales Learners"}}`)},
		{name: "group-rename-case-only", method: "PATCH", path: path,
			body: patch(`{"op":"replace","value":{"id":"` + gid + `","displayName":"EMEA SALES LEARNERS"}}`)},
		{name: "group-rename-entra-with-members", method: "PATCH", path: path, body: patch(
			`{"op":"Replace","path":"displayName","value":"Sales Learners EU"}`,
			`{"op":"Add","path":"members","value":[{"value":"`+users[3]+`"},{"value":"`+users[0]+`"}]}`,
			`{"op":"Remove","path":"members","value":[{"value":"`+users[1]+`"}]}`)},
		{name: "group-rename-other-attribute", method: "PATCH", path: path,
			body: patch(`{"op":"replace","path":"externalId","value":"00gSALES"}`)},
		{name: "group-rename-put", method: "PUT", path: path, body: put("Global Sales", users[0], users[1])},
		{name: "group-rename-put-same", method: "PUT", path: path, body: put("Global Sales", users[0], users[1])},
	}
	for _, gc := range cases {
		t.Run(gc.name, func(t *testing.T) {
			before := len(e.q.all())
			got := intentGolden{golden: record(e, norm, gc)}
			queued := e.q.all()[before:]
			slices.SortFunc(queued, func(a, b queue.Intent) int { return strings.Compare(a.IdentityID, b.IdentityID) })
			got.Intents = []goldenIntent{}
			for i, in := range queued {
				if i > 0 && queued[i-1].IdentityID == in.IdentityID {
					t.Errorf("%s queued twice", in.IdentityID)
				}
				cur, err := e.st.GetIdentity(t.Context(), in.IdentityID)
				if err != nil || cur.Version != in.Version {
					t.Errorf("intent %+v; stored %v, %v", in, cur, err)
				}
				got.Intents = append(got.Intents, goldenIntent{Identity: norm.str(in.IdentityID), Version: in.Version, Reason: in.Reason})
			}
			checkGolden(t, gc.name, got)
		})
	}
}
