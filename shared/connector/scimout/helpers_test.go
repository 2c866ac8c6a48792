package scimout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/scimout"
	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

// fakeLimiter records waits and pauses; it never blocks.
type fakeLimiter struct {
	mu     sync.Mutex
	waits  int
	pauses []time.Duration
}

func (l *fakeLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return ctx.Err()
}

func (l *fakeLimiter) Pause(_ context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, d)
	return nil
}

func (l *fakeLimiter) snapshot() (int, []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waits, append([]time.Duration(nil), l.pauses...)
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

type env struct {
	t    *testing.T
	sim  *scimoutsim.Sim
	conn *scimout.Connector
	lim  *fakeLimiter
	logs *lockedBuffer
}

func startSim(t *testing.T, opts scimoutsim.Options) *scimoutsim.Sim {
	t.Helper()
	sim, err := scimoutsim.Start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// newEnv starts a sim and a connector with profile p (mod adjusts the
// connector config).
func newEnv(t *testing.T, opts scimoutsim.Options, p scimout.Profile, mod func(*scimout.Config)) *env {
	t.Helper()
	e := &env{t: t, sim: startSim(t, opts), lim: &fakeLimiter{}, logs: &lockedBuffer{}}
	e.conn = e.connect(p, mod)
	return e
}

func (e *env) connect(p scimout.Profile, mod func(*scimout.Config)) *scimout.Connector {
	e.t.Helper()
	cfg := scimout.Config{
		BaseURL: e.sim.URL,
		Auth:    scimout.BearerToken(e.sim.Token),
		Profile: p,
		Limiter: e.lim,
		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// In-request retries on (the default policy) without real waits.
		Retry: vendorhttp.Retry{Sleep: instant},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := scimout.New(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return c
}

func profile(t *testing.T, name string) scimout.Profile {
	t.Helper()
	p, ok := scimout.Profiles()[name]
	if !ok {
		t.Fatalf("no profile %q", name)
	}
	return p
}

func boolp(b bool) *bool { return &b }

func learner(n string) connector.Learner {
	return connector.Learner{
		ExternalID: "00u" + n,
		UserName:   n + "@example.com",
		Email:      n + "@example.com",
		FirstName:  "First" + n,
		LastName:   "Last" + n,
		Active:     true,
		Fields:     map[string]string{},
	}
}

func (e *env) create(l connector.Learner) string {
	e.t.Helper()
	id, err := e.conn.Create(context.Background(), l)
	if err != nil {
		e.t.Fatalf("Create(%s): %v", l.UserName, err)
	}
	return id
}

func (e *env) get(id string) connector.Learner {
	e.t.Helper()
	l, err := e.conn.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return *l
}

// raw reads a resource straight from the server (path under the base).
func (e *env) raw(path string) map[string]any {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.sim.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.sim.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return m
}

// rawPost creates a resource straight on the server and returns its id.
func (e *env) rawPost(path string, body any) string {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, e.sim.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.sim.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST %s: %d %s", path, res.StatusCode, rb)
	}
	var m map[string]any
	_ = json.Unmarshal(rb, &m)
	id, _ := m["id"].(string)
	return id
}

// requests returns the recorded requests matching method and path suffix
// ("" matches any).
func (e *env) requests(method, suffix string) []scimoutsim.Request {
	var out []scimoutsim.Request
	for _, r := range e.sim.Requests() {
		if (method == "" || r.Method == method) && strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

func asError(t *testing.T, err error) *connector.Error {
	t.Helper()
	var ce *connector.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *connector.Error", err, err)
	}
	return ce
}

// groupMembers lists a group's member ids as the server has them.
func (e *env) groupMembers(id string) []string {
	g := e.raw("/Groups/" + id)
	arr, _ := g["members"].([]any)
	var out []string
	for _, m := range arr {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := mm["value"].(string); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// groupByName finds a group on the server.
func (e *env) groupByName(name string) map[string]any {
	e.t.Helper()
	lr := e.raw("/Groups?filter=" + url.QueryEscape(`displayName eq "`+name+`"`))
	arr, _ := lr["Resources"].([]any)
	if len(arr) != 1 {
		e.t.Fatalf("group %q: %d found", name, len(arr))
	}
	return arr[0].(map[string]any)
}

// instant is a retry sleep that does not wait.
func instant(ctx context.Context, _ time.Duration) error { return ctx.Err() }
