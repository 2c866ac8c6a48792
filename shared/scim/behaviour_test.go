package scim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/scim"
)

func TestNewHandlerConfig(t *testing.T) {
	st := openBolt(t)
	q := &recQueue{}
	cases := []struct {
		name string
		st   scim.Store
		q    queue.Enqueuer
		cfg  scim.Config
		ok   bool
	}{
		{"valid", st, q, scim.Config{Token: "t"}, true},
		{"valid base URL", st, q, scim.Config{Token: "t", BaseURL: "https://x.example/scim/v2/"}, true},
		{"no token", st, q, scim.Config{}, false},
		{"no store", nil, q, scim.Config{Token: "t"}, false},
		{"no queue", st, nil, scim.Config{Token: "t"}, false},
		{"relative base URL", st, q, scim.Config{Token: "t", BaseURL: "/scim/v2"}, false},
		{"ftp base URL", st, q, scim.Config{Token: "t", BaseURL: "ftp://x/scim/v2"}, false},
		{"negative body limit", st, q, scim.Config{Token: "t", MaxBodyBytes: -1}, false},
		{"negative max results", st, q, scim.Config{Token: "t", MaxResults: -1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := scim.NewHandler(tc.st, tc.q, tc.cfg)
			if (err == nil) != tc.ok || (h != nil) != tc.ok {
				t.Fatalf("NewHandler = %v, %v; want ok=%v", h, err, tc.ok)
			}
		})
	}
}

// TestIntents: each accepted write queues one intent per changed identity
// with the new version, the reason and the request id; no-ops queue nothing.
func TestIntents(t *testing.T) {
	// Sequential ids: a write's intents come in identity-id order.
	e := newEnv(t, func(c *scim.Config) { c.NewID = seqIDs() })
	rid := []string{"X-Request-Id", "req-42"}
	r := e.mustCall(201, "POST", "/scim/v2/Users", `{`+userSchemas+`,"userName":"a@x"}`, rid...)
	a := r.body["id"].(string)
	if got := r.header.Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id echoed as %q", got)
	}
	b := e.createUser("b@x")
	e.mustCall(200, "PUT", "/scim/v2/Users/"+a, `{`+userSchemas+`,"userName":"a2@x"}`, rid...)
	e.mustCall(200, "PATCH", "/scim/v2/Users/"+a, patchBody(`{"op":"replace","path":"title","value":"T"}`), rid...)
	// No-ops: same title again, password only, PUT of the same content.
	e.mustCall(200, "PATCH", "/scim/v2/Users/"+a, patchBody(`{"op":"replace","path":"title","value":"T"},{"op":"replace","path":"password","value":"p"}`))
	g := e.mustCall(201, "POST", "/scim/v2/Groups", `{`+groupSchemas+`,"displayName":"G","members":[{"value":"`+a+`"}]}`, rid...).body["id"].(string)
	e.mustCall(204, "PATCH", "/scim/v2/Groups/"+g, patchBody(`{"op":"add","path":"members","value":[{"value":"`+b+`"},{"value":"`+a+`"}]}`), rid...)
	e.mustCall(204, "PATCH", "/scim/v2/Groups/"+g, patchBody(`{"op":"replace","path":"displayName","value":"G"}`)) // no-op
	e.mustCall(200, "PUT", "/scim/v2/Groups/"+g, `{`+groupSchemas+`,"displayName":"G2","members":[{"value":"`+b+`"}]}`, rid...)
	e.mustCall(204, "DELETE", "/scim/v2/Groups/"+g, "", rid...)
	e.mustCall(204, "DELETE", "/scim/v2/Users/"+a, "", rid...)

	got := e.q.all()
	want := []queue.Intent{
		{IdentityID: a, Version: 1, Reason: "scim.user.create", RequestID: "req-42"},
		{IdentityID: b, Version: 1, Reason: "scim.user.create"},
		{IdentityID: a, Version: 2, Reason: "scim.user.replace", RequestID: "req-42"},
		{IdentityID: a, Version: 3, Reason: "scim.user.patch", RequestID: "req-42"},
		{IdentityID: a, Version: 4, Reason: "scim.group.create", RequestID: "req-42"},
		{IdentityID: b, Version: 2, Reason: "scim.group.patch", RequestID: "req-42"},
		// The PUT renames G to G2 and drops a: b stays but sees the new name.
		{IdentityID: a, Version: 5, Reason: "scim.group.replace", RequestID: "req-42"},
		{IdentityID: b, Version: 3, Reason: "scim.group.replace", RequestID: "req-42"},
		{IdentityID: b, Version: 4, Reason: "scim.group.delete", RequestID: "req-42"},
		{IdentityID: a, Version: 6, Reason: "scim.user.delete", RequestID: "req-42"},
	}
	for i := range got {
		if got[i].RequestID != "req-42" {
			got[i].RequestID = "" // generated ids vary
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("intents:\n got %+v\nwant %+v", got, want)
	}
}

func TestEnqueueFailureStillSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	e.q.err = errors.New("sqs: unavailable")
	r := e.mustCall(201, "POST", "/scim/v2/Users", `{`+userSchemas+`,"userName":"a@x"}`)
	id := r.body["id"].(string)
	ident, err := e.st.GetIdentity(context.Background(), id)
	if err != nil || ident.Version != 1 {
		t.Fatalf("user not stored: %v %v", ident, err)
	}
	pending, err := e.st.ListPending(context.Background(), ident.Modified.Add(1), 10)
	if err != nil || len(pending) != 1 || pending[0].ID != id {
		t.Fatalf("user not pending (the outbox): %v %v", pending, err)
	}
	if !strings.Contains(e.log.String(), `"level":"WARN"`) || !strings.Contains(e.log.String(), "enqueue failed") {
		t.Fatalf("no warning logged:\n%s", e.log)
	}
}

func TestVersionConflicts(t *testing.T) {
	patch := patchBody(`{"op":"replace","path":"title","value":"T"}`)
	cases := []struct {
		name      string
		conflicts int
		ifMatch   bool
		status    int
		writes    int
	}{
		{"retried until it succeeds", 3, false, 200, 4},
		{"gives up with 409", 100, false, 409, 5},
		{"If-Match turns a conflict into 412", 1, true, 412, 1},
	}
	for _, tc := range cases {
		for _, kind := range []string{"Users", "Groups"} {
			t.Run(kind+" "+tc.name, func(t *testing.T) {
				e := newEnv(t, nil)
				var id, method, body string
				if kind == "Users" {
					id, method, body = e.createUser("a@x"), "UpdateIdentity", patch
				} else {
					id, method, body = e.createGroup("G"), "UpdateGroup", patchBody(`{"op":"replace","path":"displayName","value":"H"}`)
				}
				e.hooks.conflicts = tc.conflicts
				var hdr []string
				if tc.ifMatch {
					hdr = []string{"If-Match", `W/"1"`}
				}
				r := e.call("PATCH", "/scim/v2/"+kind+"/"+id, body, hdr...)
				if r.status == 204 {
					r.status = 200
				}
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
				}
				if n := e.hooks.count(method); n != tc.writes {
					t.Errorf("%s called %d times, want %d", method, n, tc.writes)
				}
				if tc.status == 409 && !strings.Contains(r.body["detail"].(string), "concurrently") {
					t.Errorf("409 detail %q", r.body["detail"])
				}
			})
		}
	}
}

// TestConcurrentPatches: parallel writers to one user never get a 5xx and
// every 200 is exactly one version.
func TestConcurrentPatches(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createUser("a@x")
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("PATCH", "/scim/v2/Users/"+id, strings.NewReader(patchBody(fmt.Sprintf(`{"op":"add","path":"urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:f%d","value":"v"}`, i))))
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			statuses[i] = rec.Code
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 409:
		default:
			t.Fatalf("status %d", s)
		}
	}
	ident, err := e.st.GetIdentity(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ident.Version != int64(1+ok) {
		t.Fatalf("version %d after %d successful patches", ident.Version, ok)
	}
	var res map[string]any
	_ = json.Unmarshal(ident.Resource, &res)
	custom, _ := res[scim.URNCustomUser].(map[string]any)
	if len(custom) != ok {
		t.Fatalf("%d custom attributes stored, %d patches succeeded", len(custom), ok)
	}
}

