package scim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/scim"
)

// fuzzMethods maps the fuzzed method byte to a method.
func fuzzMethods() []string { return []string{"GET", "POST", "PUT", "PATCH", "DELETE"} }

// fuzzEnv has a user (uid1), a second user (uid2) and a group (uid3 is
// the group's id: ids are sequential) for fuzzed requests to work on.
func fuzzEnv(f *testing.F) *env {
	e := newEnv(f, func(c *scim.Config) { c.NewID = seqIDs(); c.MaxBodyBytes = 16 << 10 })
	e.createUser("jane@atko.example", `,"emails":[{"value":"jane@atko.example","type":"work","primary":true}],"name":{"givenName":"Jane"}`)
	e.createUser("bob@atko.example")
	e.createGroup("Learners", uid1)
	return e
}

// checkFuzzResponse: no 5xx, and every 4xx is a SCIM error body.
func checkFuzzResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code < 400 {
		return
	}
	var body struct {
		Schemas []string `json:"schemas"`
		Status  string   `json:"status"`
		Detail  string   `json:"detail"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("status %d with a non-JSON body: %q", rec.Code, rec.Body)
	}
	if len(body.Schemas) != 1 || body.Schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" ||
		body.Status != strconv.Itoa(rec.Code) || body.Detail == "" {
		t.Fatalf("status %d with a non-SCIM error body: %s", rec.Code, rec.Body)
	}
}

func serve(e *env, method, target, body string) *httptest.ResponseRecorder {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil // net/http would have refused it before any handler
	}
	req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
	req.Method, req.URL, req.RequestURI = method, u, target
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/scim+json")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// FuzzPatchRequest sends arbitrary PATCH bodies to a user and a group.
func FuzzPatchRequest(f *testing.F) {
	for _, gc := range goldenCases() {
		if gc.method == "PATCH" {
			f.Add(gc.body, strings.Contains(gc.path, "/Groups/"))
		}
	}
	f.Add(patchBody(`{"op":"replace","path":"emails[type eq \"work\"].value","value":"x"}`), false)
	f.Add(patchBody(`{"op":"add","path":"emails[value pr].primary","value":"true"}`), false)
	f.Add(patchBody(`{"op":"remove","path":"members[not (value eq \"x\")]"}`), true)
	f.Add(patchBody(`{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":{"value":null}}}`), false)
	e := fuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string, group bool) {
		target := "/scim/v2/Users/" + uid1
		if group {
			target = "/scim/v2/Groups/" + uid3
		}
		checkFuzzResponse(t, serve(e, "PATCH", target, body))
	})
}

// FuzzHandler sends arbitrary methods, paths, query strings (filters,
// projections, paging) and bodies.
func FuzzHandler(f *testing.F) {
	for _, gc := range goldenCases() {
		for i, m := range fuzzMethods() {
			if m == gc.method {
				f.Add(uint8(i), strings.TrimPrefix(gc.path, "/scim/v2/"), gc.body)
			}
		}
	}
	f.Add(uint8(0), "Users?filter=emails[type eq \"work\" and value co \"@\"] or not (active eq false)", "")
	f.Add(uint8(0), "Groups?filter=members.value eq \""+uid1+"\"&attributes=members.display", "")
	f.Add(uint8(1), "Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName sw \"j\"","count":1e3}`)
	e := fuzzEnv(f)
	f.Fuzz(func(t *testing.T, method uint8, path, body string) {
		target := "/scim/v2/" + strings.ReplaceAll(path, " ", "%20")
		methods := fuzzMethods()
		rec := serve(e, methods[int(method)%len(methods)], target, body)
		if rec == nil {
			t.Skip("not a request URI")
		}
		checkFuzzResponse(t, rec)
	})
}
