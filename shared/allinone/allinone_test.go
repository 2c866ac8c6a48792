package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/scim/scimtest"
)

// syncDeadline bounds how long a test waits for the workers to bring the
// sandbox LMS up to date. It is a ceiling, not an expected duration.
const syncDeadline = 20 * time.Second

// syncBuffer is a bytes.Buffer safe to write from the runner and read
// from the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs the real local runner on a loopback port with the sandbox
// target, stopped when the test ends. env adds variables (e.g.
// LEARNERLINK_SCIM_TOKEN); stdout receives what it prints.
func start(t *testing.T, dataDir string, stdout io.Writer, env map[string]string) *allinone.Runner {
	t.Helper()
	vars := map[string]string{
		"LEARNERLINK_DATA_DIR": dataDir,
		"LEARNERLINK_TARGET":   "sandbox",
		"LEARNERLINK_WORKERS":  "4",
	}
	for k, v := range env {
		vars[k] = v
	}
	getenv := func(k string) string { return vars[k] }
	s, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	r, err := allinone.Start(context.Background(), s, allinone.Options{Getenv: getenv, Stdout: stdout, Listener: ln})
	if err != nil {
		_ = ln.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return r
}

// call sends a request with the bearer token (none if token is "") and
// returns the status and body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return res.StatusCode, b
}

// mustJSON calls and decodes a JSON answer with the wanted status.
func mustJSON(t *testing.T, want int, method, url, token, body string, out any) {
	t.Helper()
	status, b := call(t, method, url, token, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode: %v: %s", method, url, err, b)
		}
	}
}

func createUser(t *testing.T, r *allinone.Runner, userName string) string {
	t.Helper()
	var res struct{ ID string }
	mustJSON(t, http.StatusCreated, "POST", r.URL()+"/scim/v2/Users", r.Token(), fmt.Sprintf(
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":"ext-%s",
		"name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":%q,"type":"work","primary":true}],"active":true}`,
		userName, userName, userName), &res)
	if res.ID == "" {
		t.Fatalf("create %s: no id", userName)
	}
	return res.ID
}

// learners reads the sandbox LMS through the admin view.
func learners(t *testing.T, r *allinone.Runner) []sandbox.Learner {
	t.Helper()
	var out []sandbox.Learner
	mustJSON(t, http.StatusOK, "GET", r.URL()+"/admin/sandbox", r.Token(), "", &out)
	return out
}

// waitFor polls cond until it holds or the deadline passes. The short
// pause only keeps the poll from spinning; nothing depends on its length.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(syncDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, syncDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasLearner reports whether the sandbox holds userName with that active
// state.
func hasLearner(ls []sandbox.Learner, userName string, active bool) bool {
	return slices.ContainsFunc(ls, func(l sandbox.Learner) bool {
		return strings.EqualFold(l.UserName, userName) && l.Active == active
	})
}

// TestConformance is the acceptance: every step of Okta's spec test and
// CRUD test (and the Push Groups and Entra sequences) passes against the
// real local runner over HTTP, one after another on one server, as Okta
// would run them against a live integration.
func TestConformance(t *testing.T) {
	r := start(t, t.TempDir(), io.Discard, nil)
	base := r.URL() + "/scim/v2"
	for _, s := range []struct {
		name string
		run  func(t *testing.T, baseURL, token string)
	}{
		{"OktaSpec", scimtest.OktaSpec},
		{"OktaCRUD", scimtest.OktaCRUD},
		{"OktaPushGroups", scimtest.OktaPushGroups},
		{"EntraShapes", scimtest.EntraShapes},
	} {
		t.Run(s.name, func(t *testing.T) { s.run(t, base, r.Token()) })
	}
}

// TestProvisionsSandbox: a SCIM create reaches the sandbox LMS through the
// queue and the workers, and so does a deactivation.
func TestProvisionsSandbox(t *testing.T) {
	r := start(t, t.TempDir(), io.Discard, nil)
	id := createUser(t, r, "ada@example.com")
	waitFor(t, "learner created in the sandbox", func() bool { return hasLearner(learners(t, r), "ada@example.com", true) })

	mustJSON(t, http.StatusOK, "PATCH", r.URL()+"/scim/v2/Users/"+id, r.Token(),
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, nil)
	waitFor(t, "learner deactivated in the sandbox", func() bool { return hasLearner(learners(t, r), "ada@example.com", false) })

	var audit struct {
		Records []map[string]any `json:"records"`
	}
	mustJSON(t, http.StatusOK, "GET", r.URL()+"/admin/audit?identity="+id, r.Token(), "", &audit)
	if len(audit.Records) == 0 {
		t.Errorf("no audit records for %s", id)
	}
}

// TestGeneratedToken: with no LEARNERLINK_SCIM_TOKEN the runner generates
// one, prints it exactly once, keeps it in the data dir with mode 0600,
// and a restart reuses it silently; a configured token is neither printed
// nor saved.
func TestGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	out := &syncBuffer{}
	r := start(t, dir, out, nil)
	tok := r.Token()
	if len(tok) < 32 {
		t.Fatalf("generated token %q is too short", tok)
	}
	if n := strings.Count(out.String(), tok); n != 1 {
		t.Errorf("token printed %d times, want once:\n%s", n, out.String())
	}
	path := filepath.Join(dir, "scim-token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode %v, want 0600", mode)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != tok {
		t.Errorf("token file holds %q (%v), want the token", b, err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	out2 := &syncBuffer{}
	r2 := start(t, dir, out2, nil)
	if r2.Token() != tok {
		t.Errorf("restart token differs from the saved one")
	}
	if strings.Contains(out2.String(), tok) {
		t.Errorf("token printed again on restart:\n%s", out2.String())
	}
	if err := r2.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	dir3 := t.TempDir()
	out3 := &syncBuffer{}
	r3 := start(t, dir3, out3, map[string]string{"LEARNERLINK_SCIM_TOKEN": "configured-token-0123456789"})
	if r3.Token() != "configured-token-0123456789" {
		t.Errorf("token %q, want the configured one", r3.Token())
	}
	if s := out3.String(); strings.Contains(s, "SCIM bearer token") || strings.Contains(s, "configured-token") {
		t.Errorf("printed with a configured token: %q", s)
	}
	if _, err := os.Stat(filepath.Join(dir3, "scim-token")); !os.IsNotExist(err) {
		t.Errorf("token file written for a configured token (stat: %v)", err)
	}
}

// TestRestartKeepsState: users, a group with its members, the token file
// and the sandbox LMS survive Stop and Start on the same data dir, and
// intents still queued at Stop are processed after the restart.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, io.Discard, nil)
	tok := r.Token()
	var ids []string
	for i := range 5 {
		ids = append(ids, createUser(t, r, fmt.Sprintf("user%d@example.com", i)))
	}
	var group struct{ ID string }
	mustJSON(t, http.StatusCreated, "POST", r.URL()+"/scim/v2/Groups", tok, fmt.Sprintf(
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[{"value":%q},{"value":%q}]}`,
		ids[0], ids[1]), &group)
	// Stop at once: some intents may still be queued.
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	out := &syncBuffer{}
	r2 := start(t, dir, out, nil)
	if r2.Token() != tok {
		t.Fatal("token changed across the restart")
	}
	if strings.Contains(out.String(), tok) {
		t.Errorf("token printed on restart")
	}
	for i, id := range ids {
		var u struct {
			UserName string
			Active   bool
		}
		mustJSON(t, http.StatusOK, "GET", r2.URL()+"/scim/v2/Users/"+id, tok, "", &u)
		if want := fmt.Sprintf("user%d@example.com", i); u.UserName != want || !u.Active {
			t.Errorf("user %s after restart: %+v, want %s active", id, u, want)
		}
	}
	var g struct {
		DisplayName string
		Members     []struct{ Value string }
	}
	mustJSON(t, http.StatusOK, "GET", r2.URL()+"/scim/v2/Groups/"+group.ID, tok, "", &g)
	var members []string
	for _, m := range g.Members {
		members = append(members, m.Value)
	}
	slices.Sort(members)
	want := []string{ids[0], ids[1]}
	slices.Sort(want)
	if g.DisplayName != "Engineering" || !slices.Equal(members, want) {
		t.Errorf("group after restart: %+v, want Engineering with %v", g, want)
	}
	var list struct{ TotalResults int }
	mustJSON(t, http.StatusOK, "GET", r2.URL()+"/scim/v2/Users?count=0", tok, "", &list)
	if list.TotalResults != len(ids) {
		t.Errorf("totalResults %d after restart, want %d", list.TotalResults, len(ids))
	}
	waitFor(t, "every user provisioned after the restart", func() bool {
		ls := learners(t, r2)
		for i := range ids {
			if !hasLearner(ls, fmt.Sprintf("user%d@example.com", i), true) {
				return false
			}
		}
		return true
	})
}

