package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestServerFlag(t *testing.T) {
	cases := []struct {
		in      string
		wantErr string
	}{
		{"ll=http://127.0.0.1:8080/scim/v2,tok", ""},
		{"peer=http://localhost:8090/scim/v2/,t", ""},
		{"v6=http://[::1]:9/scim/v2,t", ""},
		{"remote=https://example.com/scim/v2,t", "only loopback"},
		{"private=http://10.0.0.1/scim/v2,t", "only loopback"},
		{"http://127.0.0.1/scim/v2,t", "want name="},
		{"ll=http://127.0.0.1/scim/v2", "want name="},
		{"ll=http://127.0.0.1/scim/v2,", "want name="},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var s servers
			err := s.Set(tc.in)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if err == nil && strings.HasSuffix(s[0].base, "/") {
				t.Errorf("base %q keeps a trailing slash", s[0].base)
			}
		})
	}
}

// TestProbesAgainstAStub checks the probe plumbing (auth, paths, ids
// carried between probes) against a server that answers 200 with an id.
func TestProbesAgainstAStub(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = w.Write([]byte(`{"id":"x1","totalResults":1,"Resources":[{}]}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &client{ctx: ctx, s: server{"stub", srv.URL, "tok"}, hc: srv.Client(), sfx: "abc"}
	probes := c.probes()
	unauthorized := 0
	for _, p := range probes {
		if a := p.send(c); a.status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	if unauthorized != 1 {
		t.Errorf("%d probes answered 401, want exactly the one sent without a token", unauthorized)
	}
	if !contains([]int{len(paths)}, len(probes)) {
		t.Errorf("%d requests for %d probes", len(paths), len(probes))
	}
	if c.uid != "x1" || c.gid != "x1" {
		t.Errorf("ids not carried between probes: user %q group %q", c.uid, c.gid)
	}
	for _, p := range paths {
		if strings.Contains(p, "//") || strings.HasSuffix(p, "/Users/") {
			t.Errorf("bad path %q", p)
		}
	}
}
