package scimout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/scimout"
	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
	"github.com/learnerlink/learnerlink/shared/retry"
)

var ctx = context.Background()

func TestNewValidates(t *testing.T) {
	good := scimout.Config{BaseURL: "https://api.easyllama.com/scim/v2/123", Auth: scimout.BearerToken("t"),
		Profile: scimout.Profiles()["easyllama"], Limiter: &fakeLimiter{}}
	tests := []struct {
		name string
		mod  func(*scimout.Config)
		ok   bool
	}{
		{"good", func(*scimout.Config) {}, true},
		{"loopback http", func(c *scimout.Config) { c.BaseURL = "http://127.0.0.1:9/scim/v2" }, true},
		{"remote http", func(c *scimout.Config) { c.BaseURL = "http://example.com/scim/v2" }, false},
		{"credentials in url", func(c *scimout.Config) { c.BaseURL = "https://u:p@example.com/scim/v2" }, false},
		{"no auth", func(c *scimout.Config) { c.Auth = nil }, false},
		{"empty token", func(c *scimout.Config) { c.Auth = scimout.BearerToken(" ") }, false},
		{"basic", func(c *scimout.Config) { c.Auth = scimout.Basic{User: "acme", Password: "key"} }, true},
		{"basic without password", func(c *scimout.Config) { c.Auth = scimout.Basic{User: "acme"} }, false},
		{"no limiter", func(c *scimout.Config) { c.Limiter = nil }, false},
		{"no profile name", func(c *scimout.Config) { c.Profile.Name = "" }, false},
		{"bad path", func(c *scimout.Config) { c.Profile.FieldMap = map[string]string{"x": "emails"} }, false},
		{"reserved path", func(c *scimout.Config) { c.Profile.FieldMap = map[string]string{"x": "userName"} }, false},
		{"filter without sub", func(c *scimout.Config) { c.Profile.FieldMap = map[string]string{"x": `addresses[type eq "work"]`} }, false},
		{"non-equality filter", func(c *scimout.Config) {
			c.Profile.FieldMap = map[string]string{"x": `addresses[type co "w"].locality`}
		}, false},
		{"unknown required", func(c *scimout.Config) { c.Profile.Required = []string{"shoeSize"} }, false},
		{"required field key", func(c *scimout.Config) {
			c.Profile.Required = []string{"jobTitle"}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Profile = scimout.Profiles()["easyllama"]
			tt.mod(&cfg)
			_, err := scimout.New(ctx, cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	for _, v := range []any{scimout.BearerToken("s3cr3t-token"), scimout.Basic{User: "acme", Password: "s3cr3t-key"}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "s3cr3t") {
				t.Errorf("%s of %T prints the secret: %s", verb, v, out)
			}
		}
	}
}

func TestDiscoveryIsLazyAndOnce(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	if n := len(e.sim.Requests()); n != 0 {
		t.Fatalf("New made %d requests, want 0", n)
	}
	id := e.create(learner("a"))
	if _, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyUserName, Value: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	l := learner("a")
	l.ID, l.FirstName = id, "Changed"
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.conn.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(e.requests(http.MethodGet, "/ServiceProviderConfig")); n != 1 {
		t.Fatalf("ServiceProviderConfig read %d times, want 1", n)
	}
	waits, _ := e.lim.snapshot()
	if all := len(e.sim.Requests()); waits != all {
		t.Fatalf("limiter waited %d times for %d requests", waits, all)
	}

	// A profile overriding everything never asks.
	p := profile(t, "generic")
	p.PatchSupported, p.ETagSupported, p.MaxResults = boolp(true), boolp(false), 50
	e2 := newEnv(t, scimoutsim.Options{}, p, nil)
	e2.create(learner("b"))
	if _, err := e2.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: "00ub"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e2.requests("", "/ServiceProviderConfig")); n != 0 {
		t.Fatalf("ServiceProviderConfig read %d times with full overrides, want 0", n)
	}
	if q := e2.requests(http.MethodGet, "/Users")[0].Query("count"); q != "50" {
		t.Fatalf("count = %s, want the profile's 50", q)
	}
}

func TestDiscoveryFailure(t *testing.T) {
	// One try per call: a failed discovery must not be cached (retrying
	// within the call is TestRetries' business).
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), func(c *scimout.Config) { c.Retry.Attempts = 1 })
	e.sim.Inject(scimoutsim.Fault{PathSuffix: "/ServiceProviderConfig", Status: http.StatusServiceUnavailable, RetryAfter: "2"})
	l := learner("a")
	l.ID = e.create(l)
	err := e.conn.Update(ctx, l)
	if ce := asError(t, err); !ce.Retryable || ce.RetryAfter != 2*time.Second {
		t.Fatalf("transient discovery failure: %+v, want retryable after 2s", ce)
	}
	// Not cached: the next call discovers PATCH support.
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	if n := len(e.requests(http.MethodPatch, "")); n != 1 {
		t.Fatalf("%d PATCHes, want 1", n)
	}

	// A missing endpoint means conservative defaults: PUT.
	e2 := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	e2.sim.Inject(scimoutsim.Fault{PathSuffix: "/ServiceProviderConfig", Status: http.StatusNotFound})
	l2 := learner("b")
	l2.ID = e2.create(l2)
	if err := e2.conn.Update(ctx, l2); err != nil {
		t.Fatal(err)
	}
	if n := len(e2.requests(http.MethodPut, "")); n != 1 {
		t.Fatalf("%d PUTs without a ServiceProviderConfig, want 1", n)
	}
}

