package scimtest

import (
	"net/http"
	"strings"
	"testing"
)

// OktaSpec runs every step of Okta's SCIM 2.0 spec test (the conformance
// run required for app submission) against baseURL (e.g.
// http://127.0.0.1:8080/scim/v2) with bearer token.
//
// Step 2 reads the first listed user; on an empty server the suite first
// creates one (and deletes it at the end) so the step has a user to read.
func OktaSpec(t *testing.T, baseURL, token string) {
	c := newClient(t, baseURL, token)
	sfx := suffix()
	var first map[string]any

	listFirst := func(t *testing.T) []map[string]any {
		return c.do(t, http.MethodGet, "/Users?count=1&startIndex=1", nil).list(t, "GET /Users?count=1&startIndex=1")
	}
	step(t, "1 list users count=1 startIndex=1", func(t *testing.T) {
		users := listFirst(t)
		if len(users) == 0 {
			seed := oktaUser("seed" + sfx)
			res := c.do(t, http.MethodPost, "/Users", seed).expect(t, "seed POST /Users", http.StatusCreated)
			c.cleanup("/Users/" + res.Body["id"].(string))
			users = listFirst(t)
		}
		if len(users) != 1 {
			t.Fatalf("count=1 returned %d Resources", len(users))
		}
		first = users[0]
	})
	step(t, "2 get first user by id", func(t *testing.T) {
		id, _ := first["id"].(string)
		if id == "" {
			t.Fatalf("listed user has no id: %v", first)
		}
		res := c.do(t, http.MethodGet, "/Users/"+id, nil).expect(t, "GET /Users/{id}", http.StatusOK)
		if res.Body["id"] != id {
			t.Fatalf("id = %v, want %s", res.Body["id"], id)
		}
	})
	step(t, "3 filter unknown userName", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users"+filterQuery(`userName eq "unknown.`+sfx+`@atko.example"`), nil)
		if got := res.list(t, "filter unknown userName"); len(got) != 0 || res.total() != 0 {
			t.Fatalf("totalResults %d, Resources %d; want 0", res.total(), len(got))
		}
	})
	step(t, "4 get random id is 404", func(t *testing.T) {
		c.do(t, http.MethodGet, "/Users/010101"+sfx, nil).expectError(t, "GET /Users/<random>", http.StatusNotFound, "")
	})
	user := oktaUser(sfx)
	step(t, "5 filter new userName before create", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users"+filterQuery(`userName eq "`+user["userName"].(string)+`"`), nil)
		if got := res.list(t, "filter new userName"); len(got) != 0 || res.total() != 0 {
			t.Fatalf("totalResults %d; want 0", res.total())
		}
	})
	var id string
	step(t, "6 create user", func(t *testing.T) {
		res := c.do(t, http.MethodPost, "/Users", user).expect(t, "POST /Users", http.StatusCreated)
		id, _ = res.Body["id"].(string)
		if id == "" {
			t.Fatalf("no id in %s", res.Raw)
		}
		c.cleanup("/Users/" + id)
		if res.Body["active"] != true {
			t.Errorf("active = %v, want true", res.Body["active"])
		}
		checkUserValues(t, "POST /Users", user, res.Body)
		if loc := res.Header.Get("Location"); !strings.HasSuffix(loc, "/Users/"+id) {
			t.Errorf("Location = %q, want …/Users/%s", loc, id)
		}
	})
	step(t, "7 get new user", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users/"+id, nil).expect(t, "GET /Users/{new id}", http.StatusOK)
		checkUserValues(t, "GET /Users/{new id}", user, res.Body)
		if res.Body["active"] != true {
			t.Errorf("active = %v, want true", res.Body["active"])
		}
	})
	step(t, "8 create same user again is 409", func(t *testing.T) {
		c.do(t, http.MethodPost, "/Users", user).expectError(t, "POST /Users duplicate", http.StatusConflict, "uniqueness")
	})
	step(t, "9 filter userName in another case finds the user", func(t *testing.T) {
		swapped := strings.ToUpper(user["userName"].(string))
		res := c.do(t, http.MethodGet, "/Users"+filterQuery(`userName eq "`+swapped+`"`), nil)
		got := res.list(t, "filter userName case-insensitively")
		if res.total() != 1 || len(got) != 1 || got[0]["id"] != id {
			t.Fatalf("totalResults %d, Resources %v; want the user %s", res.total(), got, id)
		}
	})
	step(t, "10 list groups count=1 startIndex=1", func(t *testing.T) {
		c.do(t, http.MethodGet, "/Groups?count=1&startIndex=1", nil).list(t, "GET /Groups?count=1&startIndex=1")
	})
}

