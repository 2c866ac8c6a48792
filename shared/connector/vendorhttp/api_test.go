package vendorhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

type openLimiter struct {
	pauser
	mu    sync.Mutex
	waits int
}

func (l *openLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return ctx.Err()
}

// TestAPIDo drives API.Do against a server that accepts only the token
// "good" and records what it received.
func TestAPIDo(t *testing.T) {
	tests := []struct {
		name     string
		login    string // the token every login hands out
		status   int    // the server's answer to an accepted token
		wantErr  string
		wantSeen string // the last request, as the server saw it
	}{
		{"decoded", "good", 200, "", "GET /api/users?q=a+b Bearer good k {}"},
		{"classified", "good", 404, "v.get: status 404: answered 404", "GET /api/users?q=a+b Bearer good k {}"},
		{"401 after every refresh", "bad", 200, "v.get: status 401: still unauthorized after refreshing the token: answered 401", "GET /api/users?q=a+b Bearer bad k {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				seen = r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Authorization") + " " + r.Header.Get("X-Key") + " " + string(body)
				if r.Header.Get("Authorization") != "Bearer good" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("X-Seen", "yes")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, `{"n": 7}`)
			}))
			t.Cleanup(srv.Close)
			lim := &openLimiter{}
			answered := 0
			api := NewAPI(API{Vendor: "v", Base: srv.URL + "/api", Limiter: lim,
				Decorate: func(r *http.Request) { r.Header.Set("X-Key", "k") },
				Classify: func(_ context.Context, cl Call, resp *Response) *connector.Error {
					e := Classify(cl.Op, resp.Status, resp.Header, time.Now())
					e.Err = fmt.Errorf("answered %d", resp.Status)
					return e
				},
				Answered: func(context.Context, Call, *Response) { answered++ },
				Retry:    Retry{Attempts: 1},
				Auth: Auth{Tokens: tokencache.NewLocal(), Login: func(context.Context, tokencache.Token) (tokencache.Token, bool, error) {
					return tokencache.Token{Value: tt.login}, false, nil
				}}})
			var out struct{ N int }
			h, err := api.Do(context.Background(), Call{Op: "v.get", Method: http.MethodGet, Path: "/users", Query: url.Values{"q": {"a b"}}, Body: struct{}{}}, &out)
			switch {
			case tt.wantErr == "" && (err != nil || out.N != 7 || h.Get("X-Seen") != "yes"):
				t.Fatalf("Do: %v, out %+v, header %v", err, out, h)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || connector.IsRetryable(err) == (tt.status == 404)):
				t.Fatalf("Do: %v, want %q", err, tt.wantErr)
			}
			if seen != tt.wantSeen {
				t.Errorf("server saw %q, want %q", seen, tt.wantSeen)
			}
			if lim.waits != answered {
				t.Errorf("%d limiter waits for %d answers", lim.waits, answered)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		raw  string
		path bool
		want string // "" error
	}{
		{"https://rest.myabsorb.com/", true, "https://rest.myabsorb.com"},
		{"https://h.example/scim/v2/", true, "https://h.example/scim/v2"},
		{"https://h.example/scim/v2", false, ""},
		{"https://acme.onelogin.com/", false, "https://acme.onelogin.com"},
		{"http://127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"http://localhost:1/", true, "http://localhost:1"},
		{"http://rest.myabsorb.com", true, ""},
		{"ftp://rest.myabsorb.com", true, ""},
		{"rest.myabsorb.com", true, ""},
		{"https://a:b@h.example", true, ""},
		{"https://h.example?x=1", true, ""},
		{"https://h.example#f", true, ""},
	}
	for _, tt := range tests {
		got, err := BaseURL("v", tt.raw, tt.path)
		if got != tt.want || (err == nil) != (tt.want != "") || (err != nil && !strings.HasPrefix(err.Error(), "v: ")) {
			t.Errorf("BaseURL(%q, %v) = %q, %v; want %q", tt.raw, tt.path, got, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "a:b@") && !strings.Contains(tt.raw, "a:b@") {
			t.Errorf("error invents input: %v", err)
		}
	}
}

func TestWarned(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var w Warned
	for _, names := range [][]string{{"a", "b"}, {"b"}, {"a", "c"}, nil} {
		w.Log(context.Background(), log, "ignoring", names)
	}
	if got := strings.Count(buf.String(), "ignoring"); got != 2 || !strings.Contains(buf.String(), "fields=\"[a b]\"") || !strings.Contains(buf.String(), "fields=[c]") {
		t.Errorf("logged:\n%s", buf.String())
	}
}