func TestCreateFindGet(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	l := learner("ann")
	l.Fields = map[string]string{"jobTitle": "Engineer", "location": "Berlin", "employeeNumber": "E-7", "departmentName": "R&D",
		"customFields.string1": "ignored"}
	id := e.create(l)

	got := e.get(id)
	l.ID = id
	delete(l.Fields, "customFields.string1")
	if !equalLearner(got, l) {
		t.Fatalf("Get = %+v\nwant %+v", got, l)
	}
	res := e.raw("/Users/" + id)
	addr := res["addresses"].([]any)[0].(map[string]any)
	if addr["type"] != "work" || addr["locality"] != "Berlin" {
		t.Fatalf("location not written to addresses[work].locality: %v", res["addresses"])
	}
	if !strings.Contains(e.logs.String(), "customFields.string1") {
		t.Fatalf("unmapped field not logged")
	}

	for _, k := range []connector.Key{
		{Kind: connector.KeyExternalID, Value: "00uann"},
		{Kind: connector.KeyUserName, Value: "ANN@example.com"},
		{Kind: connector.KeyEmail, Value: "Ann@Example.com"},
		{Kind: connector.KeyEmployeeNumber, Value: "E-7"},
	} {
		t.Run(string(k.Kind), func(t *testing.T) {
			found, err := e.conn.Find(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].ID != id {
				t.Fatalf("Find(%v) = %+v", k, found)
			}
		})
	}
	found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: "00UANN"})
	if err != nil || len(found) != 0 {
		t.Fatalf("externalId is case-exact: Find = %v, %v", found, err)
	}

	_, err = e.conn.Get(ctx, "no-such-id")
	if !connector.IsNotFound(err) || connector.IsRetryable(err) {
		t.Fatalf("Get(unknown) = %v, want permanent NotFound", err)
	}
}

