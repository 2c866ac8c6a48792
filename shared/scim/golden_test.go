package scim_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/scim"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current responses")

// goldenCase is one request of the scripted golden run. Later cases use the
// resources earlier ones created (ids are sequential, see seqIDs).
type goldenCase struct {
	name    string
	method  string
	path    string
	body    string
	headers []string
}

const (
	uid1 = "00000000-0000-4000-8000-000000000001" // Okta user
	uid2 = "00000000-0000-4000-8000-000000000002" // Entra user
	uid3 = "00000000-0000-4000-8000-000000000003" // third user
	gid4 = "00000000-0000-4000-8000-000000000004" // group
)

func goldenCases() []goldenCase {
	enterprise := scim.URNEnterpriseUser
	return []goldenCase{
		{name: "create-user-okta", method: "POST", path: "/scim/v2/Users", body: `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "` + enterprise + `", "` + scim.URNCustomUser + `"],
			"userName": "jane.doe@atko.example",
			"name": {"givenName": "Jane", "familyName": "Doe", "middleName": "Q"},
			"emails": [{"primary": true, "value": "jane.doe@atko.example", "type": "work"}],
			"displayName": "Jane Doe", "locale": "en-US", "title": "Engineer", "timezone": "Europe/Berlin",
			"externalId": "00u1abcd", "groups": [], "password": "s3cr3t!", "active": true,
			"phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
			"addresses": [{"locality": "Berlin", "country": "DE", "type": "work", "primary": true}],
			"` + enterprise + `": {"employeeNumber": "1001", "costCenter": "Berlin", "division": "EMEA", "department": "Sales",
				"manager": {"value": "00000000-0000-4000-8000-000000000099", "displayName": "Boss"}},
			"` + scim.URNCustomUser + `": {"lmsRole": "learner", "seniority": 3, "onboarded": false, "tags": ["a", "b"]},
			"urn:example:unknown:2.0:User": {"x": 1},
			"nonsense": "dropped"
		}`},
		{name: "create-user-entra", method: "POST", path: "/scim/v2/Users", body: `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "` + enterprise + `"],
			"externalId": "8c9e5c9a-entra", "userName": "AdeleV@contoso.example", "active": "True",
			"displayName": "Adele Vance",
			"emails": [{"primary": true, "type": "work", "value": "AdeleV@contoso.example"}],
			"meta": {"resourceType": "User"},
			"name": {"formatted": "Adele Vance", "familyName": "Vance", "givenName": "Adele"},
			"roles": [],
			"` + enterprise + `:department": "Retail"
		}`},
		{name: "create-user-third", method: "POST", path: "/scim/v2/Users", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@atko.example","name":{"givenName":"Bob","familyName":"Xavier"},"active":false}`},
		{name: "get-user", method: "GET", path: "/scim/v2/Users/" + uid1},
		{name: "get-user-attributes", method: "GET", path: "/scim/v2/Users/" + uid1 + "?attributes=userName,name.givenName," + enterprise + ":department,emails.value"},
		{name: "get-user-excluded", method: "GET", path: "/scim/v2/Users/" + uid1 + "?excludedAttributes=emails,name.middleName," + scim.URNCustomUser + ",groups"},
		{name: "list-users", method: "GET", path: "/scim/v2/Users?startIndex=1&count=10"},
		{name: "list-users-paged", method: "GET", path: "/scim/v2/Users?startIndex=2&count=1&attributes=userName"},
		{name: "list-users-count-zero", method: "GET", path: "/scim/v2/Users?count=0&startIndex=-4"},
		{name: "filter-username-case-insensitive", method: "GET", path: "/scim/v2/Users?filter=" + q(`userName eq "JANE.DOE@ATKO.EXAMPLE"`) + "&startIndex=1&count=100"},
		{name: "filter-externalid", method: "GET", path: "/scim/v2/Users?filter=" + q(`externalId eq "8c9e5c9a-entra"`) + "&attributes=userName,externalId"},
		{name: "filter-not-indexed", method: "GET", path: "/scim/v2/Users?filter=" + q(`name.familyName sw "v" or (active eq false and name.givenName co "o")`) + "&attributes=userName"},
		{name: "filter-enterprise", method: "GET", path: "/scim/v2/Users?filter=" + q(enterprise+`:department eq "sales"`) + "&attributes=userName"},
		{name: "filter-email-value-path", method: "GET", path: "/scim/v2/Users?filter=" + q(`emails[type eq "work" and value ew "contoso.example"]`) + "&attributes=userName"},
		{name: "filter-no-match", method: "GET", path: "/scim/v2/Users?filter=" + q(`userName eq "nobody@atko.example"`)},
		{name: "search-post", method: "POST", path: "/scim/v2/Users/.search", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"meta.resourceType eq \"User\" and active eq true","attributes":["userName"],"startIndex":1,"count":5}`},
		{name: "patch-okta-deactivate", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`},
		{name: "patch-okta-profile", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"replace","value":{"active":true,"name":{"givenName":"Janet"},"` + enterprise + `":{"department":"Support"}}},
			{"op":"add","path":"` + scim.URNCustomUser + `:lmsRole","value":"manager"},
			{"op":"replace","path":"password","value":"n3w-s3cr3t"}]}`},
		{name: "patch-entra", method: "PATCH", path: "/scim/v2/Users/" + uid2, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"adele.vance@contoso.example"},
			{"op":"Add","path":"emails[type eq \"home\"].value","value":"adele@home.example"},
			{"op":"Replace","path":"emails[type eq \"home\"].primary","value":"True"},
			{"op":"Replace","path":"name.givenName","value":"Adèle"},
			{"op":"Add","path":"title","value":"Retail Manager"},
			{"op":"Add","path":"` + enterprise + `:manager","value":"` + uid1 + `"},
			{"op":"Replace","value":{"` + enterprise + `:employeeNumber":"E-42","displayName":"Adèle Vance"}},
			{"op":"Replace","path":"active","value":"False"}]}`},
		{name: "patch-entra-remove", method: "PATCH", path: "/scim/v2/Users/" + uid2, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Remove","path":"emails[type eq \"home\"]"},
			{"op":"Remove","path":"` + enterprise + `:manager"},
			{"op":"Replace","path":"` + enterprise + `:manager","value":{"value":"` + uid3 + `"}}]}`},
		{name: "put-user", method: "PUT", path: "/scim/v2/Users/" + uid3, body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"` + uid3 + `","userName":"bob@atko.example","name":{"givenName":"Robert","familyName":"Xavier"},"emails":[{"value":"bob@atko.example","type":"work","primary":true}],"active":true}`},
		{name: "group-create", method: "POST", path: "/scim/v2/Groups", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Sales Learners","externalId":"00g1","members":[{"value":"` + uid1 + `","display":"Jane Doe"}]}`},
		{name: "group-get-without-members", method: "GET", path: "/scim/v2/Groups/" + gid4 + "?excludedAttributes=members"},
		{name: "group-patch-add-members", method: "PATCH", path: "/scim/v2/Groups/" + gid4, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"` + uid2 + `","display":"Adele"},{"value":"` + uid3 + `"}]}]}`},
		{name: "group-get", method: "GET", path: "/scim/v2/Groups/" + gid4},
		{name: "user-get-with-groups", method: "GET", path: "/scim/v2/Users/" + uid2 + "?attributes=groups"},
		{name: "group-patch-remove-filter", method: "PATCH", path: "/scim/v2/Groups/" + gid4 + "?excludedAttributes=meta", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"` + uid1 + `\" or value eq \"` + uid3 + `\"]"}]}`},
		{name: "group-patch-entra", method: "PATCH", path: "/scim/v2/Groups/" + gid4, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"Add","path":"members","value":[{"value":"` + uid1 + `"}]},
			{"op":"Remove","path":"members","value":[{"value":"` + uid2 + `"}]},
			{"op":"Replace","path":"externalId","value":"entra-g-1"}]}`},
		{name: "group-patch-rename-pathless", method: "PATCH", path: "/scim/v2/Groups/" + gid4, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"` + gid4 + `","displayName":"EMEA Sales Learners"}}]}`},
		{name: "group-put", method: "PUT", path: "/scim/v2/Groups/" + gid4, body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"` + gid4 + `","displayName":"EMEA Sales Learners","members":[{"value":"` + uid2 + `"},{"value":"` + uid3 + `"}]}`},
		{name: "group-filter-displayname", method: "GET", path: "/scim/v2/Groups?filter=" + q(`displayName eq "emea sales learners"`) + "&excludedAttributes=members"},
		{name: "group-list", method: "GET", path: "/scim/v2/Groups?startIndex=1&count=1"},
		{name: "error-unauthorized", method: "GET", path: "/scim/v2/Users", headers: []string{"Authorization", "Bearer wrong"}},
		{name: "error-user-not-found", method: "GET", path: "/scim/v2/Users/does-not-exist"},
		{name: "error-duplicate-username", method: "POST", path: "/scim/v2/Users", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Jane.Doe@atko.example"}`},
		{name: "error-invalid-filter", method: "GET", path: "/scim/v2/Users?filter=" + q(`userName eq`)},
		{name: "error-malformed-json", method: "POST", path: "/scim/v2/Users", body: `{"schemas":[`},
		{name: "error-missing-core-schema", method: "POST", path: "/scim/v2/Users", body: `{"schemas":["` + enterprise + `"],"userName":"x@atko.example"}`},
		{name: "error-invalid-value", method: "POST", path: "/scim/v2/Users", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x@atko.example","emails":"x@atko.example"}`},
		{name: "error-content-type", method: "POST", path: "/scim/v2/Users", body: `{}`, headers: []string{"Content-Type", "text/plain"}},
		{name: "error-method-not-allowed", method: "DELETE", path: "/scim/v2/Users"},
		{name: "error-bulk", method: "POST", path: "/scim/v2/Bulk", body: `{}`},
		{name: "error-me", method: "GET", path: "/scim/v2/Me"},
		{name: "error-unknown-route", method: "GET", path: "/scim/v2/Widgets"},
		{name: "error-patch-invalid-path", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq ]","value":"x"}]}`},
		{name: "error-patch-no-target", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[value co \"nowhere\"].type","value":"home"}]}`},
		{name: "error-patch-mutability", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"other"}}]}`},
		{name: "error-if-match", method: "PATCH", path: "/scim/v2/Users/" + uid1, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"x"}]}`, headers: []string{"If-Match", `W/"1"`}},
		{name: "error-unknown-member", method: "PATCH", path: "/scim/v2/Groups/" + gid4, body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"ghost-1"},{"value":"ghost-2"}]}]}`},
		{name: "discovery-service-provider-config", method: "GET", path: "/scim/v2/ServiceProviderConfig"},
		{name: "discovery-resource-types", method: "GET", path: "/scim/v2/ResourceTypes"},
		{name: "discovery-resource-type-user", method: "GET", path: "/scim/v2/ResourceTypes/User"},
		{name: "discovery-schemas", method: "GET", path: "/scim/v2/Schemas"},
		{name: "discovery-schema-enterprise", method: "GET", path: "/scim/v2/Schemas/" + enterprise},
		{name: "delete-user", method: "DELETE", path: "/scim/v2/Users/" + uid3},
		{name: "get-deleted-user", method: "GET", path: "/scim/v2/Users/" + uid3},
		{name: "group-after-user-delete", method: "GET", path: "/scim/v2/Groups/" + gid4 + "?attributes=members"},
		{name: "delete-group", method: "DELETE", path: "/scim/v2/Groups/" + gid4},
	}
}