func ids(t *testing.T, r result) []string {
	t.Helper()
	var out []string
	for _, x := range r.body["Resources"].([]any) {
		out = append(out, x.(map[string]any)["id"].(string))
	}
	return out
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, func(c *scim.Config) { c.MaxResults = 5; c.NewID = seqIDs() })
	var all []string
	for i := range 7 {
		all = append(all, e.createUser(fmt.Sprintf("u%d@x", i), `,"title":"T"`))
	}
	sort.Strings(all)
	cases := []struct {
		query      string
		start      int
		want       []string
		totalWants int
	}{
		{"startIndex=1&count=3", 1, all[0:3], 7},
		{"startIndex=3&count=2", 3, all[2:4], 7},
		{"startIndex=7&count=5", 7, all[6:], 7},
		{"startIndex=8&count=5", 8, nil, 7},
		{"startIndex=0&count=2", 1, all[0:2], 7},
		{"startIndex=-3&count=1", 1, all[0:1], 7},
		{"count=-1", 1, nil, 7},
		{"count=0", 1, nil, 7},
		{"count=500", 1, all[0:5], 7},
		{"", 1, all[0:5], 7},
	}
	for _, tc := range cases {
		for _, filtered := range []bool{false, true} {
			q := tc.query
			if filtered {
				q += "&filter=title%20eq%20%22t%22" // not indexed: walks the listing
			}
			t.Run(q, func(t *testing.T) {
				r := e.mustCall(200, "GET", "/scim/v2/Users?"+q, "")
				if got := ids(t, r); !slices.Equal(got, tc.want) {
					t.Errorf("ids %v, want %v", got, tc.want)
				}
				if r.body["totalResults"] != float64(tc.totalWants) || r.body["startIndex"] != float64(tc.start) ||
					r.body["itemsPerPage"] != float64(len(tc.want)) {
					t.Errorf("totals: %s", r.raw)
				}
				if _, ok := r.body["Resources"].([]any); !ok {
					t.Errorf("Resources is not an array: %s", r.raw)
				}
			})
		}
	}
}

// TestStoreUse pins which store calls requests make: equality filters use
// the indexes, other filters walk the listing, and groups/members are not
// read when the response leaves them out.
func TestStoreUse(t *testing.T) {
	e := newEnv(t, nil)
	a := e.createUser("a@x", `,"externalId":"ea"`)
	g := e.createGroup("G", a)
	cases := []struct {
		path   string
		called []string
		not    []string
	}{
		{"/scim/v2/Users?filter=" + q(`userName eq "A@X"`), []string{"GetIdentityByUserName", "GroupsOf"}, []string{"ListIdentities"}},
		{"/scim/v2/Users?filter=" + q(`externalId eq "ea"`), []string{"FindIdentitiesByExternalID"}, []string{"ListIdentities"}},
		{"/scim/v2/Users?filter=" + q(`id eq "`+a+`"`), []string{"GetIdentity"}, []string{"ListIdentities"}},
		{"/scim/v2/Users?filter=" + q(`userName sw "A"`) + "&attributes=userName", []string{"ListIdentities"}, []string{"GroupsOf", "CountIdentities"}},
		{"/scim/v2/Users?filter=" + q(`groups.display eq "G"`), []string{"ListIdentities", "GroupsOf"}, nil},
		{"/scim/v2/Users?attributes=userName", []string{"CountIdentities", "ListIdentities"}, []string{"GroupsOf"}},
		{"/scim/v2/Users/" + a + "?excludedAttributes=groups", []string{"GetIdentity"}, []string{"GroupsOf"}},
		{"/scim/v2/Users/" + a, []string{"GroupsOf"}, nil},
		{"/scim/v2/Groups/" + g + "?excludedAttributes=members", []string{"GetGroup"}, []string{"Members"}},
		{"/scim/v2/Groups/" + g + "?attributes=displayName", []string{"GetGroup"}, []string{"Members"}},
		{"/scim/v2/Groups/" + g, []string{"Members"}, nil},
		{"/scim/v2/Groups?filter=" + q(`displayName eq "g"`) + "&excludedAttributes=members", []string{"GetGroupByDisplayName"}, []string{"ListGroups", "Members"}},
		{"/scim/v2/Groups?filter=" + q(`displayName sw "g"`) + "&excludedAttributes=members", []string{"ListGroups"}, []string{"Members"}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			e.hooks.reset()
			r := e.mustCall(200, "GET", tc.path, "")
			if strings.Contains(tc.path, "filter") && r.body["totalResults"] != float64(1) {
				t.Errorf("filter found %v", r.body["totalResults"])
			}
			for _, m := range tc.called {
				if e.hooks.count(m) == 0 {
					t.Errorf("%s not called", m)
				}
			}
			for _, m := range tc.not {
				if n := e.hooks.count(m); n != 0 {
					t.Errorf("%s called %d times", m, n)
				}
			}
		})
	}
	t.Run("group PATCH add and value-eq remove do not read members", func(t *testing.T) {
		b := e.createUser("b@x")
		e.hooks.reset()
		e.mustCall(204, "PATCH", "/scim/v2/Groups/"+g, patchBody(`{"op":"add","path":"members","value":[{"value":"`+b+`"}]},{"op":"remove","path":"members[value eq \"`+a+`\"]"}`))
		if n := e.hooks.count("Members"); n != 0 {
			t.Errorf("Members called %d times", n)
		}
	})
}