func equalLearner(a, b connector.Learner) bool {
	if len(a.Fields) == 0 && len(b.Fields) == 0 {
		a.Fields, b.Fields = nil, nil
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestUpdate(t *testing.T) {
	noPatch := profile(t, "generic")
	noPatch.PatchSupported = boolp(false)
	tests := []struct {
		name   string
		opts   scimoutsim.Options
		prof   scimout.Profile
		method string
	}{
		{"patch discovered", scimoutsim.Options{}, profile(t, "generic"), http.MethodPatch},
		{"put forced by profile", scimoutsim.Options{}, noPatch, http.MethodPut},
		{"put discovered", scimoutsim.Options{NoPatch: true}, profile(t, "generic"), http.MethodPut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts, tt.prof, nil)
			l := learner("bo")
			l.Fields = map[string]string{"jobTitle": "Engineer", "location": "Berlin", "departmentName": "Sales"}
			l.ID = e.create(l)

			steps := []func(*connector.Learner){
				func(l *connector.Learner) {
					l.FirstName, l.LastName, l.Email, l.UserName = "Bob", "Builder", "bob@example.org", "bob@example.org"
					l.Fields = map[string]string{"jobTitle": "Lead", "location": "Paris", "departmentName": ""}
				},
				func(l *connector.Learner) { l.Active = false },
				func(l *connector.Learner) { l.Active = true },
			}
			for i, step := range steps {
				step(&l)
				if err := e.conn.Update(ctx, l); err != nil {
					t.Fatalf("step %d: Update: %v", i, err)
				}
				got := e.get(l.ID)
				want := l
				want.Fields = map[string]string{}
				for k, v := range l.Fields {
					if v != "" {
						want.Fields[k] = v
					}
				}
				if !equalLearner(got, want) {
					t.Fatalf("step %d: Get = %+v\nwant %+v", i, got, want)
				}
			}
			res := e.raw("/Users/" + l.ID)
			if ext, ok := res[scimout.URNEnterprise].(map[string]any); ok && ext["department"] != nil {
				t.Fatalf("cleared department still stored: %v", ext)
			}
			writes := 0
			for _, r := range e.sim.Requests() {
				switch r.Method {
				case http.MethodDelete:
					t.Fatalf("DELETE sent: %s", r.Path)
				case http.MethodPatch, http.MethodPut:
					if !strings.HasPrefix(r.Path, "/scim/v2/Users/") {
						continue
					}
					if r.Method != tt.method {
						t.Fatalf("%s sent, want only %s", r.Method, tt.method)
					}
					writes++
					if !strings.Contains(string(r.Body), `"active"`) {
						t.Fatalf("%s without active: %s", r.Method, r.Body)
					}
					if r.IfMatch == "" {
						t.Fatalf("%s without If-Match although the server supports ETags", r.Method)
					}
				}
			}
			if writes != len(steps) {
				t.Fatalf("%d user writes, want %d", writes, len(steps))
			}
		})
	}
}

func TestRequiredAttributes(t *testing.T) {
	tests := []struct {
		profile string
		mod     func(*connector.Learner)
		missing string // "" means valid
	}{
		{"lessonly", func(*connector.Learner) {}, ""},
		{"lessonly", func(l *connector.Learner) { l.Email = "" }, "email"},
		{"lessonly", func(l *connector.Learner) { l.FirstName, l.LastName = "", "" }, "givenName, familyName"},
		{"easyllama", func(l *connector.Learner) { l.Email = "" }, ""},
		{"easyllama", func(l *connector.Learner) { l.LastName = "" }, "familyName"},
		{"learnamp", func(l *connector.Learner) { l.Email = " " }, "email"},
		{"absorb-scim", func(l *connector.Learner) { l.FirstName = "" }, "givenName"},
		{"generic", func(l *connector.Learner) { l.Email, l.FirstName, l.LastName = "", "", "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.missing, func(t *testing.T) {
			e := newEnv(t, scimoutsim.Options{}, profile(t, tt.profile), nil)
			l := learner("cy")
			tt.mod(&l)
			_, err := e.conn.Create(ctx, l)
			if tt.missing == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				return
			}
			if !errors.Is(err, scimout.ErrMissingAttribute) || connector.IsRetryable(err) {
				t.Fatalf("Create = %v, want permanent ErrMissingAttribute", err)
			}
			if !strings.Contains(err.Error(), tt.missing) {
				t.Fatalf("error %q does not name %s", err, tt.missing)
			}
			if n := len(e.requests(http.MethodPost, "/Users")); n != 0 {
				t.Fatalf("an invalid learner was POSTed")
			}
		})
	}

	// A deactivation goes through even when a required value is gone.
	e := newEnv(t, scimoutsim.Options{}, profile(t, "lessonly"), nil)
	l := learner("dee")
	l.ID = e.create(l)
	l.Email, l.Active = "", false
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatalf("deactivate without email: %v", err)
	}
	if got := e.get(l.ID); got.Active || got.Email != "dee@example.com" {
		t.Fatalf("after deactivation: %+v", got)
	}
}

