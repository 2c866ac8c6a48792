package scim_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

const (
	userSchemas  = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
	groupSchemas = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]`
	patchSchemas = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`
)

func patchBody(ops string) string { return `{` + patchSchemas + `,"Operations":[` + ops + `]}` }

// checkSCIMError asserts an RFC 7644 §3.12 error response.
func checkSCIMError(t *testing.T, r result, status int, scimType string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d\n%s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/scim+json" {
		t.Errorf("Content-Type %q", ct)
	}
	schemas, _ := r.body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("schemas = %v", r.body["schemas"])
	}
	if s, ok := r.body["status"].(string); !ok || s != strconv.Itoa(status) {
		t.Errorf("status field = %#v, want the string %q", r.body["status"], strconv.Itoa(status))
	}
	got, _ := r.body["scimType"].(string)
	if got != scimType {
		t.Errorf("scimType = %q, want %q (detail %v)", got, scimType, r.body["detail"])
	}
	if d, _ := r.body["detail"].(string); d == "" {
		t.Errorf("no detail")
	}
}

// TestErrorPaths: every error answers a SCIM error body with the right
// status and scimType, writes nothing and queues nothing.
func TestErrorPaths(t *testing.T) {
	e := newEnv(t, func(c *scim.Config) { c.MaxBodyBytes = 64 << 10 })
	jane := e.createUser("jane@atko.example", `,"emails":[{"value":"jane@atko.example","type":"work","primary":true}]`)
	bob := e.createUser("bob@atko.example")
	group := e.createGroup("Learners", jane)
	e.createGroup("Managers")
	users, groups := "/scim/v2/Users/", "/scim/v2/Groups/"
	long := strings.Repeat("x", 3000)

	cases := []struct {
		name     string
		method   string
		path     string
		body     string
		headers  []string
		status   int
		scimType string
		detail   string // substring the detail must contain
	}{
		// Authentication and routing.
		{name: "no token", method: "GET", path: "/scim/v2/Users", headers: []string{"Authorization", ""}, status: 401},
		{name: "wrong token", method: "GET", path: "/scim/v2/Users", headers: []string{"Authorization", "Bearer nope"}, status: 401},
		{name: "basic auth", method: "GET", path: "/scim/v2/Users", headers: []string{"Authorization", "Basic " + testToken}, status: 401},
		{name: "token prefix", method: "GET", path: "/scim/v2/Users", headers: []string{"Authorization", "Bearer " + testToken[:5]}, status: 401},
		{name: "unauthenticated write", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"x@y"}`, headers: []string{"Authorization", ""}, status: 401},
		{name: "unknown route", method: "GET", path: "/scim/v2/Widgets", status: 404},
		{name: "outside base path", method: "GET", path: "/Users", status: 404},
		{name: "bulk", method: "POST", path: "/scim/v2/Bulk", body: `{}`, status: 404, detail: "not supported"},
		{name: "me", method: "GET", path: "/scim/v2/Me", status: 404, detail: "not supported"},
		{name: "wrong method on collection", method: "DELETE", path: "/scim/v2/Users", status: 405},
		{name: "GET .search", method: "GET", path: "/scim/v2/Users/.search", status: 405},
		{name: "wrong method on discovery", method: "PATCH", path: "/scim/v2/ServiceProviderConfig", body: `{}`, status: 405},
		{name: "POST to a user", method: "POST", path: users + jane, body: `{}`, status: 405},
		{name: "unknown resource type", method: "GET", path: "/scim/v2/ResourceTypes/Widget", status: 404},
		{name: "unknown schema", method: "GET", path: "/scim/v2/Schemas/urn:example:nothing", status: 404},

		// Bodies.
		{name: "content type", method: "POST", path: "/scim/v2/Users", body: `{}`, headers: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "content type xml", method: "PATCH", path: users + jane, body: `{}`, headers: []string{"Content-Type", "application/xml"}, status: 415},
		{name: "content type garbage", method: "PUT", path: users + jane, body: `{}`, headers: []string{"Content-Type", ";;;"}, status: 415},
		{name: "too large", method: "POST", path: "/scim/v2/Users", body: `{"userName":"` + strings.Repeat("a", 70<<10) + `"}`, status: 413},
		{name: "malformed json", method: "POST", path: "/scim/v2/Users", body: `{"userName":`, status: 400, scimType: "invalidSyntax"},
		{name: "trailing data", method: "POST", path: "/scim/v2/Users", body: `{}{}`, status: 400, scimType: "invalidSyntax"},
		{name: "array body", method: "POST", path: "/scim/v2/Users", body: `[]`, status: 400, scimType: "invalidSyntax"},
		{name: "empty body", method: "POST", path: "/scim/v2/Users", body: ``, status: 400, scimType: "invalidSyntax"},

		// Create user.
		{name: "no schemas", method: "POST", path: "/scim/v2/Users", body: `{"userName":"n@x"}`, status: 400, scimType: "invalidSyntax"},
		{name: "schemas without core", method: "POST", path: "/scim/v2/Users", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"userName":"n@x"}`, status: 400, scimType: "invalidSyntax"},
		{name: "schemas not array", method: "POST", path: "/scim/v2/Users", body: `{"schemas":"urn:ietf:params:scim:schemas:core:2.0:User","userName":"n@x"}`, status: 400, scimType: "invalidSyntax"},
		{name: "no userName", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `}`, status: 400, scimType: "invalidValue", detail: "userName"},
		{name: "blank userName", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"  "}`, status: 400, scimType: "invalidValue"},
		{name: "userName number", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":5}`, status: 400, scimType: "invalidValue"},
		{name: "userName too long", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"` + long + `"}`, status: 400, scimType: "invalidValue"},
		{name: "emails not array", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","emails":{"value":"n@x"}}`, status: 400, scimType: "invalidValue", detail: "emails"},
		{name: "emails of strings", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","emails":["n@x"]}`, status: 400, scimType: "invalidValue", detail: "emails[0]"},
		{name: "email value number", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","emails":[{"value":1}]}`, status: 400, scimType: "invalidValue", detail: "emails[0].value"},
		{name: "two primaries", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","emails":[{"value":"a@x","primary":true},{"value":"b@x","primary":"True"}]}`, status: 400, scimType: "invalidValue", detail: "primary"},
		{name: "active not boolean", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","active":"yes"}`, status: 400, scimType: "invalidValue", detail: "active"},
		{name: "name not object", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","name":"N X"}`, status: 400, scimType: "invalidValue", detail: "name"},
		{name: "enterprise not object", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":[]}`, status: 400, scimType: "invalidValue"},
		{name: "enterprise attr type", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":{"x":1}}}`, status: 400, scimType: "invalidValue", detail: "department"},
		{name: "custom attr object", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","urn:learnerlink:params:scim:schemas:extension:custom:2.0:User":{"x":{"y":1}}}`, status: 400, scimType: "invalidValue"},
		{name: "custom attr bad name", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"n@x","urn:learnerlink:params:scim:schemas:extension:custom:2.0:User":{"a b":"c"}}`, status: 400, scimType: "invalidValue"},
		{name: "duplicate userName other case", method: "POST", path: "/scim/v2/Users", body: `{` + userSchemas + `,"userName":"JANE@atko.example"}`, status: 409, scimType: "uniqueness"},

		// Reads.
		{name: "unknown user", method: "GET", path: users + "nobody", status: 404},
		{name: "huge id", method: "GET", path: users + long, status: 404},
		{name: "invalid filter", method: "GET", path: "/scim/v2/Users?filter=userName%20eq", status: 400, scimType: "invalidFilter"},
		{name: "filter bad operator", method: "GET", path: "/scim/v2/Users?filter=userName%20is%20%22x%22", status: 400, scimType: "invalidFilter"},
		{name: "empty filter", method: "GET", path: "/scim/v2/Users?filter=", status: 400, scimType: "invalidFilter"},
		{name: "startIndex not a number", method: "GET", path: "/scim/v2/Users?startIndex=one", status: 400, scimType: "invalidValue"},
		{name: "count not a number", method: "GET", path: "/scim/v2/Groups?count=1.5", status: 400, scimType: "invalidValue"},
		{name: "search wrong schema", method: "POST", path: "/scim/v2/Users/.search", body: `{` + userSchemas + `}`, status: 400, scimType: "invalidSyntax"},
		{name: "search filter not string", method: "POST", path: "/scim/v2/Users/.search", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":5}`, status: 400, scimType: "invalidFilter"},
		{name: "search count string", method: "POST", path: "/scim/v2/Groups/.search", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":"5"}`, status: 400, scimType: "invalidValue"},
		{name: "search attributes not strings", method: "POST", path: "/scim/v2/Users/.search", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"attributes":[1]}`, status: 400, scimType: "invalidValue"},

		// Replace user.
		{name: "PUT unknown user", method: "PUT", path: users + "nobody", body: `{` + userSchemas + `,"userName":"n@x"}`, status: 404},
		{name: "PUT rename onto another user", method: "PUT", path: users + bob, body: `{` + userSchemas + `,"userName":"Jane@Atko.example"}`, status: 409, scimType: "uniqueness"},
		{name: "PUT stale If-Match", method: "PUT", path: users + bob, body: `{` + userSchemas + `,"userName":"bob2@x"}`, headers: []string{"If-Match", `W/"999"`}, status: 412},
		{name: "PUT without userName", method: "PUT", path: users + bob, body: `{` + userSchemas + `,"displayName":"Bob"}`, status: 400, scimType: "invalidValue"},
		{name: "PUT without schemas", method: "PUT", path: users + bob, body: `{"userName":"bob@atko.example"}`, status: 400, scimType: "invalidSyntax"},

		// Patch user.
		{name: "patch without PatchOp schema", method: "PATCH", path: users + jane, body: `{` + userSchemas + `,"Operations":[{"op":"replace","path":"title","value":"x"}]}`, status: 400, scimType: "invalidSyntax"},
		{name: "patch no operations", method: "PATCH", path: users + jane, body: `{` + patchSchemas + `,"Operations":[]}`, status: 400, scimType: "invalidSyntax"},
		{name: "patch operations not array", method: "PATCH", path: users + jane, body: `{` + patchSchemas + `,"Operations":{"op":"add"}}`, status: 400, scimType: "invalidSyntax"},
		{name: "patch operation not object", method: "PATCH", path: users + jane, body: patchBody(`"replace"`), status: 400, scimType: "invalidSyntax"},
		{name: "patch unknown op", method: "PATCH", path: users + jane, body: patchBody(`{"op":"move","path":"title","value":"x"}`), status: 400, scimType: "invalidSyntax"},
		{name: "patch add without value", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"title"}`), status: 400, scimType: "invalidValue"},
		{name: "patch path not string", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":5,"value":"x"}`), status: 400, scimType: "invalidPath"},
		{name: "patch unparsable path", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"emails[type eq","value":"x"}`), status: 400, scimType: "invalidPath"},
		{name: "patch path with spaces", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"user name","value":"x"}`), status: 400, scimType: "invalidPath"},
		{name: "patch filter on single-valued", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"userName[value eq \"x\"]","value":"y"}`), status: 400, scimType: "invalidPath"},
		{name: "patch sub-attribute of simple", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"userName.first","value":"y"}`), status: 400, scimType: "invalidPath"},
		{name: "patch custom with sub-attribute", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:x.y","value":"y"}`), status: 400, scimType: "invalidPath"},
		{name: "patch remove without path", method: "PATCH", path: users + jane, body: patchBody(`{"op":"remove"}`), status: 400, scimType: "noTarget"},
		{name: "patch filter matches nothing", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"emails[value co \"nowhere\"].type","value":"home"}`), status: 400, scimType: "noTarget"},
		{name: "patch sub-attribute of empty multi", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"phoneNumbers.value","value":"1"}`), status: 400, scimType: "noTarget"},
		{name: "patch id", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"id","value":"x"}`), status: 400, scimType: "mutability"},
		{name: "patch meta", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"meta.created","value":"2020-01-01T00:00:00Z"}`), status: 400, scimType: "mutability"},
		{name: "patch groups", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"groups","value":[{"value":"` + group + `"}]}`), status: 400, scimType: "mutability"},
		{name: "patch path-less other id", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","value":{"id":"other"}}`), status: 400, scimType: "mutability"},
		{name: "patch path-less groups", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","value":{"groups":[]}}`), status: 400, scimType: "mutability"},
		{name: "patch path-less non-object", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","value":"x"}`), status: 400, scimType: "invalidValue"},
		{name: "patch active not boolean", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"active","value":"maybe"}`), status: 400, scimType: "invalidValue"},
		{name: "patch emails not objects", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"emails","value":["x@y"]}`), status: 400, scimType: "invalidValue"},
		{name: "patch extension not object", method: "PATCH", path: users + jane, body: patchBody(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":"x"}`), status: 400, scimType: "invalidValue"},
		{name: "patch fails at second op", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"displayName","value":"Changed"},{"op":"replace","path":"id","value":"x"}`), status: 400, scimType: "mutability"},
		{name: "patch rename onto another user", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"userName","value":"BOB@atko.example"}`), status: 409, scimType: "uniqueness"},
		{name: "patch remove userName", method: "PATCH", path: users + jane, body: patchBody(`{"op":"remove","path":"userName"}`), status: 400, scimType: "invalidValue", detail: "userName"},
		{name: "patch stale If-Match", method: "PATCH", path: users + jane, body: patchBody(`{"op":"replace","path":"title","value":"x"}`), headers: []string{"If-Match", `W/"7", W/"8"`}, status: 412},
		{name: "patch unknown user", method: "PATCH", path: users + "nobody", body: patchBody(`{"op":"replace","path":"title","value":"x"}`), status: 404},

		// Delete user.
		{name: "delete unknown user", method: "DELETE", path: users + "nobody", status: 404},
		{name: "delete stale If-Match", method: "DELETE", path: users + bob, headers: []string{"If-Match", `W/"2"`}, status: 412},

		// Groups.
		{name: "group without displayName", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `}`, status: 400, scimType: "invalidValue", detail: "displayName"},
		{name: "group without schemas", method: "POST", path: "/scim/v2/Groups", body: `{"displayName":"G"}`, status: 400, scimType: "invalidSyntax"},
		{name: "group duplicate displayName", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"LEARNERS"}`, status: 409, scimType: "uniqueness"},
		{name: "group unknown members", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"New","members":[{"value":"` + bob + `"},{"value":"ghost-a"},{"value":"ghost-b"}]}`, status: 400, scimType: "invalidValue", detail: "ghost-a, ghost-b"},
		{name: "group member without value", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"New","members":[{"display":"x"}]}`, status: 400, scimType: "invalidValue"},
		{name: "group nested group member", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"New","members":[{"value":"` + group + `","type":"Group"}]}`, status: 400, scimType: "invalidValue"},
		{name: "group members object", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"New","members":{"value":"` + bob + `"}}`, status: 400, scimType: "invalidValue"},
		{name: "group huge member id", method: "POST", path: "/scim/v2/Groups", body: `{` + groupSchemas + `,"displayName":"New","members":[{"value":"` + long + `"}]}`, status: 400, scimType: "invalidValue"},
		{name: "group patch unknown member", method: "PATCH", path: groups + group, body: patchBody(`{"op":"add","path":"members","value":[{"value":"ghost"}]}`), status: 400, scimType: "invalidValue", detail: "ghost"},
		{name: "group patch other id", method: "PATCH", path: groups + group, body: patchBody(`{"op":"replace","value":{"id":"other","displayName":"X"}}`), status: 400, scimType: "mutability"},
		{name: "group patch rename onto another", method: "PATCH", path: groups + group, body: patchBody(`{"op":"replace","path":"displayName","value":"managers"}`), status: 409, scimType: "uniqueness"},
		{name: "group patch member sub-attribute", method: "PATCH", path: groups + group, body: patchBody(`{"op":"replace","path":"members[value eq \"` + jane + `\"].display","value":"x"}`), status: 400, scimType: "invalidPath"},
		{name: "group patch replace filtered members", method: "PATCH", path: groups + group, body: patchBody(`{"op":"replace","path":"members[value eq \"` + jane + `\"]","value":{"value":"` + bob + `"}}`), status: 400, scimType: "invalidPath"},
		{name: "group patch remove displayName", method: "PATCH", path: groups + group, body: patchBody(`{"op":"remove","path":"displayName"}`), status: 400, scimType: "invalidValue"},
		{name: "group patch add then fail", method: "PATCH", path: groups + group, body: patchBody(`{"op":"add","path":"members","value":[{"value":"` + bob + `"}]},{"op":"add","path":"members","value":[{"value":"ghost"}]}`), status: 400, scimType: "invalidValue"},
		{name: "group patch members not objects", method: "PATCH", path: groups + group, body: patchBody(`{"op":"add","path":"members","value":["` + bob + `"]}`), status: 400, scimType: "invalidValue"},
		{name: "group put unknown member", method: "PUT", path: groups + group, body: `{` + groupSchemas + `,"displayName":"Learners","members":[{"value":"ghost"}]}`, status: 400, scimType: "invalidValue"},
		{name: "group put stale If-Match", method: "PUT", path: groups + group, body: `{` + groupSchemas + `,"displayName":"Learners"}`, headers: []string{"If-Match", `W/"9"`}, status: 412},
		{name: "group put unknown group", method: "PUT", path: groups + "nothing", body: `{` + groupSchemas + `,"displayName":"Learners"}`, status: 404},
		{name: "group get unknown", method: "GET", path: groups + "nothing", status: 404},
		{name: "group delete unknown", method: "DELETE", path: groups + "nothing", status: 404},
		{name: "group delete stale If-Match", method: "DELETE", path: groups + group, headers: []string{"If-Match", `W/"9"`}, status: 412},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, queued := snapshot(t, e.st), len(e.q.all())
			r := e.call(tc.method, tc.path, tc.body, tc.headers...)
			checkSCIMError(t, r, tc.status, tc.scimType)
			if d, _ := r.body["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Errorf("detail %q does not mention %q", d, tc.detail)
			}
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if after := snapshot(t, e.st); after != before {
				t.Errorf("store changed:\nbefore %s\nafter  %s", before, after)
			}
			if n := len(e.q.all()); n != queued {
				t.Errorf("%d intents queued", n-queued)
			}
		})
	}
}

// TestStoreFailure: a failing store is the only 5xx, logged, and leaves
// nothing half-written.
func TestStoreFailure(t *testing.T) {
	e := newEnv(t, nil)
	jane := e.createUser("jane@atko.example")
	group := e.createGroup("Learners", jane)
	boom := errors.New("dynamodb: throttled")
	cases := []struct {
		method, path, body, failing string
	}{
		{"POST", "/scim/v2/Users", `{` + userSchemas + `,"userName":"new@x"}`, "CreateIdentity"},
		{"GET", "/scim/v2/Users/" + jane, ``, "GetIdentity"},
		{"GET", "/scim/v2/Users/" + jane, ``, "GroupsOf"},
		{"GET", "/scim/v2/Users", ``, "CountIdentities"},
		{"GET", "/scim/v2/Users?filter=title%20pr", ``, "ListIdentities"},
		{"GET", "/scim/v2/Users?filter=userName%20eq%20%22x%22", ``, "GetIdentityByUserName"},
		{"GET", "/scim/v2/Users?filter=externalId%20eq%20%22x%22", ``, "FindIdentitiesByExternalID"},
		{"PUT", "/scim/v2/Users/" + jane, `{` + userSchemas + `,"userName":"jane2@x"}`, "UpdateIdentity"},
		{"PATCH", "/scim/v2/Users/" + jane, patchBody(`{"op":"replace","path":"title","value":"x"}`), "UpdateIdentity"},
		{"DELETE", "/scim/v2/Users/" + jane, ``, "DeleteIdentity"},
		{"POST", "/scim/v2/Groups", `{` + groupSchemas + `,"displayName":"New"}`, "CreateGroup"},
		{"GET", "/scim/v2/Groups/" + group, ``, "Members"},
		{"GET", "/scim/v2/Groups?filter=displayName%20eq%20%22x%22", ``, "GetGroupByDisplayName"},
		{"GET", "/scim/v2/Groups", ``, "CountGroups"},
		{"GET", "/scim/v2/Groups?filter=externalId%20pr", ``, "ListGroups"},
		{"PATCH", "/scim/v2/Groups/" + group, patchBody(`{"op":"remove","path":"members"}`), "Members"},
		{"PATCH", "/scim/v2/Groups/" + group, patchBody(`{"op":"replace","path":"displayName","value":"X"}`), "UpdateGroup"},
		{"DELETE", "/scim/v2/Groups/" + group, ``, "DeleteGroup"},
		{"GET", "/scim/v2/Groups/" + group, ``, "GetGroup"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.failing, func(t *testing.T) {
			before, queued := snapshot(t, e.st), len(e.q.all())
			e.hooks.reset()
			e.hooks.set(tc.failing, boom)
			defer e.hooks.reset()
			r := e.call(tc.method, tc.path, tc.body)
			checkSCIMError(t, r, http.StatusInternalServerError, "")
			if strings.Contains(string(r.raw), "throttled") {
				t.Errorf("store error leaked to the client: %s", r.raw)
			}
			if e.hooks.count(tc.failing) == 0 {
				t.Errorf("%s was not called", tc.failing)
			}
			if after := snapshot(t, e.st); after != before {
				t.Errorf("store changed")
			}
			if len(e.q.all()) != queued {
				t.Errorf("intents queued")
			}
		})
	}
	if !strings.Contains(e.log.String(), "dynamodb: throttled") {
		t.Errorf("store failure not logged")
	}
}

// panicStore panics on reads, standing in for a bug below the handler.
type panicStore struct{ scim.Store }

func (panicStore) GetIdentity(context.Context, string) (*store.Identity, error) { panic("boom") }

func TestPanicIsAnErrorBody(t *testing.T) {
	var logs bytes.Buffer
	h, err := scim.NewHandler(panicStore{openBolt(t)}, &recQueue{}, scim.Config{Token: testToken, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, h: h}
	checkSCIMError(t, e.call("GET", "/scim/v2/Users/x", ""), http.StatusInternalServerError, "")
	if !strings.Contains(logs.String(), "panic") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}