func TestProjection(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createUser("a@x", `,"name":{"givenName":"A","familyName":"B"},"emails":[{"value":"a@x","type":"work"}],"title":"T",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D","costCenter":"C"}`)
	ent := scim.URNEnterpriseUser
	cases := []struct {
		query string
		want  string // JSON of the resource without meta
	}{
		{"attributes=userName", `{"id":"ID","schemas":SCHEMAS,"userName":"a@x"}`},
		{"attributes=USERNAME,Name.GivenName", `{"id":"ID","name":{"givenName":"A"},"schemas":SCHEMAS,"userName":"a@x"}`},
		{"attributes=" + ent, `{"id":"ID","schemas":SCHEMAS,"` + ent + `":{"costCenter":"C","department":"D"}}`},
		{"attributes=" + ent + ":department", `{"id":"ID","schemas":SCHEMAS,"` + ent + `":{"department":"D"}}`},
		{"attributes=urn:ietf:params:scim:schemas:core:2.0:User:title,emails.type", `{"emails":[{"type":"work"}],"id":"ID","schemas":SCHEMAS,"title":"T"}`},
		{"attributes=id,meta,schemas", `{"id":"ID","schemas":SCHEMAS}`},
		{"attributes=nothing", `{"id":"ID","schemas":SCHEMAS}`},
		{"excludedAttributes=emails,name.familyName,active," + ent + ":costCenter,id,meta",
			`{"id":"ID","name":{"givenName":"A"},"schemas":SCHEMAS,"title":"T","userName":"a@x","` + ent + `":{"department":"D"}}`},
		{"excludedAttributes=" + ent + ",name,emails.value,active,title,userName", `{"emails":[{"type":"work"}],"id":"ID","schemas":SCHEMAS}`},
	}
	schemas := `["urn:ietf:params:scim:schemas:core:2.0:User","` + ent + `"]`
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := e.mustCall(200, "GET", "/scim/v2/Users/"+id+"?"+tc.query, "")
			if _, ok := r.body["meta"]; !ok {
				t.Errorf("meta missing")
			}
			delete(r.body, "meta")
			got, _ := json.Marshal(r.body)
			want := strings.NewReplacer("ID", id, "SCHEMAS", schemas).Replace(tc.want)
			if !jsonEqual(string(got), want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			// Lists project the same way.
			l := e.mustCall(200, "GET", "/scim/v2/Users?filter="+q(`id eq "`+id+`"`)+"&"+tc.query, "")
			res := l.body["Resources"].([]any)[0].(map[string]any)
			delete(res, "meta")
			if got, _ := json.Marshal(res); !jsonEqual(string(got), want) {
				t.Errorf("list got %s\nwant %s", got, want)
			}
		})
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestPatchSemantics is RFC 7644 §3.5.2 case by case, on a user created
// with start.
func TestPatchSemantics(t *testing.T) {
	ent := scim.URNEnterpriseUser
	start := `,"name":{"givenName":"A","familyName":"B"},"emails":[{"value":"a@work","type":"work","primary":true},{"value":"a@home","type":"home"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D","manager":{"value":"m1","displayName":"M"}}`
	cases := []struct {
		name string
		ops  string
		want map[string]any // path → value (nil: absent)
	}{
		{"replace simple", `{"op":"replace","path":"title","value":"T"}`, map[string]any{"title": "T"}},
		{"op names case-insensitive", `{"op":"REPLACE","path":"title","value":"T"},{"op":"Add","path":"nickName","value":"N"}`, map[string]any{"title": "T", "nickName": "N"}},
		{"path case-insensitive", `{"op":"replace","path":"NAME.GIVENNAME","value":"Z"}`, map[string]any{"name.givenName": "Z", "name.familyName": "B"}},
		{"replace complex merges", `{"op":"replace","path":"name","value":{"givenName":"Z"}}`, map[string]any{"name.givenName": "Z", "name.familyName": "B"}},
		{"replace null unassigns", `{"op":"replace","path":"name.givenName","value":null}`, map[string]any{"name.givenName": nil, "name.familyName": "B"}},
		{"remove sub-attribute", `{"op":"remove","path":"name.familyName"}`, map[string]any{"name.familyName": nil, "name.givenName": "A"}},
		{"remove complex", `{"op":"remove","path":"name"}`, map[string]any{"name": nil}},
		{"add to multi-valued", `{"op":"add","path":"emails","value":[{"value":"a@other","type":"other"}]}`, map[string]any{"emails.#": 3}},
		{"add duplicate value is a no-op", `{"op":"add","path":"emails","value":[{"value":"a@home","type":"home"}]}`, map[string]any{"emails.#": 2}},
		{"add primary demotes the old one", `{"op":"add","path":"emails","value":{"value":"a@new","primary":true}}`, map[string]any{"emails.#": 3, "emails.0.primary": false, "emails.2.primary": true}},
		{"replace multi-valued", `{"op":"replace","path":"emails","value":[{"value":"only@x"}]}`, map[string]any{"emails.#": 1, "emails.0.value": "only@x"}},
		{"replace filtered sub-attribute", `{"op":"replace","path":"emails[type eq \"home\"].value","value":"h@x"}`, map[string]any{"emails.#": 2, "emails.1.value": "h@x"}},
		{"replace filter case-insensitive", `{"op":"replace","path":"emails[type eq \"HOME\"].value","value":"h@x"}`, map[string]any{"emails.1.value": "h@x"}},
		{"replace unmatched eq filter adds", `{"op":"replace","path":"emails[type eq \"other\"].value","value":"o@x"}`, map[string]any{"emails.#": 3, "emails.2.type": "other", "emails.2.value": "o@x"}},
		{"add unmatched eq filter adds", `{"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"1"}`, map[string]any{"phoneNumbers.0.type": "mobile", "phoneNumbers.0.value": "1"}},
		{"replace filtered element merges", `{"op":"replace","path":"emails[type eq \"home\"]","value":{"display":"Home"}}`, map[string]any{"emails.1.display": "Home", "emails.1.value": "a@home"}},
		{"set primary through filter", `{"op":"replace","path":"emails[type eq \"home\"].primary","value":"True"}`, map[string]any{"emails.0.primary": false, "emails.1.primary": true}},
		{"remove filtered element", `{"op":"remove","path":"emails[type eq \"home\"]"}`, map[string]any{"emails.#": 1, "emails.0.type": "work"}},
		{"remove with or filter", `{"op":"remove","path":"emails[type eq \"home\" or value eq \"A@WORK\"]"}`, map[string]any{"emails": nil}},
		{"remove unmatched filter is a no-op", `{"op":"remove","path":"emails[type eq \"fax\"]"}`, map[string]any{"emails.#": 2}},
		{"remove filtered sub-attribute drops valueless element", `{"op":"remove","path":"emails[type eq \"home\"].value"}`, map[string]any{"emails.#": 1}},
		{"remove multi-valued by value", `{"op":"remove","path":"emails","value":[{"value":"a@home"}]}`, map[string]any{"emails.#": 1}},
		{"remove whole multi-valued", `{"op":"remove","path":"emails"}`, map[string]any{"emails": nil}},
		{"enterprise attribute path", `{"op":"replace","path":"` + ent + `:department","value":"E"}`, map[string]any{"ent.department": "E", "ent.manager.value": "m1"}},
		{"manager bare id", `{"op":"replace","path":"` + ent + `:manager","value":"m2"}`, map[string]any{"ent.manager.value": "m2", "ent.manager.displayName": "M"}},
		{"manager object", `{"op":"add","path":"` + ent + `:manager","value":{"value":"m3"}}`, map[string]any{"ent.manager.value": "m3"}},
		{"manager.value path", `{"op":"replace","path":"` + ent + `:manager.value","value":"m4"}`, map[string]any{"ent.manager.value": "m4"}},
		{"remove manager", `{"op":"remove","path":"` + ent + `:manager"}`, map[string]any{"ent.manager": nil, "ent.department": "D"}},
		{"whole extension path merges", `{"op":"replace","path":"` + ent + `","value":{"division":"V"}}`, map[string]any{"ent.division": "V", "ent.department": "D"}},
		{"remove whole extension", `{"op":"remove","path":"` + ent + `"}`, map[string]any{"ent": nil}},
		{"path-less URN-qualified keys", `{"op":"replace","value":{"` + ent + `:department":"X","name.familyName":"Y","title":"Z"}}`, map[string]any{"ent.department": "X", "name.familyName": "Y", "title": "Z"}},
		{"path-less extension object", `{"op":"add","value":{"` + ent + `":{"costCenter":"C"}}}`, map[string]any{"ent.costCenter": "C", "ent.department": "D"}},
		{"path-less Okta deactivate", `{"op":"replace","value":{"active":false}}`, map[string]any{"active": false}},
		{"path-less same id ignored", `{"op":"replace","value":{"id":"ID","schemas":["x"],"title":"T"}}`, map[string]any{"title": "T"}},
		{"Entra string boolean", `{"op":"Replace","path":"active","value":"False"}`, map[string]any{"active": false}},
		{"core URN-qualified path", `{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:title","value":"T"}`, map[string]any{"title": "T"}},
		{"custom extension attribute", `{"op":"add","path":"urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:level","value":3}`, map[string]any{"custom.level": 3.0}},
		{"unknown attribute ignored", `{"op":"add","path":"x509Certificates","value":[{"value":"x"}]},{"op":"add","path":"urn:example:other:User:x","value":"y"}`, map[string]any{"x509Certificates": nil}},
		{"password accepted, not stored", `{"op":"replace","path":"password","value":"secret"}`, map[string]any{"password": nil}},
		{"later op sees earlier op", `{"op":"add","path":"title","value":"T"},{"op":"remove","path":"title"}`, map[string]any{"title": nil}},
	}
	e := newEnv(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := e.createUser(fmt.Sprintf("p%d@x", i), start)
			ops := strings.ReplaceAll(tc.ops, `"ID"`, `"`+id+`"`)
			r := e.mustCall(200, "PATCH", "/scim/v2/Users/"+id, patchBody(ops))
			stored, err := e.st.GetIdentity(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(stored.Resource), "secret") {
				t.Errorf("password stored")
			}
			for path, want := range tc.want {
				got, ok := lookupPath(r.body, path)
				if n, isInt := want.(int); isInt {
					want = float64(n)
				}
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want absent", path, got)
					}
					continue
				}
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v\n%s", path, got, want, r.raw)
				}
			}
		})
	}
}