func TestLessonlyEnterpriseFields(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "lessonly"), nil)
	l := learner("eve")
	l.Fields = map[string]string{"location": "Indianapolis", "businessUnit": "Enablement"}
	l.ID = e.create(l)
	ext, _ := e.raw("/Users/" + l.ID)[scimout.URNEnterprise].(map[string]any)
	if ext["costCenter"] != "Indianapolis" || ext["division"] != "Enablement" {
		t.Fatalf("enterprise extension = %v, want costCenter=location, division=businessUnit", ext)
	}
	post := e.requests(http.MethodPost, "/Users")[0]
	var body map[string]any
	_ = json.Unmarshal(post.Body, &body)
	if !slices.Contains(toStrings(body["schemas"]), scimout.URNEnterprise) {
		t.Fatalf("schemas lack the enterprise URN: %v", body["schemas"])
	}
	if _, ok := body["addresses"]; ok {
		t.Fatalf("lessonly location must not go to addresses: %s", post.Body)
	}
	l.Fields["location"] = "Remote"
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got := e.get(l.ID); got.Fields["location"] != "Remote" || got.Fields["businessUnit"] != "Enablement" {
		t.Fatalf("after update: %+v", got.Fields)
	}
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, s := range arr {
		if str, ok := s.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

func TestErrorClassification(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		fault      scimoutsim.Fault
		retryable  bool
		retryAfter time.Duration
		paused     bool
		notFound   bool
	}{
		{"429 seconds", scimoutsim.Fault{Status: 429, RetryAfter: "7"}, true, 7 * time.Second, true, false},
		{"429 http-date", scimoutsim.Fault{Status: 429, RetryAfter: "Sun, 22 Nov 2026 10:00:30 GMT"}, true, 30 * time.Second, true, false},
		{"429 without hint", scimoutsim.Fault{Status: 429}, true, 0, true, false},
		{"503", scimoutsim.Fault{Status: 503, RetryAfter: "3"}, true, 3 * time.Second, true, false},
		{"500", scimoutsim.Fault{Status: 500}, true, 0, false, false},
		{"401", scimoutsim.Fault{Status: 401}, true, 0, false, false},
		{"400", scimoutsim.Fault{Status: 400, ScimType: "invalidValue"}, false, 0, false, false},
		{"403", scimoutsim.Fault{Status: 403}, false, 0, false, false},
		{"404", scimoutsim.Fault{Status: 404}, false, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), func(c *scimout.Config) {
				c.Now = func() time.Time { return now }
				c.Retry.Attempts = 1 // how one answer is reported; TestRetries retries
			})
			id := e.create(learner("fay"))
			e.sim.Inject(tt.fault)
			_, err := e.conn.Get(ctx, id)
			ce := asError(t, err)
			if ce.Retryable != tt.retryable || ce.RetryAfter != tt.retryAfter || ce.NotFound != tt.notFound || ce.Status != tt.fault.Status {
				t.Fatalf("error = %+v", ce)
			}
			if connector.RetryAfterOf(err) != tt.retryAfter {
				t.Fatalf("RetryAfterOf = %v", connector.RetryAfterOf(err))
			}
			_, pauses := e.lim.snapshot()
			if tt.paused != (len(pauses) == 1) || (tt.paused && pauses[0] != tt.retryAfter) {
				t.Fatalf("limiter pauses = %v", pauses)
			}
		})
	}
}

func TestCreateConflict(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	first := learner("gus")
	firstID := e.create(first)

	tests := []struct {
		name string
		l    connector.Learner
		by   connector.KeyKind
	}{
		// The server's unique key is userName: another identity with the
		// same username is matched by it, after the externalId lookup.
		{"same userName", func() connector.Learner { l := learner("other"); l.UserName = first.UserName; return l }(), connector.KeyUserName},
		{"retry of our own create", first, connector.KeyExternalID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.conn.Create(ctx, tt.l)
			ce := asError(t, err)
			if !ce.Conflict || ce.Status != http.StatusConflict || ce.Retryable {
				t.Fatalf("Create = %+v, want permanent Conflict", ce)
			}
			var dup *scimout.DuplicateError
			if !errors.As(err, &dup) {
				t.Fatalf("no DuplicateError in %v", err)
			}
			if dup.By != tt.by || len(dup.Existing) != 1 || dup.Existing[0].ID != firstID {
				t.Fatalf("DuplicateError = %+v", dup)
			}
			if strings.Contains(err.Error(), first.UserName) {
				t.Fatalf("error text leaks the username: %v", err)
			}
		})
	}
}