// OktaCRUD runs Okta's CRUD test: create, read, PUT with changed names,
// PATCH active:false, read back inactive.
func OktaCRUD(t *testing.T, baseURL, token string) {
	c := newClient(t, baseURL, token)
	sfx := suffix()
	user := oktaUser(sfx)
	var id string
	step(t, "create", func(t *testing.T) {
		res := c.do(t, http.MethodPost, "/Users", user).expect(t, "POST /Users", http.StatusCreated)
		id, _ = res.Body["id"].(string)
		if id == "" {
			t.Fatalf("no id in %s", res.Raw)
		}
		c.cleanup("/Users/" + id)
		checkUserValues(t, "POST /Users", user, res.Body)
	})
	step(t, "read", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users/"+id, nil).expect(t, "GET /Users/{id}", http.StatusOK)
		checkUserValues(t, "GET /Users/{id}", user, res.Body)
	})
	step(t, "PUT with changed names", func(t *testing.T) {
		user["id"] = id
		user["name"] = map[string]any{"givenName": "Janet", "familyName": "Doe-Smith-" + sfx}
		user["displayName"] = "Janet Doe-Smith"
		res := c.do(t, http.MethodPut, "/Users/"+id, user).expect(t, "PUT /Users/{id}", http.StatusOK)
		checkUserValues(t, "PUT /Users/{id}", user, res.Body)
		res = c.do(t, http.MethodGet, "/Users/"+id, nil).expect(t, "GET after PUT", http.StatusOK)
		checkUserValues(t, "GET after PUT", user, res.Body)
	})
	deactivate := map[string]any{
		"schemas":    []string{URNPatchOp},
		"Operations": []any{map[string]any{"op": "replace", "value": map[string]any{"active": false}}},
	}
	step(t, "PATCH active false", func(t *testing.T) {
		res := c.do(t, http.MethodPatch, "/Users/"+id, deactivate).expect(t, "PATCH deactivate", http.StatusOK)
		if res.Body["active"] != false {
			t.Fatalf("active = %v, want false", res.Body["active"])
		}
		checkUserValues(t, "PATCH deactivate", user, res.Body)
	})
	step(t, "read back inactive", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users/"+id, nil).expect(t, "GET after deactivate", http.StatusOK)
		if res.Body["active"] != false {
			t.Fatalf("active = %v, want false", res.Body["active"])
		}
	})
}

