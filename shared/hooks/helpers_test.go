package hooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

// The samples in events/hooks use these values.
const (
	secret   = "test-hook-secret"
	janeID   = "00u1abcd2EFGHijk3l4m"
	salesID  = "00g1sales2ABCDEFgh3i"
	sfdcApp  = "0oa1sfdc9ZYXWvut8s7r"
	ownApp   = "0oa1lrnlnk2ABCDEFgh3"
	janeMail = "jane.doe@example.com"
)

func samplePath(name string) string {
	return filepath.Join("..", "..", "events", "hooks", name+".json")
}

// sample reads an API Gateway v2 event from events/hooks.
func sample(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	raw, err := os.ReadFile(samplePath(name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

// sampleEvents lists the Okta events in a sample delivery.
func sampleEvents(t testing.TB, name string) []map[string]any {
	t.Helper()
	var d struct {
		Data struct {
			Events []map[string]any `json:"events"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(sample(t, name).Body), &d); err != nil {
		t.Fatal(err)
	}
	return d.Data.Events
}

// env is a receiver over a real (bolt) store with a recording queue.
type env struct {
	st  *bolt.Store
	q   *recorder
	dir *fakeDir
	srv *httptest.Server
}

type recorder struct {
	mu      sync.Mutex
	intents []queue.Intent
}

func (r *recorder) Enqueue(_ context.Context, in ...queue.Intent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intents = append(r.intents, in...)
	return nil
}

func (r *recorder) take() []queue.Intent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.intents
	r.intents = nil
	return out
}

// fakeDir is a Directory; block makes it wait for the caller's deadline.
type fakeDir struct {
	mu    sync.Mutex
	users map[string]okta.User
	block bool
	calls int
}

func (d *fakeDir) GetUser(ctx context.Context, id string) (*okta.User, error) {
	d.mu.Lock()
	d.calls++
	u, ok := d.users[id]
	block := d.block
	d.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if !ok {
		return nil, fmt.Errorf("get user: %w", okta.ErrNotFound)
	}
	return &u, nil
}

func (d *fakeDir) put(u okta.User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[u.ID] = u
}

func (d *fakeDir) setBlock(b bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.block = b
}

func (d *fakeDir) callCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

func janeProfile() okta.User {
	return okta.User{ID: janeID, Status: "ACTIVE", Profile: okta.Profile{
		Login: janeMail, Email: janeMail, FirstName: "Jane", LastName: "Doe", DisplayName: "Jane Doe",
		Title: "Account Executive", Department: "Sales", EmployeeNumber: "E1001", CostCenter: "Berlin",
		Division: "EMEA", Organization: "Example Corp", ManagerID: "00u1boss0ABCDEFgh12", Manager: "Bo Boss",
		Locale: "en_US", Timezone: "Europe/Berlin", Extra: map[string]any{"lmsRole": "learner"},
	}}
}

// newEnv starts a receiver; withDir false means no Directory.
func newEnv(t *testing.T, withDir bool, mod func(*hooks.Config)) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, q: &recorder{}, dir: &fakeDir{users: map[string]okta.User{}}}
	e.dir.put(janeProfile())
	cfg := hooks.Config{Secret: secret, AppID: ownApp}
	if mod != nil {
		mod(&cfg)
	}
	var dir hooks.Directory
	if withDir {
		dir = e.dir
	}
	h, err := hooks.NewHandler(st, e.q, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

// send replays an API Gateway sample (method, headers, body) over HTTP.
func (e *env) send(t testing.TB, ev events.APIGatewayV2HTTPRequest) response {
	t.Helper()
	req, err := http.NewRequest(ev.RequestContext.HTTP.Method, e.srv.URL+ev.RawPath, strings.NewReader(ev.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ev.Headers {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	return do(t, req)
}

// post sends body with the given auth header value ("" for none).
func (e *env) post(t testing.TB, body, auth string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+hooks.Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r response
	r.status = resp.StatusCode
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	r.raw = sb.String()
	_ = json.Unmarshal([]byte(r.raw), &r.body)
	return r
}

// jane returns the live identity for Jane's Okta id (nil if none).
func (e *env) jane(t testing.TB) *store.Identity {
	t.Helper()
	ids, err := e.st.FindIdentitiesByExternalID(t.Context(), janeID)
	if err != nil {
		t.Fatal(err)
	}
	switch len(ids) {
	case 0:
		return nil
	case 1:
		return ids[0]
	}
	t.Fatalf("%d identities for %s", len(ids), janeID)
	return nil
}

func (e *env) groupsOf(t testing.TB, id string) []string {
	t.Helper()
	ms, err := e.st.GroupsOf(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.GroupName)
	}
	slices.Sort(out)
	return out
}

// written counts what a request may have written: identities, groups
// and seen-event documents.
func (e *env) written(t testing.TB) (identities, groups, seen int) {
	t.Helper()
	ctx := t.Context()
	var err error
	if identities, err = e.st.CountIdentities(ctx); err != nil {
		t.Fatal(err)
	}
	if groups, err = e.st.CountGroups(ctx); err != nil {
		t.Fatal(err)
	}
	docs, err := e.st.ListDocs(ctx, "hookevent", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return identities, groups, len(docs.Items)
}

func resource(t testing.TB, ident *store.Identity) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ident.Resource, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