func TestFilterEscaping(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	names := []string{`quote"in@example.com`, `back\slash@example.com`, `both\"x"@example.com`, `plus+amp&sp ace@example.com`}
	ids := map[string]string{}
	for i, n := range names {
		l := learner(fmt.Sprint(i))
		l.UserName, l.ExternalID = n, `ext"`+n
		ids[n] = e.create(l)
	}
	for _, n := range names {
		e.sim.Reset()
		for _, k := range []connector.Key{{Kind: connector.KeyUserName, Value: n}, {Kind: connector.KeyExternalID, Value: `ext"` + n}} {
			found, err := e.conn.Find(ctx, k)
			if err != nil {
				t.Fatalf("Find(%q): %v", k.Value, err)
			}
			if len(found) != 1 || found[0].ID != ids[n] {
				t.Fatalf("Find(%q) = %+v", k.Value, found)
			}
		}
		got := e.requests(http.MethodGet, "/Users")[0].Query("filter")
		want := `userName eq "` + strings.ReplaceAll(strings.ReplaceAll(n, `\`, `\\`), `"`, `\"`) + `"`
		if got != want {
			t.Fatalf("filter = %s, want %s", got, want)
		}
		if raw := e.requests(http.MethodGet, "/Users")[0].RawQuery; strings.Contains(raw, "+") {
			t.Fatalf("query encodes spaces as '+': %s", raw)
		}
	}
}

func TestRefusedFilter(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	e.create(learner("hal"))
	bad := scimoutsim.Fault{Method: http.MethodGet, PathSuffix: "/Users", Status: 400, ScimType: "invalidFilter"}
	e.sim.Inject(bad)
	found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyEmail, Value: "hal@example.com"})
	if err != nil || len(found) != 0 {
		t.Fatalf("refused email filter: %v, %v; want no match", found, err)
	}
	e.sim.Inject(bad)
	_, err = e.conn.Find(ctx, connector.Key{Kind: connector.KeyUserName, Value: "hal@example.com"})
	if ce := asError(t, err); ce.Retryable || ce.Status != 400 {
		t.Fatalf("refused userName filter: %+v, want a permanent error", ce)
	}
}

func TestAuth(t *testing.T) {
	const user, key = "acme", "lessonly-scim-key"
	tests := []struct {
		name   string
		auth   func(token string) scimout.Auth
		scheme string
		ok     bool
	}{
		{"bearer", func(tok string) scimout.Auth { return scimout.BearerToken(tok) }, "Bearer", true},
		{"basic", func(string) scimout.Auth { return scimout.Basic{User: user, Password: key} }, "Basic", true},
		{"wrong bearer", func(string) scimout.Auth { return scimout.BearerToken("nope") }, "Bearer", false},
		{"wrong basic", func(string) scimout.Auth { return scimout.Basic{User: user, Password: "nope"} }, "Basic", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, scimoutsim.Options{BasicUser: user, BasicPassword: key}, profile(t, "lessonly"), nil)
			e.conn = e.connect(profile(t, "lessonly"), func(c *scimout.Config) { c.Auth = tt.auth(e.sim.Token) })
			_, err := e.conn.Create(ctx, learner("ida"))
			if tt.ok != (err == nil) {
				t.Fatalf("Create: %v", err)
			}
			if !tt.ok {
				if ce := asError(t, err); ce.Status != http.StatusUnauthorized || !ce.Retryable {
					t.Fatalf("bad credentials: %+v, want retryable 401", ce)
				}
				if strings.Contains(err.Error(), "nope") {
					t.Fatalf("error leaks the credential: %v", err)
				}
			}
			for _, r := range e.sim.Requests() {
				if r.Auth != tt.scheme {
					t.Fatalf("request sent %q auth, want %q", r.Auth, tt.scheme)
				}
			}
		})
	}
}

func TestGroups(t *testing.T) {
	tests := []struct {
		name string
		opts scimoutsim.Options
	}{
		{"patch", scimoutsim.Options{}},
		{"put fallback", scimoutsim.Options{NoPatch: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts, profile(t, "generic"), func(c *scimout.Config) { c.ManagedGroups = []string{"Legacy"} })
			gs, ok := e.conn.Target().(connector.GroupSetter)
			if !ok {
				t.Fatal("generic profile: Target() is not a GroupSetter")
			}
			jo := e.create(learner("jo"))
			// Groups learnerlink did not create: one it manages by config,
			// one it must never touch.
			legacy := e.rawPost("/Groups", map[string]any{"schemas": []string{scimout.URNGroup}, "displayName": "Legacy",
				"members": []any{map[string]any{"value": jo}}})
			admins := e.rawPost("/Groups", map[string]any{"schemas": []string{scimout.URNGroup}, "displayName": "Admins",
				"members": []any{map[string]any{"value": jo}}})

			if err := gs.SetGroups(ctx, jo, []string{"Sales", "Support", "sales"}); err != nil {
				t.Fatal(err)
			}
			sales, support := e.groupByName("Sales"), e.groupByName("Support")
			if sales["externalId"] != scimout.ManagedPrefix+"Sales" {
				t.Fatalf("created group externalId = %v", sales["externalId"])
			}
			for _, g := range []map[string]any{sales, support} {
				if m := e.groupMembers(g["id"].(string)); !slices.Equal(m, []string{jo}) {
					t.Fatalf("%v members = %v", g["displayName"], m)
				}
			}
			if m := e.groupMembers(legacy); len(m) != 0 {
				t.Fatalf("Legacy (managed by config) still has %v", m)
			}
			if m := e.groupMembers(admins); !slices.Equal(m, []string{jo}) {
				t.Fatalf("unmanaged Admins lost its member: %v", m)
			}

			if err := gs.SetGroups(ctx, jo, []string{"Support"}); err != nil {
				t.Fatal(err)
			}
			if m := e.groupMembers(sales["id"].(string)); len(m) != 0 {
				t.Fatalf("Sales still has %v", m)
			}
			if m := e.groupMembers(support["id"].(string)); !slices.Equal(m, []string{jo}) {
				t.Fatalf("Support members = %v", m)
			}
			if m := e.groupMembers(admins); !slices.Equal(m, []string{jo}) {
				t.Fatalf("unmanaged Admins lost its member: %v", m)
			}
			before := len(e.sim.Requests())
			if err := gs.SetGroups(ctx, jo, []string{"Support"}); err != nil {
				t.Fatal(err)
			}
			for _, r := range e.sim.Requests()[before:] {
				if r.Method != http.MethodGet {
					t.Fatalf("an unchanged SetGroups wrote: %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

func TestCapabilitiesFollowProfile(t *testing.T) {
	tags := profile(t, "easyllama")
	tags.TagsAttribute = "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:training_tags"
	tests := []struct {
		name           string
		p              scimout.Profile
		groups, enroll bool
	}{
		{"generic", profile(t, "generic"), true, false},
		{"lessonly", profile(t, "lessonly"), false, false},
		{"learnamp", profile(t, "learnamp"), false, false},
		{"easyllama", profile(t, "easyllama"), false, false},
		{"easyllama with tags", tags, false, true},
		{"absorb-scim", profile(t, "absorb-scim"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := scimout.New(ctx, scimout.Config{BaseURL: "https://scim.example.com/scim/v2", Auth: scimout.BearerToken("t"),
				Profile: tt.p, Limiter: &fakeLimiter{}})
			if err != nil {
				t.Fatal(err)
			}
			tg := c.Target()
			_, g := tg.(connector.GroupSetter)
			_, en := tg.(connector.Enroller)
			_, li := tg.(connector.Lister)
			if g != tt.groups || en != tt.enroll || !li {
				t.Fatalf("GroupSetter=%v Enroller=%v Lister=%v", g, en, li)
			}
		})
	}
}

func TestMembersInChunks(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	var ids []string
	for i := range 205 {
		ids = append(ids, e.create(learner(fmt.Sprint("m", i))))
	}
	if err := e.conn.AddMembers(ctx, "Everyone", ids); err != nil {
		t.Fatal(err)
	}
	g := e.groupByName("Everyone")
	if m := e.groupMembers(g["id"].(string)); len(m) != len(ids) {
		t.Fatalf("%d members, want %d", len(m), len(ids))
	}
	if err := e.conn.RemoveMembers(ctx, "Everyone", ids[:150]); err != nil {
		t.Fatal(err)
	}
	if m := e.groupMembers(g["id"].(string)); len(m) != 55 {
		t.Fatalf("%d members after removing 150, want 55", len(m))
	}
	var sizes []int
	for _, r := range e.requests(http.MethodPatch, "/Groups/"+g["id"].(string)) {
		var body struct {
			Operations []struct {
				Op    string `json:"op"`
				Value []any  `json:"value"`
			}
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		n := len(body.Operations)
		if body.Operations[0].Op == "add" {
			n = len(body.Operations[0].Value)
		}
		sizes = append(sizes, n)
	}
	if want := []int{100, 100, 5, 100, 50}; !slices.Equal(sizes, want) {
		t.Fatalf("PATCH sizes = %v, want %v", sizes, want)
	}
	if err := e.conn.RemoveMembers(ctx, "Nobody", ids[:1]); err != nil {
		t.Fatalf("RemoveMembers on a missing group: %v", err)
	}
}

func TestListPaging(t *testing.T) {
	small := profile(t, "generic")
	small.MaxResults = 2
	tests := []struct {
		name  string
		opts  scimoutsim.Options
		p     scimout.Profile
		pages []int
	}{
		{"server cap 3", scimoutsim.Options{MaxResults: 3}, profile(t, "generic"), []int{3, 3, 1}},
		{"profile cap 2", scimoutsim.Options{}, small, []int{2, 2, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts, tt.p, nil)
			want := map[string]bool{}
			for i := range 7 {
				want[e.create(learner(fmt.Sprint("p", i)))] = true
			}
			var pages []int
			cursor := ""
			for {
				page, next, err := e.conn.List(ctx, cursor)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, len(page))
				for _, l := range page {
					if !want[l.ID] {
						t.Fatalf("unexpected or repeated learner %s", l.ID)
					}
					delete(want, l.ID)
				}
				if next == "" {
					break
				}
				cursor = next
			}
			if !slices.Equal(pages, tt.pages) || len(want) != 0 {
				t.Fatalf("pages = %v (want %v), missed %d", pages, tt.pages, len(want))
			}
			if _, _, err := e.conn.List(ctx, "zero"); err == nil || connector.IsRetryable(err) {
				t.Fatalf("bad cursor: %v", err)
			}
		})
	}
}

func TestPreconditionFailed(t *testing.T) {
	t.Run("put re-reads and re-applies once", func(t *testing.T) {
		p := profile(t, "generic")
		p.PatchSupported = boolp(false)
		e := newEnv(t, scimoutsim.Options{}, p, nil)
		l := learner("kim")
		l.ID = e.create(l)
		e.sim.Inject(scimoutsim.Fault{Method: http.MethodPut, Status: http.StatusPreconditionFailed})
		l.FirstName = "Kimberly"
		if err := e.conn.Update(ctx, l); err != nil {
			t.Fatal(err)
		}
		if got := e.get(l.ID); got.FirstName != "Kimberly" {
			t.Fatalf("FirstName = %q", got.FirstName)
		}
		if n := len(e.requests(http.MethodPut, "")); n != 2 {
			t.Fatalf("%d PUTs, want 2", n)
		}
		e.sim.Inject(scimoutsim.Fault{Method: http.MethodPut, Status: 412}, scimoutsim.Fault{Method: http.MethodPut, Status: 412})
		err := e.conn.Update(ctx, l)
		if ce := asError(t, err); ce.Status != 412 || !ce.Retryable {
			t.Fatalf("two 412s: %+v, want retryable 412", ce)
		}
	})
	t.Run("patch with a stale version", func(t *testing.T) {
		e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
		l := learner("lee")
		l.ID = e.create(l)
		other := e.connect(profile(t, "generic"), nil)
		changed := l
		changed.LastName = "Changed"
		if err := other.Update(ctx, changed); err != nil {
			t.Fatal(err)
		}
		l.FirstName = "Leland" // our version (from Create) is stale now
		if err := e.conn.Update(ctx, l); err != nil {
			t.Fatal(err)
		}
		var statuses []int
		for _, r := range e.requests(http.MethodPatch, "/Users/"+l.ID) {
			statuses = append(statuses, r.Status)
		}
		if !slices.Equal(statuses, []int{200, 412, 200}) {
			t.Fatalf("PATCH statuses = %v, want [200 412 200] (other writer, our stale one, our retry)", statuses)
		}
		if got := e.get(l.ID); got.FirstName != "Leland" || got.LastName != l.LastName {
			t.Fatalf("after retry: %+v", got)
		}
	})
}

func TestEnrollTags(t *testing.T) {
	const tagsPath = "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:training_tags"
	for _, patch := range []bool{true, false} {
		t.Run(fmt.Sprint("patch=", patch), func(t *testing.T) {
			p := profile(t, "easyllama")
			p.TagsAttribute = tagsPath
			p.PatchSupported = boolp(patch)
			e := newEnv(t, scimoutsim.Options{}, p, nil)
			en := e.conn.Target().(connector.Enroller)
			id := e.create(learner("max"))
			for _, tag := range []string{"harassment", "HARASSMENT", "safety"} {
				if err := en.Enroll(ctx, id, connector.Enrollment{Kind: "course", ID: tag}); err != nil {
					t.Fatal(err)
				}
			}
			ext, _ := e.raw("/Users/" + id)["urn:learnerlink:params:scim:schemas:extension:custom:2.0:User"].(map[string]any)
			if ext["training_tags"] != "harassment,safety" {
				t.Fatalf("training_tags = %v", ext["training_tags"])
			}
			if err := en.Enroll(ctx, id, connector.Enrollment{ID: "a,b"}); err == nil || connector.IsRetryable(err) {
				t.Fatalf("a tag with a comma: %v", err)
			}
		})
	}
}

func TestNoSecretsOrValuesInLogs(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{}, profile(t, "generic"), nil)
	l := learner("secretive")
	l.Fields = map[string]string{"location": "Atlantis"}
	l.ID = e.create(l)
	_, _ = e.conn.Create(ctx, l) // conflict path
	l.Active = false
	_ = e.conn.Update(ctx, l)
	_, _ = e.conn.Find(ctx, connector.Key{Kind: connector.KeyEmail, Value: l.Email})
	_ = e.conn.Target().(connector.GroupSetter).SetGroups(ctx, l.ID, []string{"G"})
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, v := range []string{e.sim.Token, "secretive", "Atlantis"} {
		if strings.Contains(logs, v) {
			t.Fatalf("logs contain %q:\n%s", v, logs)
		}
	}
}

// TestConcurrentUnderFaults drives many learners through create, update,
// deactivate and groups at once while a quarter of requests get 429 or
// 503, retrying the way a worker would (honouring RetryAfter).
func TestConcurrentUnderFaults(t *testing.T) {
	e := newEnv(t, scimoutsim.Options{Rate429: 0.15, Rate503: 0.1, RetryAfter: "1", Seed: 7}, profile(t, "generic"), nil)
	pol := retry.Policy{Attempts: 50, MaxDelay: time.Minute, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }}
	do := func(fn func(context.Context) error) error {
		return retry.Do(ctx, pol, fn, func(err error) (bool, time.Duration) {
			return connector.IsRetryable(err), connector.RetryAfterOf(err)
		})
	}
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			l := learner(fmt.Sprint("c", i))
			err := do(func(ctx context.Context) error {
				found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: l.ExternalID})
				if err != nil || len(found) == 1 {
					if err == nil {
						l.ID = found[0].ID
					}
					return err
				}
				l.ID, err = e.conn.Create(ctx, l)
				return err
			})
			if err == nil {
				l.Active, l.FirstName = i%2 == 0, "Renamed"
				err = do(func(ctx context.Context) error { return e.conn.Update(ctx, l) })
			}
			if err == nil {
				err = do(func(ctx context.Context) error {
					return e.conn.Target().(connector.GroupSetter).SetGroups(ctx, l.ID, []string{"All", fmt.Sprint("Team", i%3)})
				})
			}
			ids[i] = l.ID
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.sim.SetRates(0, 0)
	for i, id := range ids {
		got := e.get(id)
		if got.FirstName != "Renamed" || got.Active != (i%2 == 0) {
			t.Fatalf("learner %d = %+v", i, got)
		}
	}
	if m := e.groupMembers(e.groupByName("All")["id"].(string)); len(m) != n {
		t.Fatalf("All has %d members, want %d", len(m), n)
	}
	injected := 0
	for _, r := range e.sim.Requests() {
		if r.Injected {
			injected++
		}
	}
	_, pauses := e.lim.snapshot()
	if injected == 0 || len(pauses) != injected {
		t.Fatalf("%d injected faults, %d limiter pauses", injected, len(pauses))
	}
	for _, p := range pauses {
		if p != time.Second {
			t.Fatalf("pause %v, want the Retry-After of 1s", p)
		}
	}
}