// lookupPath resolves "a.b", "emails.0.value", "emails.#" (length), "ent."
// and "custom." (extension objects).
func lookupPath(m map[string]any, path string) (any, bool) {
	path = strings.NewReplacer("ent.", scim.URNEnterpriseUser+"\x00", "custom.", scim.URNCustomUser+"\x00").Replace(path)
	if path == "ent" {
		path = scim.URNEnterpriseUser
	}
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == 0 })
	if strings.HasPrefix(path, "urn:") {
		head, rest, _ := strings.Cut(path, "\x00")
		parts = append([]string{head}, strings.FieldsFunc(rest, func(r rune) bool { return r == '.' })...)
	}
	var cur any = m
	for _, p := range parts {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[p]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			if p == "#" {
				return float64(len(x)), true
			}
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil, false
			}
			cur = x[i]
		default:
			return nil, false
		}
	}
	if n, ok := cur.([]any); ok && strings.HasSuffix(path, "#") {
		return float64(len(n)), true
	}
	return cur, true
}

func TestGroupPatchSemantics(t *testing.T) {
	e := newEnv(t, nil)
	u := make([]string, 4)
	for i := range u {
		u[i] = e.createUser(fmt.Sprintf("m%d@x", i))
	}
	cases := []struct {
		name    string
		initial []string
		ops     string
		want    []string
	}{
		{"add", []string{u[0]}, `{"op":"add","path":"members","value":[{"value":"U1"},{"value":"U2"}]}`, []string{u[0], u[1], u[2]}},
		{"add present member", []string{u[0]}, `{"op":"add","path":"members","value":[{"value":"U0"}]}`, []string{u[0]}},
		{"path-less add", nil, `{"op":"add","value":{"members":[{"value":"U3"}]}}`, []string{u[3]}},
		{"remove by value filter", []string{u[0], u[1]}, `{"op":"remove","path":"members[value eq \"U0\"]"}`, []string{u[1]}},
		{"remove by or filter", []string{u[0], u[1], u[2]}, `{"op":"remove","path":"members[value eq \"U0\" or value eq \"U2\"]"}`, []string{u[1]}},
		{"remove by display filter", []string{u[0], u[1]}, `{"op":"remove","path":"members[display eq \"M1@X\"]"}`, []string{u[0]}},
		{"remove absent member", []string{u[0]}, `{"op":"remove","path":"members[value eq \"U3\"]"}`, []string{u[0]}},
		{"Entra remove with value array", []string{u[0], u[1], u[2]}, `{"op":"Remove","path":"members","value":[{"value":"U0"},{"value":"U1"}]}`, []string{u[2]}},
		{"remove all", []string{u[0], u[1]}, `{"op":"remove","path":"members"}`, nil},
		{"replace", []string{u[0], u[1]}, `{"op":"replace","path":"members","value":[{"value":"U1"},{"value":"U3"}]}`, []string{u[1], u[3]}},
		{"path-less replace", []string{u[0]}, `{"op":"replace","value":{"members":[{"value":"U2"}]}}`, []string{u[2]}},
		{"add then remove same", nil, `{"op":"add","path":"members","value":[{"value":"U1"}]},{"op":"remove","path":"members[value eq \"U1\"]"}`, nil},
		{"remove then add same", []string{u[1]}, `{"op":"remove","path":"members"},{"op":"add","path":"members","value":{"value":"U1","type":"User"}}`, []string{u[1]}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := e.createGroup(fmt.Sprintf("g%d", i), tc.initial...)
			ops := tc.ops
			for j := range u {
				ops = strings.ReplaceAll(ops, fmt.Sprintf("U%d", j), u[j])
			}
			e.mustCall(204, "PATCH", "/scim/v2/Groups/"+g, patchBody(ops))
			ms, err := e.st.Members(context.Background(), g)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.UserID)
			}
			want := slices.Clone(tc.want)
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("members %v, want %v", got, want)
			}
		})
	}
}

