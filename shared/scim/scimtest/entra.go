package scimtest

import (
	"net/http"
	"testing"
)

// EntraShapes sends the request shapes Microsoft Entra ID's provisioning
// service uses: existence checks by userName and externalId, capitalised
// PATCH ops, string booleans, value-filter paths that create missing
// elements, enterprise-extension paths (manager as a bare id or an
// object), path-less values with URN-qualified keys, group membership
// add/remove with a value array, and DELETE.
func EntraShapes(t *testing.T, baseURL, token string) {
	c := newClient(t, baseURL, token)
	sfx := suffix()
	userName := "entra." + sfx + "@contoso.example"
	var id, mgr string
	patchUser := func(t *testing.T, what string, ops ...any) map[string]any {
		t.Helper()
		return c.do(t, http.MethodPatch, "/Users/"+id, map[string]any{"schemas": []string{URNPatchOp}, "Operations": ops}).
			expect(t, what, http.StatusOK).Body
	}
	step(t, "existence check by userName", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users"+filterQuery(`userName eq "`+userName+`"`), nil)
		if res.list(t, "filter userName"); res.total() != 0 {
			t.Fatalf("totalResults %d, want 0", res.total())
		}
	})
	step(t, "create manager and user", func(t *testing.T) {
		res := c.do(t, http.MethodPost, "/Users", map[string]any{
			"schemas":  []string{URNUser},
			"userName": "manager." + sfx + "@contoso.example",
			"active":   true,
		}).expect(t, "POST manager", http.StatusCreated)
		mgr = res.Body["id"].(string)
		c.cleanup("/Users/" + mgr)
		user := map[string]any{
			"schemas":     []string{URNUser, URNEnterprise},
			"externalId":  "ext-" + sfx,
			"userName":    userName,
			"active":      true,
			"displayName": "Entra User",
			"emails":      []any{map[string]any{"primary": true, "type": "work", "value": userName}},
			"meta":        map[string]any{"resourceType": "User"},
			"name":        map[string]any{"formatted": "Entra User", "familyName": "User", "givenName": "Entra"},
			"roles":       []any{},
			URNEnterprise: map[string]any{"department": "Sales", "employeeNumber": "E" + sfx},
		}
		res = c.do(t, http.MethodPost, "/Users", user).expect(t, "POST /Users", http.StatusCreated)
		id = res.Body["id"].(string)
		c.cleanup("/Users/" + id)
		if d := ext(res.Body, URNEnterprise)["department"]; d != "Sales" {
			t.Errorf("department = %v, want Sales", d)
		}
	})
	step(t, "existence check by externalId", func(t *testing.T) {
		res := c.do(t, http.MethodGet, "/Users"+filterQuery(`externalId eq "ext-`+sfx+`"`), nil)
		got := res.list(t, "filter externalId")
		if len(got) != 1 || got[0]["id"] != id {
			t.Fatalf("Resources %v, want user %s", got, id)
		}
	})
	step(t, "capitalised Replace and Add with value paths", func(t *testing.T) {
		body := patchUser(t, "PATCH Replace/Add",
			map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "changed." + userName},
			map[string]any{"op": "Add", "path": `phoneNumbers[type eq "mobile"].value`, "value": "+1 555 0100"},
			map[string]any{"op": "Replace", "path": "name.givenName", "value": "Entrant"},
			map[string]any{"op": "Add", "path": URNEnterprise + ":department", "value": "Marketing"},
			map[string]any{"op": "Add", "path": URNEnterprise + ":manager", "value": mgr},
		)
		emails, _ := body["emails"].([]any)
		if len(emails) != 1 || get(emails[0].(map[string]any), "value") != "changed."+userName {
			t.Errorf("emails = %v", body["emails"])
		}
		phones, _ := body["phoneNumbers"].([]any)
		if len(phones) != 1 || get(phones[0].(map[string]any), "type") != "mobile" || get(phones[0].(map[string]any), "value") != "+1 555 0100" {
			t.Errorf("phoneNumbers = %v, want one mobile element created by the filter", body["phoneNumbers"])
		}
		if get(body, "name.givenName") != "Entrant" || get(body, "name.familyName") != "User" {
			t.Errorf("name = %v", body["name"])
		}
		e := ext(body, URNEnterprise)
		if e["department"] != "Marketing" || get(e, "manager.value") != mgr || e["employeeNumber"] != "E"+sfx {
			t.Errorf("enterprise = %v", e)
		}
	})
	step(t, "manager as an object and path-less URN-qualified keys", func(t *testing.T) {
		body := patchUser(t, "PATCH manager object",
			map[string]any{"op": "replace", "path": URNEnterprise + ":manager", "value": map[string]any{"value": mgr}},
			map[string]any{"op": "replace", "value": map[string]any{
				URNEnterprise + ":costCenter": "CC-1",
				"displayName":                 "Entrant User",
				"name.familyName":             "Userson",
			}},
		)
		e := ext(body, URNEnterprise)
		if e["costCenter"] != "CC-1" || get(e, "manager.value") != mgr {
			t.Errorf("enterprise = %v", e)
		}
		if body["displayName"] != "Entrant User" || get(body, "name.familyName") != "Userson" {
			t.Errorf("core = %v / %v", body["displayName"], body["name"])
		}
	})
	step(t, "remove an enterprise attribute", func(t *testing.T) {
		body := patchUser(t, "PATCH Remove manager",
			map[string]any{"op": "Remove", "path": URNEnterprise + ":manager"})
		if _, ok := ext(body, URNEnterprise)["manager"]; ok {
			t.Errorf("manager still present: %v", ext(body, URNEnterprise))
		}
	})
	step(t, "string booleans", func(t *testing.T) {
		body := patchUser(t, "PATCH active False", map[string]any{"op": "Replace", "path": "active", "value": "False"})
		if body["active"] != false {
			t.Fatalf("active = %v, want false", body["active"])
		}
		body = patchUser(t, "PATCH active True", map[string]any{"op": "Replace", "path": "active", "value": "True"})
		if body["active"] != true {
			t.Fatalf("active = %v, want true", body["active"])
		}
	})
	var gid string
	step(t, "group create and membership", func(t *testing.T) {
		res := c.do(t, http.MethodPost, "/Groups", map[string]any{
			"schemas": []string{URNGroup}, "displayName": "Entra Group " + sfx, "externalId": "g-" + sfx, "members": []any{},
		}).expect(t, "POST /Groups", http.StatusCreated)
		gid = res.Body["id"].(string)
		c.cleanup("/Groups/" + gid)
		pg := func(what string, ops ...any) {
			c.do(t, http.MethodPatch, "/Groups/"+gid, map[string]any{"schemas": []string{URNPatchOp}, "Operations": ops}).
				expect(t, what, http.StatusOK, http.StatusNoContent)
		}
		pg("PATCH Add members", map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}, map[string]any{"value": mgr}}})
		res = c.do(t, http.MethodGet, "/Groups/"+gid, nil).expect(t, "GET group", http.StatusOK)
		expectMembers(t, res.Body, id, mgr)
		pg("PATCH Remove members with value", map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": mgr}}})
		pg("PATCH Replace displayName", map[string]any{"op": "Replace", "path": "displayName", "value": "Entra Group " + sfx + " (renamed)"})
		res = c.do(t, http.MethodGet, "/Groups/"+gid, nil).expect(t, "GET group", http.StatusOK)
		expectMembers(t, res.Body, id)
		if res.Body["displayName"] != "Entra Group "+sfx+" (renamed)" {
			t.Errorf("displayName = %v", res.Body["displayName"])
		}
		c.do(t, http.MethodPatch, "/Groups/"+gid, map[string]any{"schemas": []string{URNPatchOp}, "Operations": []any{
			map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": "no-such-user-" + sfx}}},
		}}).expectError(t, "PATCH add unknown member", http.StatusBadRequest, "invalidValue")
	})
	step(t, "delete user", func(t *testing.T) {
		c.do(t, http.MethodDelete, "/Users/"+id, nil).expect(t, "DELETE /Users/{id}", http.StatusNoContent)
		c.do(t, http.MethodGet, "/Users/"+id, nil).expectError(t, "GET deleted user", http.StatusNotFound, "")
		c.do(t, http.MethodDelete, "/Users/"+id, nil).expectError(t, "DELETE again", http.StatusNotFound, "")
		res := c.do(t, http.MethodGet, "/Groups/"+gid, nil).expect(t, "GET group after user delete", http.StatusOK)
		expectMembers(t, res.Body)
		// The userName is free again.
		res = c.do(t, http.MethodGet, "/Users"+filterQuery(`userName eq "`+userName+`"`), nil)
		if res.list(t, "filter deleted userName"); res.total() != 0 {
			t.Fatalf("deleted user still found by userName")
		}
	})
}
