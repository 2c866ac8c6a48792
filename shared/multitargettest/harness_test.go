package multitargettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin/oneloginsim"
	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
	"github.com/learnerlink/learnerlink/shared/scim/scimtest"
	"github.com/learnerlink/learnerlink/shared/store"
)

const (
	absorbUser, absorbPass, absorbKey = "api-admin", "S3cret!pass", "0d3c6d5e-8f6b-4b8a-9a57-2a1f0e3c4b5d"
	oneloginClient, oneloginSecret    = "learnerlink-client-id", "learnerlink-client-secret"
	otherClient                       = "hr-system-client-id" // another integration writing to OneLogin
	scimToken                         = "test-scim-token-0123456789"

	urnUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	urnEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnPatch      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

	// patience bounds every wait for convergence; polling, never timing.
	patience = 60 * time.Second
)

// env is a local runner with several targets.
type env struct {
	t      *testing.T
	runner *allinone.Runner
	absorb *absorbsim.Sim
	lms    *scimoutsim.Sim // SCIM target "lessonly"
	down   *scimoutsim.Sim // SCIM target "down": 503 to everything; nil unless asked for
	ol     *oneloginsim.Sim
	hc     *http.Client
}

// start runs the local runner with the targets absorb, lessonly (SCIM),
// onelogin and, if withDown, a SCIM target that answers 503 throughout.
func start(t *testing.T, withDown bool) *env {
	t.Helper()
	e := &env{t: t, hc: &http.Client{Timeout: 30 * time.Second}}
	e.absorb = absorbsim.New(absorbsim.Options{Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey})
	t.Cleanup(e.absorb.Close)
	var err error
	if e.lms, err = scimoutsim.Start(t.TempDir(), scimoutsim.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.lms.Close() })
	e.ol = oneloginsim.New(oneloginsim.Options{CustomAttributes: []string{onelogin.DefaultOriginMarkerField}})
	t.Cleanup(e.ol.Close)
	e.ol.AddClient(oneloginClient, oneloginSecret)
	e.ol.AddClient(otherClient, "other-secret")

	targets := []map[string]any{
		{"name": "absorb", "type": "absorb", "url": e.absorb.URL(), "rateLimit": 100,
			"defaultDepartmentId": e.absorb.DefaultDepartmentID(),
			"credentials":         map[string]string{"usernameEnv": "T_ABSORB_USER", "passwordEnv": "T_ABSORB_PASS", "privateKeyEnv": "T_ABSORB_KEY"}},
		{"name": "lessonly", "type": "scim", "url": e.lms.URL, "profile": "generic", "rateLimit": 100,
			"credentials": map[string]string{"tokenEnv": "T_LMS_TOKEN"}},
		{"name": "onelogin", "type": "onelogin", "url": e.ol.URL(), "rateLimit": 100,
			"credentials": map[string]string{"clientIdEnv": "T_OL_ID", "clientSecretEnv": "T_OL_SECRET"}},
	}
	if withDown {
		if e.down, err = scimoutsim.Start(t.TempDir(), scimoutsim.Options{Rate503: 1, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.down.Close() })
		targets = append(targets, map[string]any{"name": "down", "type": "scim", "url": e.down.URL, "profile": "generic",
			"rateLimit": 100, "credentials": map[string]string{"tokenEnv": "T_LMS_TOKEN"}})
	}
	cfg, err := json.Marshal(map[string]any{"targets": targets})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "learnerlink.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"LEARNERLINK_DATA_DIR":   filepath.Join(dir, "data"),
		"LEARNERLINK_SCIM_TOKEN": scimToken,
		"LEARNERLINK_CONFIG":     cfgPath,
		"LEARNERLINK_WORKERS":    "4",
		"T_ABSORB_USER":          absorbUser, "T_ABSORB_PASS": absorbPass, "T_ABSORB_KEY": absorbKey,
		"T_LMS_TOKEN": e.lms.Token,
		"T_OL_ID":     oneloginClient, "T_OL_SECRET": oneloginSecret,
	}
	getenv := func(k string) string { return vars[k] }
	s, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := allinone.Start(t.Context(), s, allinone.Options{Getenv: getenv, Listener: ln})
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stop runner: %v", err)
		}
	})
	e.runner = r
	return e
}

// do sends one JSON request and decodes the answer.
func (e *env) do(method, rawURL, bearer string, body any, want int) map[string]any {
	e.t.Helper()
	return scimtest.Request(e.t, e.hc, method, rawURL, bearer, body, want)
}