func q(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, " ", "%20"), `"`, "%22") }

// golden is one file in testdata/golden.
type golden struct {
	Request struct {
		Method  string          `json:"method"`
		Path    string          `json:"path"`
		Headers []string        `json:"headers,omitempty"`
		Body    json.RawMessage `json:"body,omitempty"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    any               `json:"body,omitempty"`
	} `json:"response"`
}

func TestGolden(t *testing.T) {
	e := newEnv(t, func(c *scim.Config) { c.Now = fixedClock(); c.NewID = seqIDs() })
	norm := newNormaliser()
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			checkGolden(t, gc.name, record(e, norm, gc))
		})
	}
}

// record sends gc and returns the exchange, normalised.
func record(e *env, norm *normaliser, gc goldenCase) golden {
	r := e.call(gc.method, gc.path, gc.body, gc.headers...)
	var got golden
	got.Request.Method, got.Request.Path, got.Request.Headers = gc.method, gc.path, gc.headers
	if gc.body != "" {
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(gc.body)); err != nil {
			got.Request.Body, _ = json.Marshal(gc.body) // deliberately malformed: keep as a string
		} else {
			got.Request.Body = b.Bytes()
		}
	}
	got.Response.Status = r.status
	got.Response.Headers = map[string]string{}
	for _, h := range []string{"Content-Type", "Location", "ETag", "Allow", "WWW-Authenticate"} {
		if v := r.header.Get(h); v != "" {
			got.Response.Headers[h] = norm.str(v)
		}
	}
	if r.body != nil {
		got.Response.Body = norm.value(r.body)
	}
	return got
}

// checkGolden compares v, as indented JSON, with testdata/golden/name.json
// (or writes it there with -update).
func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	gotJSON := buf.Bytes()
	file := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(file, gotJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(want, gotJSON) {
		t.Errorf("response differs from %s (rerun with -update if intended)\n--- got ---\n%s", file, gotJSON)
	}
}

// normaliser replaces ids, timestamps and versions with stable
// placeholders; an id keeps its placeholder across the whole run.
type normaliser struct {
	ids map[string]string
}

func newNormaliser() *normaliser { return &normaliser{ids: map[string]string{}} }

var (
	uuidRE    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)
	versionRE = regexp.MustCompile(`^W/"\d+"$`)
)

func (n *normaliser) str(s string) string {
	switch {
	case timeRE.MatchString(s):
		return "<time>"
	case versionRE.MatchString(s):
		return `W/"<version>"`
	}
	return uuidRE.ReplaceAllStringFunc(s, func(id string) string {
		p, ok := n.ids[id]
		if !ok {
			p = fmt.Sprintf("<id-%d>", len(n.ids)+1)
			n.ids[id] = p
		}
		return p
	})
}

func (n *normaliser) value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = n.value(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = n.value(e)
		}
		return out
	case string:
		return n.str(x)
	}
	return v
}