func TestBaseURLAndETags(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createUser("a@x")
	cases := []struct {
		headers []string
		want    string
	}{
		{nil, "http://example.com/scim/v2/Users/" + id},
		{[]string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "abc.execute-api.eu-west-1.amazonaws.com"}, "https://abc.execute-api.eu-west-1.amazonaws.com/scim/v2/Users/" + id},
		{[]string{"X-Forwarded-Proto", "https, http", "X-Forwarded-Host", "a.example:8443, b.example"}, "https://a.example:8443/scim/v2/Users/" + id},
		{[]string{"X-Forwarded-Proto", "gopher", "X-Forwarded-Host", "evil/x?"}, "http://example.com/scim/v2/Users/" + id},
	}
	for _, tc := range cases {
		r := e.mustCall(200, "GET", "/scim/v2/Users/"+id, "", tc.headers...)
		if got := r.body["meta"].(map[string]any)["location"]; got != tc.want {
			t.Errorf("headers %v: location %v, want %s", tc.headers, got, tc.want)
		}
	}
	fixed := newEnv(t, func(c *scim.Config) { c.BaseURL = "https://scim.example/prod/scim/v2/" })
	id2 := fixed.createUser("b@x")
	r := fixed.mustCall(200, "GET", "/scim/v2/Users/"+id2, "")
	if got := r.body["meta"].(map[string]any)["location"]; got != "https://scim.example/prod/scim/v2/Users/"+id2 {
		t.Errorf("configured base: %v", got)
	}

	etag := r.header.Get("ETag")
	if etag != `W/"1"` || r.body["meta"].(map[string]any)["version"] != etag {
		t.Fatalf("ETag %q, meta.version %v", etag, r.body["meta"])
	}
	notMod := fixed.call("GET", "/scim/v2/Users/"+id2, "", "If-None-Match", etag)
	if notMod.status != http.StatusNotModified || len(notMod.raw) != 0 {
		t.Errorf("If-None-Match: %d %s", notMod.status, notMod.raw)
	}
	ok := fixed.mustCall(200, "PATCH", "/scim/v2/Users/"+id2, patchBody(`{"op":"add","path":"title","value":"T"}`), "If-Match", etag)
	if ok.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag after patch %q", ok.header.Get("ETag"))
	}
	fixed.mustCall(200, "PUT", "/scim/v2/Users/"+id2, `{`+userSchemas+`,"userName":"b@x"}`, "If-Match", `"2"`)
	fixed.mustCall(204, "DELETE", "/scim/v2/Users/"+id2, "", "If-Match", "*")
}

