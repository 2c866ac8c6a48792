package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/admin"
	"github.com/learnerlink/learnerlink/shared/review"
)

// recorded is what the fake server saw.
type recorded struct {
	method, uri, auth string
	body              map[string]string
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		method string
		uri    string
		body   map[string]string
		out    string // substring of stdout (or stderr when code != 0)
	}{
		{"reviews list", []string{"reviews", "list"}, 0, "GET", "/admin/reviews", nil, "id-1"},
		{"reviews list target", []string{"reviews", "list", "-target", "absorb"}, 0, "GET", "/admin/reviews?target=absorb", nil, "2 learners match by email"},
		{"resolve link", []string{"reviews", "resolve", "absorb", "id-1", "link", "L2"}, 0, "POST", "/admin/reviews/absorb/id-1/resolve",
			map[string]string{"action": "link", "learnerId": "L2", "by": "ann"}, `"ok"`},
		{"resolve create", []string{"reviews", "resolve", "absorb", "id-1", "create"}, 0, "POST", "/admin/reviews/absorb/id-1/resolve",
			map[string]string{"action": "create", "by": "ann"}, `"ok"`},
		{"resolve ignore", []string{"reviews", "resolve", "absorb", "id-1", "ignore"}, 0, "POST", "/admin/reviews/absorb/id-1/resolve",
			map[string]string{"action": "ignore", "by": "ann"}, `"ok"`},
		{"reconcile", []string{"reconcile"}, 0, "POST", "/admin/reconcile?dryRun=false", nil, `"ok"`},
		{"reconcile dry", []string{"reconcile", "-dry-run"}, 0, "POST", "/admin/reconcile?dryRun=true", nil, `"ok"`},
		{"reports", []string{"reports", "-n", "3", "-target", "absorb"}, 0, "GET", "/admin/reports?limit=3&target=absorb", nil, `"ok"`},
		{"audit", []string{"audit", "id-1", "-limit", "5"}, 0, "GET", "/admin/audit?identity=id-1&limit=5", nil, `"ok"`},
		{"server error", []string{"audit", "fail"}, 1, "GET", "/admin/audit?identity=fail&limit=100", nil, "409 Conflict: learner taken"},
		{"no command", nil, 2, "", "", nil, "no command"},
		{"link without learner", []string{"reviews", "resolve", "absorb", "id-1", "link"}, 2, "", "", nil, "want link <learnerId>"},
		{"unknown command", []string{"delete-everything"}, 2, "", "", nil, "unknown command"},
		{"audit without id", []string{"audit"}, 2, "", "", nil, "needs an identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []recorded
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := recorded{method: r.Method, uri: r.URL.RequestURI(), auth: r.Header.Get("Authorization")}
				if b, _ := io.ReadAll(r.Body); len(b) > 0 {
					if err := json.Unmarshal(b, &rec.body); err != nil {
						t.Errorf("body %q: %v", b, err)
					}
				}
				got = append(got, rec)
				w.Header().Set("Content-Type", "application/json")
				switch {
				case strings.Contains(r.URL.RawQuery, "identity=fail"):
					w.WriteHeader(http.StatusConflict)
					_, _ = io.WriteString(w, `{"error":"learner taken"}`)
				case r.URL.Path == "/admin/reviews":
					_ = json.NewEncoder(w).Encode(map[string]any{"reviews": []review.Entry{{IdentityID: "id-1", Target: "absorb",
						Status: review.Open, Reason: "2 learners match by email", Candidates: []string{"L1", "L2"}, Parked: time.Unix(0, 0)}}})
				default:
					_, _ = io.WriteString(w, `{"status":"ok"}`)
				}
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			env := map[string]string{"LEARNERLINK_ADMIN_TOKEN": "tok", "USER": "ann"}
			args := append([]string{"-url", srv.URL}, tt.args...)
			code := run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr, srv.Client())
			out := stdout.String()
			if tt.code != 0 {
				out = stderr.String()
			}
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("exit %d, output %q; want %d containing %q (stderr %q)", code, out, tt.code, tt.out, stderr.String())
			}
			if tt.method == "" {
				if len(got) != 0 {
					t.Fatalf("sent %+v on a usage error", got)
				}
				return
			}
			if len(got) != 1 || got[0].method != tt.method || got[0].uri != tt.uri || got[0].auth != "Bearer tok" {
				t.Fatalf("requests = %+v, want %s %s", got, tt.method, tt.uri)
			}
			if tt.body != nil && !equal(got[0].body, tt.body) {
				t.Fatalf("body = %v, want %v", got[0].body, tt.body)
			}
		})
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestNeedsToken(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"reviews", "list"}, func(string) string { return "" }, &stdout, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), "no token") {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
}

// TestAgainstHandler drives the real admin handler end to end.
func TestAgainstHandler(t *testing.T) {
	rv := &stubReviews{}
	srv := httptest.NewServer(admin.NewHandler(admin.Deps{Reviews: rv}, "tok"))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	env := func(k string) string { return map[string]string{"LEARNERLINK_ADMIN_TOKEN": "tok"}[k] }
	code := run(t.Context(), []string{"-url", srv.URL, "-by", "it-admin", "reviews", "resolve", "absorb", "id-7", "link", "L9"}, env, &stdout, &stderr, nil)
	if code != 0 || rv.got != "id-7 absorb link learner L9 it-admin" {
		t.Fatalf("exit %d (%s), resolved %q", code, stderr.String(), rv.got)
	}
	code = run(t.Context(), []string{"-url", srv.URL, "-token", "wrong", "reviews", "list"}, env, &stdout, &stderr, nil)
	if code != 1 || !strings.Contains(stderr.String(), "401") {
		t.Fatalf("wrong token: exit %d, %q", code, stderr.String())
	}
}

type stubReviews struct{ got string }

func (s *stubReviews) List(context.Context, string) ([]review.Entry, error) { return nil, nil }

func (s *stubReviews) Get(context.Context, string, string) (*review.Entry, error) {
	return nil, review.ErrNotFound
}

func (s *stubReviews) Resolve(_ context.Context, id, target string, r review.Resolution, by string) (*review.Entry, error) {
	s.got = fmt.Sprintf("%s %s %s %s", id, target, r, by)
	return &review.Entry{IdentityID: id, Target: target}, nil
}
