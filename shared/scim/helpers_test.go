package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

const testToken = "test-token-0123456789"

// recQueue records intents; err makes Enqueue fail after recording nothing.
type recQueue struct {
	mu      sync.Mutex
	intents []queue.Intent
	err     error
}

func (q *recQueue) Enqueue(_ context.Context, intents ...queue.Intent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.intents = append(q.intents, intents...)
	return nil
}

func (q *recQueue) all() []queue.Intent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.Intent(nil), q.intents...)
}

// env is a handler over a fresh bolt store behind an httptest server.
type env struct {
	t  testing.TB
	st *bolt.Store
	// hooks wraps st and is what the handler uses: tests count calls and
	// inject failures through it.
	hooks *hookStore
	q     *recQueue
	h     http.Handler
	srv   *httptest.Server
	log   *bytes.Buffer
}

func openBolt(t testing.TB) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatalf("open bolt: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newEnv starts a server; mod adjusts the config (and may wrap the store).
func newEnv(t testing.TB, mod func(*scim.Config)) *env {
	t.Helper()
	e := &env{t: t, st: openBolt(t), q: &recQueue{}, log: &bytes.Buffer{}}
	e.hooks = newHookStore(e.st)
	cfg := scim.Config{
		Token:  testToken,
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: e.log}, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := scim.NewHandler(e.hooks, e.q, cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) base() string { return e.srv.URL + "/scim/v2" }

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// result is a decoded response.
type result struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// call sends a request straight to the handler (no network), with the
// test token unless headers override Authorization.
func (e *env) call(method, path, body string, headers ...string) result {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	r := result{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if len(bytes.TrimSpace(r.raw)) > 0 {
		if err := json.Unmarshal(r.raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, r.raw)
		}
	}
	return r
}

// mustCall is call that fails the test on an unexpected status.
func (e *env) mustCall(want int, method, path, body string, headers ...string) result {
	e.t.Helper()
	r := e.call(method, path, body, headers...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", method, path, r.status, want, r.raw)
	}
	return r
}

// createUser posts a minimal user and returns its id.
func (e *env) createUser(userName string, extra ...string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q%s}`, userName, strings.Join(extra, ""))
	r := e.mustCall(http.StatusCreated, "POST", "/scim/v2/Users", body)
	return r.body["id"].(string)
}

func (e *env) createGroup(name string, members ...string) string {
	e.t.Helper()
	ms := make([]string, len(members))
	for i, m := range members {
		ms[i] = fmt.Sprintf(`{"value":%q}`, m)
	}
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q,"members":[%s]}`, name, strings.Join(ms, ","))
	r := e.mustCall(http.StatusCreated, "POST", "/scim/v2/Groups", body)
	return r.body["id"].(string)
}

// fixedClock and seqIDs make responses deterministic.
func fixedClock() func() time.Time {
	return func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
}

func seqIDs() func() string {
	var mu sync.Mutex
	n := 0
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	}
}