// okta sends a SCIM request to learnerlink, as Okta's provisioning does.
func (e *env) okta(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	return e.do(method, e.runner.URL()+"/scim/v2"+path, scimToken, body, want)
}

type person struct {
	oktaID, login, first, last, dept, title string
}

func (p person) body() map[string]any {
	return map[string]any{
		"schemas":     []string{urnUser, urnEnterprise},
		"userName":    p.login,
		"externalId":  p.oktaID,
		"name":        map[string]any{"givenName": p.first, "familyName": p.last},
		"displayName": p.first + " " + p.last,
		"emails":      []any{map[string]any{"primary": true, "value": p.login, "type": "work"}},
		"title":       p.title,
		"active":      true,
		urnEnterprise: map[string]any{"department": p.dept},
	}
}

func (e *env) create(p person) string {
	e.t.Helper()
	id, _ := e.okta("POST", "/Users", p.body(), http.StatusCreated)["id"].(string)
	if id == "" {
		e.t.Fatal("no id in the SCIM create answer")
	}
	return id
}

func (e *env) patch(id string, value map[string]any) {
	e.t.Helper()
	e.okta("PATCH", "/Users/"+id, map[string]any{
		"schemas":    []string{urnPatch},
		"Operations": []any{map[string]any{"op": "replace", "value": value}},
	}, http.StatusOK)
}

// eventually polls check until it passes or patience runs out.
func (e *env) eventually(what string, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached within %s: %v", what, patience, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// absorbUser is the one Absorb user with the external id.
func (e *env) absorbUser(ext string) (absorbsim.User, error) {
	var found []absorbsim.User
	for _, u := range e.absorb.Users() {
		if u.ExternalID == ext {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return absorbsim.User{}, fmt.Errorf("absorb holds %d users with the external id", len(found))
	}
	return found[0], nil
}

// scimUsers lists the SCIM far end's users carrying the external id.
func (e *env) scimUsers(ext string) []map[string]any {
	e.t.Helper()
	q := url.Values{"filter": {fmt.Sprintf("externalId eq %q", ext)}}
	res := e.do("GET", e.lms.URL+"/Users?"+q.Encode(), e.lms.Token, nil, http.StatusOK)
	var out []map[string]any
	rs, _ := res["Resources"].([]any)
	for _, r := range rs {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) scimUser(ext string) (map[string]any, error) {
	us := e.scimUsers(ext)
	if len(us) != 1 {
		return nil, fmt.Errorf("the SCIM target holds %d users with the external id", len(us))
	}
	return us[0], nil
}

func (e *env) oneloginUser(ext string) (oneloginsim.User, error) {
	var found []oneloginsim.User
	for _, u := range e.ol.Users() {
		if u.ExternalID == ext {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return oneloginsim.User{}, fmt.Errorf("onelogin holds %d users with the external id", len(found))
	}
	return found[0], nil
}

// synced reports an error unless the identity's link to target is at the
// identity's current version.
func (e *env) synced(id, target string) error {
	ctx := e.t.Context()
	ident, err := e.runner.Store.GetIdentity(ctx, id)
	if err != nil {
		return err
	}
	l, err := e.runner.Store.GetLink(ctx, id, target)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no %s link yet", target)
	}
	if err != nil {
		return err
	}
	if l.SyncedVersion < ident.Version {
		return fmt.Errorf("%s link at v%d, identity at v%d", target, l.SyncedVersion, ident.Version)
	}
	return nil
}

func (e *env) pending(id string) bool {
	e.t.Helper()
	ps, err := e.runner.Store.ListPending(e.t.Context(), time.Now().Add(time.Hour), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.ContainsFunc(ps, func(p store.Pending) bool { return p.ID == id })
}

// downRequests counts the requests the down target received; every one
// must have been refused.
func (e *env) downRequests() int {
	e.t.Helper()
	rs := e.down.Requests()
	for _, r := range rs {
		if !r.Injected || r.Status != http.StatusServiceUnavailable {
			e.t.Fatalf("the down target answered %s %s with %d (injected %v)", r.Method, r.Path, r.Status, r.Injected)
		}
	}
	return len(rs)
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case bool:
		return fmt.Sprint(v)
	}
	return ""
}

// check joins the failed conditions: non-empty strings and non-nil errors.
func check(conds ...any) error {
	var bad []string
	for _, c := range conds {
		switch v := c.(type) {
		case string:
			if v != "" {
				bad = append(bad, v)
			}
		case error:
			bad = append(bad, v.Error())
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func want(what, got, want string) string {
	if got != want {
		return fmt.Sprintf("%s is %q, want %q", what, got, want)
	}
	return ""
}