// TestAuth: the SCIM API and every admin view need the bearer token;
// /healthz does not.
func TestAuth(t *testing.T) {
	r := start(t, t.TempDir(), io.Discard, nil)
	cases := []struct {
		path  string
		token string
		want  int
	}{
		{"/healthz", "", http.StatusOK},
		{"/scim/v2/Users", "", http.StatusUnauthorized},
		{"/scim/v2/Users", "wrong", http.StatusUnauthorized},
		{"/scim/v2/Users", r.Token(), http.StatusOK},
		{"/admin/sandbox", "", http.StatusUnauthorized},
		{"/admin/sandbox", "wrong", http.StatusUnauthorized},
		{"/admin/sandbox", r.Token(), http.StatusOK},
		{"/admin/audit?identity=x", "", http.StatusUnauthorized},
		{"/admin/audit?identity=x", r.Token(), http.StatusOK},
		{"/admin/deadletters", "", http.StatusUnauthorized},
		{"/admin/deadletters", "wrong", http.StatusUnauthorized},
		{"/admin/deadletters", r.Token(), http.StatusOK},
		{"/admin/nothing", "", http.StatusUnauthorized},
		{"/admin/nothing", r.Token(), http.StatusNotFound},
	}
	for _, tc := range cases {
		name := tc.path + " token=" + map[bool]string{true: "none", false: "set"}[tc.token == ""]
		if tc.token == "wrong" {
			name = tc.path + " token=wrong"
		}
		t.Run(name, func(t *testing.T) {
			status, body := call(t, "GET", r.URL()+tc.path, tc.token, "")
			if status != tc.want {
				t.Errorf("status %d, want %d: %s", status, tc.want, body)
			}
			if tc.want == http.StatusUnauthorized && bytes.Contains(body, []byte(r.Token())) {
				t.Errorf("401 body leaks the token")
			}
		})
	}
}
