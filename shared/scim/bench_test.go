package scim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchCall serves one request in-process and checks the status.
func benchCall(b *testing.B, e *env, want int, method, path, body string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
}

func benchUser(i int) string {
	return fmt.Sprintf(`{%s,"userName":"user%06d@atko.example","externalId":"00u%06d","name":{"givenName":"G%d","familyName":"%s%d"},
		"emails":[{"value":"user%06d@atko.example","type":"work","primary":true}],"active":true,"displayName":"User %d",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D%d","costCenter":"C%d"}}`,
		userSchemas, i, i, i, string(rune('A'+i%26)), i, i, i, i%10, i%7)
}

func BenchmarkCreateUser(b *testing.B) {
	e := newEnv(b, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchCall(b, e, http.StatusCreated, "POST", "/scim/v2/Users", benchUser(i))
		i++
	}
}

func BenchmarkPatchUser(b *testing.B) {
	e := newEnv(b, nil)
	id := e.createUser("patch@atko.example", `,"emails":[{"value":"p@x","type":"work"}]`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchCall(b, e, http.StatusOK, "PATCH", "/scim/v2/Users/"+id, patchBody(fmt.Sprintf(
			`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"p%d@x"},{"op":"replace","value":{"active":%v}}`, i, i%2 == 0)))
		i++
	}
}

// BenchmarkFilteredList lists from 1,000 users: an indexed equality, a
// filter that walks every user, and an unfiltered page.
func BenchmarkFilteredList(b *testing.B) {
	e := newEnv(b, nil)
	for i := range 1000 {
		benchCall(b, e, http.StatusCreated, "POST", "/scim/v2/Users", benchUser(i))
	}
	cases := []struct {
		name, query string
		total       int
	}{
		{"userName eq", "filter=" + q(`userName eq "USER000500@atko.example"`), 1},
		{"externalId eq", "filter=" + q(`externalId eq "00u000500"`), 1},
		{"name.familyName sw (walks 1000)", "filter=" + q(`name.familyName sw "X"`) + "&count=100", 38},
		{"enterprise department eq (walks 1000)", "filter=" + q(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "d3"`) + "&count=100", 100},
		{"unfiltered page of 100", "startIndex=401&count=100", 1000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := e.mustCall(http.StatusOK, "GET", "/scim/v2/Users?"+c.query, "")
			if r.body["totalResults"] != float64(c.total) {
				b.Fatalf("totalResults %v, want %d", r.body["totalResults"], c.total)
			}
			b.ReportAllocs()
			for b.Loop() {
				benchCall(b, e, http.StatusOK, "GET", "/scim/v2/Users?"+c.query, "")
			}
		})
	}
}
