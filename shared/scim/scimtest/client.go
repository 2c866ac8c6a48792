// Package scimtest holds black-box conformance suites for a SCIM 2.0
// service provider, run over HTTP against any base URL: Okta's published
// SCIM spec test and CRUD test step by step, the Okta Push Groups
// sequence, and the request shapes Microsoft Entra ID sends.
//
// Each suite creates its own uniquely named users and groups (random
// suffix) and deletes them when it ends, so it can run against a shared,
// non-empty server (the local runner, a deployed stack).
package scimtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Schema URNs the suites send and expect.
const (
	URNUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	URNGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URNEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	URNPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	URNList       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	URNError      = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// client is a minimal SCIM client; t is the suite's test, for cleanups.
type client struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func newClient(t *testing.T, baseURL, token string) *client {
	t.Helper()
	return &client{t: t, base: strings.TrimRight(baseURL, "/"), token: token, hc: &http.Client{Timeout: 30 * time.Second}}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// do sends a request; body (if not nil) is JSON-encoded as
// application/scim+json, as Okta sends it.
func (c *client) do(t *testing.T, method, path string, body any) *response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode request: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatalf("build %s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	out := &response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		if ct := res.Header.Get("Content-Type"); ct != "" {
			mt, _, _ := mime.ParseMediaType(ct)
			if mt != "application/scim+json" && mt != "application/json" {
				t.Errorf("%s %s: Content-Type %q, want application/scim+json", method, path, ct)
			}
		}
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return out
}

// expect fails the test unless the status is one of want.
func (r *response) expect(t *testing.T, what string, want ...int) *response {
	t.Helper()
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	t.Fatalf("%s: status %d, want %v\n%s", what, r.Status, want, r.Raw)
	return r
}

// expectError checks an RFC 7644 §3.12 error body.
func (r *response) expectError(t *testing.T, what string, status int, scimType string) {
	t.Helper()
	r.expect(t, what, status)
	if !hasString(r.Body["schemas"], URNError) {
		t.Errorf("%s: error schemas = %v, want %s", what, r.Body["schemas"], URNError)
	}
	if s, ok := r.Body["status"].(string); !ok || s != fmt.Sprint(status) {
		t.Errorf("%s: error status = %#v, want the string %q", what, r.Body["status"], fmt.Sprint(status))
	}
	if scimType != "" && r.Body["scimType"] != scimType {
		t.Errorf("%s: scimType = %v, want %s", what, r.Body["scimType"], scimType)
	}
}

// list checks a ListResponse and returns its Resources.
func (r *response) list(t *testing.T, what string) []map[string]any {
	t.Helper()
	r.expect(t, what, http.StatusOK)
	if !hasString(r.Body["schemas"], URNList) {
		t.Fatalf("%s: schemas = %v, want %s", what, r.Body["schemas"], URNList)
	}
	for _, k := range []string{"totalResults", "itemsPerPage", "startIndex"} {
		if _, ok := r.Body[k].(float64); !ok {
			t.Fatalf("%s: %s missing or not a number: %s", what, k, r.Raw)
		}
	}
	raw, ok := r.Body["Resources"].([]any)
	if !ok {
		t.Fatalf("%s: Resources is not an array: %s", what, r.Raw)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: a Resource is not an object: %s", what, r.Raw)
		}
		out = append(out, m)
	}
	if got := int(r.Body["itemsPerPage"].(float64)); got != len(out) {
		t.Errorf("%s: itemsPerPage %d but %d Resources", what, got, len(out))
	}
	return out
}

func (r *response) total() int {
	n, _ := r.Body["totalResults"].(float64)
	return int(n)
}

func hasString(v any, s string) bool {
	arr, _ := v.([]any)
	for _, e := range arr {
		if e == s {
			return true
		}
	}
	return false
}

// get walks a dotted path through a decoded resource ("name.givenName").
func get(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// ext returns an extension object of a resource.
func ext(m map[string]any, urn string) map[string]any {
	e, _ := m[urn].(map[string]any)
	return e
}

func suffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func filterQuery(f string) string {
	return "?filter=" + url.QueryEscape(f)
}

// step runs one numbered step as a subtest and stops the suite if it
// fails, since later steps build on it.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}

// cleanup deletes, when the whole suite ends, what it created (404 is
// fine: a step may have deleted it already).
func (c *client) cleanup(path string) {
	c.t.Cleanup(func() {
		res := c.do(c.t, http.MethodDelete, path, nil)
		if res.Status != http.StatusNoContent && res.Status != http.StatusNotFound {
			c.t.Errorf("cleanup DELETE %s: status %d", path, res.Status)
		}
	})
}

// oktaUser is the body Okta's provisioning engine sends on create.
func oktaUser(sfx string) map[string]any {
	return map[string]any{
		"schemas":  []string{URNUser},
		"userName": "Jane.Doe." + sfx + "@atko.example",
		"name": map[string]any{
			"givenName":  "Jane",
			"familyName": "Doe-" + sfx,
		},
		"emails": []any{map[string]any{
			"primary": true,
			"value":   "jane.doe." + sfx + "@atko.example",
			"type":    "work",
		}},
		"displayName": "Jane Doe",
		"locale":      "en-US",
		"externalId":  "00u" + sfx,
		"groups":      []any{},
		"password":    "1mz050nq-" + sfx,
		"active":      true,
	}
}

// sameJSON compares a sent value with a returned one through JSON.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	jx, _ := json.Marshal(x)
	jy, _ := json.Marshal(y)
	return bytes.Equal(jx, jy)
}

// checkUserValues asserts the attributes Okta's spec test compares.
func checkUserValues(t *testing.T, what string, sent, got map[string]any) {
	t.Helper()
	for _, p := range []string{"userName", "name.givenName", "name.familyName", "externalId", "displayName", "locale"} {
		if want := get(sent, p); want != nil && get(got, p) != want {
			t.Errorf("%s: %s = %v, want %v", what, p, get(got, p), want)
		}
	}
	if !sameJSON(sent["emails"], got["emails"]) {
		t.Errorf("%s: emails = %v, want %v", what, got["emails"], sent["emails"])
	}
	if _, ok := got["password"]; ok {
		t.Errorf("%s: password was returned", what)
	}
	if id, _ := got["id"].(string); id == "" {
		t.Errorf("%s: no id", what)
	}
}