// OktaPushGroups runs the sequence Okta's Push Groups sends: look up by
// displayName, create with members, read without members, add and remove
// members, rename through a path-less replace, PUT, and delete.
func OktaPushGroups(t *testing.T, baseURL, token string) {
	c := newClient(t, baseURL, token)
	sfx := suffix()
	var u1, u2 string
	step(t, "create users", func(t *testing.T) {
		for i, id := range []*string{&u1, &u2} {
			u := oktaUser(sfx + string(rune('a'+i)))
			res := c.do(t, http.MethodPost, "/Users", u).expect(t, "POST /Users", http.StatusCreated)
			*id = res.Body["id"].(string)
			c.cleanup("/Users/" + *id)
		}
	})
	name := "LMS Learners " + sfx
	step(t, "filter displayName before create", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Groups"+filterQuery(`displayName eq "`+name+`"`), nil)
		if got := res.list(t, "filter displayName"); len(got) != 0 || res.total() != 0 {
			t.Fatalf("totalResults %d; want 0", res.total())
		}
	})
	var gid string
	step(t, "create group with a member", func(t *testing.T) {
		res := c.do(t, http.MethodPost, "/Groups", map[string]any{
			"schemas":     []string{URNGroup},
			"displayName": name,
			"members":     []any{map[string]any{"value": u1, "display": "Jane Doe"}},
		}).expect(t, "POST /Groups", http.StatusCreated)
		gid, _ = res.Body["id"].(string)
		if gid == "" {
			t.Fatalf("no id: %s", res.Raw)
		}
		c.cleanup("/Groups/" + gid)
		if res.Body["displayName"] != name {
			t.Errorf("displayName = %v", res.Body["displayName"])
		}
		expectMembers(t, res.Body, u1)
		c.do(t, http.MethodPost, "/Groups", map[string]any{"schemas": []string{URNGroup}, "displayName": strings.ToUpper(name)}).
			expectError(t, "POST /Groups duplicate displayName", http.StatusConflict, "uniqueness")
	})
	step(t, "filter displayName finds it", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Groups"+filterQuery(`displayName eq "`+name+`"`)+"&excludedAttributes=members", nil)
		got := res.list(t, "filter displayName")
		if len(got) != 1 || got[0]["id"] != gid {
			t.Fatalf("Resources %v; want group %s", got, gid)
		}
		if _, ok := got[0]["members"]; ok {
			t.Errorf("excludedAttributes=members still returned members")
		}
	})
	step(t, "get without members", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Groups/"+gid+"?excludedAttributes=members", nil).expect(t, "GET /Groups/{id}", http.StatusOK)
		if _, ok := res.Body["members"]; ok {
			t.Errorf("excludedAttributes=members still returned members")
		}
		if res.Body["displayName"] != name || res.Body["id"] != gid {
			t.Errorf("group = %s", res.Raw)
		}
	})
	patch := func(t *testing.T, what string, ops ...any) {
		t.Helper()
		c.do(t, http.MethodPatch, "/Groups/"+gid, map[string]any{"schemas": []string{URNPatchOp}, "Operations": ops}).
			expect(t, what, http.StatusOK, http.StatusNoContent)
	}
	members := func(t *testing.T, want ...string) {
		t.Helper()
		res := c.do(t, http.MethodGet, "/Groups/"+gid, nil).expect(t, "GET /Groups/{id}", http.StatusOK)
		expectMembers(t, res.Body, want...)
	}
	step(t, "add member", func(t *testing.T) {
		patch(t, "PATCH add members", map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": u2, "display": "Jane Doe"}}})
		members(t, u1, u2)
	})
	step(t, "user shows its group", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users/"+u2, nil).expect(t, "GET /Users/{id}", http.StatusOK)
		gs, _ := res.Body["groups"].([]any)
		if len(gs) != 1 || get(gs[0].(map[string]any), "value") != gid {
			t.Fatalf("groups = %v, want [%s]", res.Body["groups"], gid)
		}
	})
	step(t, "remove member by value filter", func(t *testing.T) {
		patch(t, "PATCH remove member", map[string]any{"op": "remove", "path": `members[value eq "` + u1 + `"]`})
		members(t, u2)
	})
	newName := name + " renamed"
	step(t, "rename with path-less replace", func(t *testing.T) {
		patch(t, "PATCH replace id+displayName", map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": newName}})
		res := c.do(t, http.MethodGet, "/Groups/"+gid+"?excludedAttributes=members", nil).expect(t, "GET after rename", http.StatusOK)
		if res.Body["displayName"] != newName {
			t.Fatalf("displayName = %v, want %s", res.Body["displayName"], newName)
		}
	})
	step(t, "PUT group", func(t *testing.T) {
		res := c.do(t, http.MethodPut, "/Groups/"+gid, map[string]any{
			"schemas":     []string{URNGroup},
			"id":          gid,
			"displayName": name,
			"members":     []any{map[string]any{"value": u1}},
		}).expect(t, "PUT /Groups/{id}", http.StatusOK)
		if res.Body["displayName"] != name {
			t.Errorf("displayName = %v", res.Body["displayName"])
		}
		expectMembers(t, res.Body, u1)
	})
	step(t, "delete group", func(t *testing.T) {
		c.do(t, http.MethodDelete, "/Groups/"+gid, nil).expect(t, "DELETE /Groups/{id}", http.StatusNoContent)
		c.do(t, http.MethodGet, "/Groups/"+gid, nil).expectError(t, "GET deleted group", http.StatusNotFound, "")
	})
}

// expectMembers checks a group's member ids (order-insensitive).
func expectMembers(t *testing.T, group map[string]any, want ...string) {
	t.Helper()
	raw, _ := group["members"].([]any)
	got := map[string]bool{}
	for _, m := range raw {
		obj, _ := m.(map[string]any)
		id, _ := obj["value"].(string)
		got[id] = true
	}
	ok := len(got) == len(want)
	for _, w := range want {
		ok = ok && got[w]
	}
	if !ok {
		t.Fatalf("members = %v, want %v", raw, want)
	}
}