// TestLogging: one JSON line per request with the fields operators need,
// and none of the secrets or personal data.
func TestLogging(t *testing.T) {
	e := newEnv(t, nil)
	r := e.mustCall(201, "POST", "/scim/v2/Users", `{`+userSchemas+`,"userName":"secret.person@atko.example","password":"hunter2-pw","name":{"givenName":"Privata"}}`, "X-Amzn-Trace-Id", "Root=1-abc-def")
	id := r.body["id"].(string)
	e.call("GET", "/scim/v2/Users", "", "Authorization", "Bearer wrong-token-value")
	e.call("PATCH", "/scim/v2/Users/"+id, patchBody(`{"op":"replace","path":"password","value":"hunter3-pw"}`))
	logs := e.log.String()
	for _, secret := range []string{testToken, "wrong-token-value", "hunter2-pw", "hunter3-pw", "secret.person", "Privata"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), logs)
	}
	first := lines[0]
	want := map[string]any{"request_id": "Root=1-abc-def", "method": "POST", "route": "/scim/v2/Users", "status": 201.0, "id": id}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("log %s = %v, want %v", k, first[k], v)
		}
	}
	if _, ok := first["duration_ms"].(float64); !ok {
		t.Errorf("no duration_ms")
	}
	if lines[1]["status"] != 401.0 || lines[2]["route"] != "/scim/v2/Users/{id}" {
		t.Errorf("lines: %v", lines)
	}
}

// TestDeleteFreesUserName: a deleted user's userName can be reused, and
// the tombstone stays invisible.
func TestDeleteFreesUserName(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createUser("a@x", `,"externalId":"e1"`)
	e.mustCall(204, "DELETE", "/scim/v2/Users/"+id, "")
	for _, path := range []string{
		"/scim/v2/Users?filter=" + q(`userName eq "a@x"`),
		"/scim/v2/Users?filter=" + q(`externalId eq "e1"`),
		"/scim/v2/Users?filter=" + q(`id eq "`+id+`"`),
		"/scim/v2/Users",
	} {
		if r := e.mustCall(200, "GET", path, ""); r.body["totalResults"] != 0.0 {
			t.Errorf("%s: %s", path, r.raw)
		}
	}
	e.mustCall(404, "PATCH", "/scim/v2/Users/"+id, patchBody(`{"op":"replace","path":"title","value":"x"}`))
	e.mustCall(404, "PUT", "/scim/v2/Users/"+id, `{`+userSchemas+`,"userName":"a@x"}`)
	if again := e.createUser("A@X"); again == id {
		t.Fatalf("id reused")
	}
}
