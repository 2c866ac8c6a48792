package hooks_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

func TestVerification(t *testing.T) {
	t.Parallel()
	const challenge = "Me_rShK8JHsTnbyYrWXCEoMGbM_zsZ6k0hLPZ_Pg"
	tests := []struct {
		name    string
		header  string // auth header name configured
		headers map[string]string
		status  int
	}{
		{"Okta's request", "", map[string]string{"Authorization": secret, "X-Okta-Verification-Challenge": challenge}, 200},
		{"custom auth header", "X-Hook-Key", map[string]string{"X-Hook-Key": secret, "X-Okta-Verification-Challenge": challenge}, 200},
		{"no auth", "", map[string]string{"X-Okta-Verification-Challenge": challenge}, 401},
		{"wrong secret", "", map[string]string{"Authorization": secret + "x", "X-Okta-Verification-Challenge": challenge}, 401},
		{"secret in the wrong header", "X-Hook-Key", map[string]string{"Authorization": secret, "X-Okta-Verification-Challenge": challenge}, 401},
		{"no challenge", "", map[string]string{"Authorization": secret}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false, func(c *hooks.Config) { c.AuthHeader = tt.header })
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+hooks.Path, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			r := do(t, req)
			if r.status != tt.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.raw, tt.status)
			}
			if tt.status == 200 && (r.body["verification"] != challenge || len(r.body) != 1) {
				t.Fatalf("body = %s, want {\"verification\": %q}", r.raw, challenge)
			}
			if tt.status != 200 && r.body["error"] == nil {
				t.Fatalf("error body = %s, want a JSON error", r.raw)
			}
		})
	}
	t.Run("the sample", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, false, nil)
		if r := e.send(t, sample(t, "verify")); r.status != 200 || r.body["verification"] != challenge {
			t.Fatalf("verify sample: %d %s", r.status, r.raw)
		}
	})
}

// TestLifecycle replays every sample delivery, in order, against one store
// and checks the desired state and the intents after each.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	type want struct {
		applied bool     // one intent per change of Jane, reason hook.<type>
		active  bool     // Jane's active flag afterwards
		groups  []string // Jane's groups afterwards
		check   func(t *testing.T, ident *store.Identity)
	}
	steps := []struct {
		sample string
		before func()
		want   want
	}{
		{"user-lifecycle-create", nil, want{applied: true, active: true, check: func(t *testing.T, ident *store.Identity) {
			if ident.UserName != janeMail || ident.Version != 1 {
				t.Errorf("created %+v", ident)
			}
		}}},
		{"user-lifecycle-activate", nil, want{applied: false, active: true}},
		{"user-account-update-profile", func() {
			u := janeProfile()
			u.Profile.Title, u.Profile.Department, u.Profile.CostCenter = "Sales Director", "Sales Leadership", ""
			e.dir.put(u)
		}, want{applied: true, active: true, check: func(t *testing.T, ident *store.Identity) {
			res := resource(t, ident)
			ent, _ := res[scim.URNEnterpriseUser].(map[string]any)
			if res["title"] != "Sales Director" || ent["department"] != "Sales Leadership" || ent["costCenter"] != nil {
				t.Errorf("profile not refreshed: %s", ident.Resource)
			}
		}}},
		{"group-user-membership-add", nil, want{applied: true, active: true, groups: []string{"Sales EMEA"}}},
		{"application-user-membership-add", nil, want{applied: true, active: true, groups: []string{"Sales EMEA", "app:Salesforce.com"}}},
		{"user-account-privilege-grant", nil, want{applied: true, active: true, groups: []string{"Sales EMEA", "app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"user-lifecycle-suspend", nil, want{applied: true, active: false, groups: []string{"Sales EMEA", "app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"user-lifecycle-unsuspend", nil, want{applied: true, active: true, groups: []string{"Sales EMEA", "app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"group-user-membership-remove", nil, want{applied: true, active: true, groups: []string{"app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"application-user-membership-remove", nil, want{applied: true, active: false, groups: []string{"app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"user-lifecycle-reactivate", nil, want{applied: true, active: true, groups: []string{"app:Salesforce.com", "privilege:Read-only Administrator"}}},
		{"user-lifecycle-deactivate", nil, want{applied: true, active: false, groups: []string{"app:Salesforce.com", "privilege:Read-only Administrator"}}},
	}
	var lastVersion int64
	for _, s := range steps {
		t.Run(s.sample, func(t *testing.T) {
			if s.before != nil {
				s.before()
			}
			r := e.send(t, sample(t, s.sample))
			if r.status != 200 || r.raw != "" {
				t.Fatalf("status %d body %q, want an empty 200", r.status, r.raw)
			}
			ident := e.jane(t)
			if ident == nil {
				t.Fatal("no identity for Jane")
			}
			intents := e.q.take()
			ev := sampleEvents(t, s.sample)[0]
			if s.want.applied {
				wantIntent := queue.Intent{IdentityID: ident.ID, Version: ident.Version, Reason: "hook." + ev["eventType"].(string), RequestID: ev["uuid"].(string)}
				if !slices.Equal(intents, []queue.Intent{wantIntent}) {
					t.Fatalf("intents = %+v, want [%+v]", intents, wantIntent)
				}
				if ident.Version <= lastVersion {
					t.Errorf("version %d did not grow from %d", ident.Version, lastVersion)
				}
			} else if len(intents) != 0 || ident.Version != lastVersion {
				t.Fatalf("a no-op event queued %v / bumped the version to %d", intents, ident.Version)
			}
			lastVersion = ident.Version
			if ident.Active != s.want.active || resource(t, ident)["active"] != s.want.active {
				t.Errorf("active = %v (resource %v), want %v", ident.Active, resource(t, ident)["active"], s.want.active)
			}
			if got := e.groupsOf(t, ident.ID); !slices.Equal(got, s.want.groups) {
				t.Errorf("groups = %v, want %v", got, s.want.groups)
			}
			if s.want.check != nil {
				s.want.check(t, ident)
			}
		})
	}
	t.Run("user-lifecycle-delete-initiated", func(t *testing.T) {
		before := e.jane(t)
		if r := e.send(t, sample(t, "user-lifecycle-delete-initiated")); r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.raw)
		}
		if e.jane(t) != nil {
			t.Fatal("Jane is still live")
		}
		tomb, err := e.st.GetIdentity(t.Context(), before.ID)
		if err != nil || !tomb.Deleted {
			t.Fatalf("tombstone = %+v, %v", tomb, err)
		}
		if got := e.q.take(); len(got) != 1 || got[0].Version != tomb.Version || got[0].Reason != "hook.user.lifecycle.delete.initiated" {
			t.Fatalf("intents = %+v", got)
		}
	})
	t.Run("groups carry Okta's ids", func(t *testing.T) {
		for name, ext := range map[string]string{"Sales EMEA": salesID, "app:Salesforce.com": "app:" + sfdcApp, "privilege:Read-only Administrator": "privilege:Read-only Administrator"} {
			g, err := e.st.GetGroupByDisplayName(t.Context(), name)
			if err != nil || g.ExternalID != ext {
				t.Errorf("group %q = %+v, %v; want externalId %s", name, g, err, ext)
			}
		}
	})
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	t.Run("same delivery twice", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true, nil)
		for i := range 2 {
			if r := e.send(t, sample(t, "user-lifecycle-create")); r.status != 200 {
				t.Fatalf("delivery %d: %d %s", i+1, r.status, r.raw)
			}
		}
		ids, _, seen := e.written(t)
		if got := e.q.take(); ids != 1 || seen != 1 || len(got) != 1 {
			t.Fatalf("identities %d, seen %d, intents %v; want 1, 1, one intent", ids, seen, got)
		}
	})
	t.Run("same uuid twice in one delivery, and a redelivered batch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true, nil)
		e.send(t, sample(t, "user-lifecycle-create"))
		e.send(t, sample(t, "group-user-membership-add"))
		e.q.take()
		ev := sampleEvents(t, "user-lifecycle-deactivate")[0]
		body, _ := json.Marshal(map[string]any{"eventType": "com.okta.event_hook", "data": map[string]any{"events": []any{ev, ev}}})
		if r := e.post(t, string(body), secret); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if got := e.q.take(); len(got) != 1 {
			t.Fatalf("intents = %v, want one", got)
		}
		if r := e.send(t, sample(t, "batch")); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if got := e.q.take(); len(got) != 1 || got[0].Reason != "hook.group.user_membership.remove" {
			t.Fatalf("batch intents = %v, want only the group removal (the deactivation was a no-op)", got)
		}
		if r := e.send(t, sample(t, "batch")); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if got := e.q.take(); len(got) != 0 {
			t.Fatalf("redelivered batch queued %v", got)
		}
	})
}

// TestRejected: nothing is written and nothing queued for a request that
// is not an authenticated, well-formed delivery.
func TestRejected(t *testing.T) {
	t.Parallel()
	good := sample(t, "user-lifecycle-create").Body
	huge := `{"data":{"events":[]},"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, body, auth string
		status           int
	}{
		{"no auth", good, "", 401},
		{"wrong secret", good, "test-hook-secreT", 401},
		{"bearer prefix not configured", good, "Bearer " + secret, 401},
		{"empty body", "", secret, 400},
		{"not JSON", "uuid=1", secret, 400},
		{"truncated", good[:len(good)/2], secret, 400},
		{"trailing data", good + "{}", secret, 400},
		{"array", `[` + good + `]`, secret, 400},
		{"null", `null`, secret, 400},
		{"no data", `{"eventType":"com.okta.event_hook"}`, secret, 400},
		{"events not an array", `{"data":{"events":{"uuid":"x"}}}`, secret, 400},
		{"event without uuid", `{"data":{"events":[{"eventType":"user.lifecycle.create","target":[{"id":"00u1","type":"User"}]}]}}`, secret, 400},
		{"uuid with spaces", `{"data":{"events":[{"uuid":"a b","eventType":"user.lifecycle.create"}]}}`, secret, 400},
		{"target not an array", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":"00u1"}]}}`, secret, 400},
		{"target id a number", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":[{"id":7,"type":"User"}]}]}}`, secret, 400},
		// The good event comes first: a later bad one must stop it too.
		{"one bad event among good ones", `{"data":{"events":[` + firstEvent(t, good) + `,{"uuid":"","eventType":"x"}]}}`, secret, 400},
		{"oversized", huge, secret, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, true, nil)
			r := e.post(t, tt.body, tt.auth)
			if r.status != tt.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.raw, tt.status)
			}
			if msg, _ := r.body["error"].(string); msg == "" {
				t.Fatalf("body %q: want a JSON error", r.raw)
			}
			if strings.Contains(r.raw, secret) {
				t.Fatalf("the answer echoes the secret: %s", r.raw)
			}
			ids, groups, seen := e.written(t)
			if ids+groups+seen != 0 || len(e.q.take()) != 0 || e.dir.callCount() != 0 {
				t.Fatalf("wrote %d identities, %d groups, %d seen docs or queued/looked up something", ids, groups, seen)
			}
		})
	}
	t.Run("wrong method and path", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true, nil)
		for _, c := range []struct {
			method, path string
			status       int
		}{{http.MethodPut, hooks.Path, 405}, {http.MethodPost, "/okta/hooks/x", 404}} {
			req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(good))
			req.Header.Set("Authorization", secret)
			if r := do(t, req); r.status != c.status {
				t.Errorf("%s %s = %d, want %d", c.method, c.path, r.status, c.status)
			}
		}
	})
}

func firstEvent(t *testing.T, body string) string {
	var d struct {
		Data struct {
			Events []json.RawMessage `json:"events"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	return string(d.Data.Events[0])
}

func TestWithoutDirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	steps := []struct {
		sample  string
		wantIDs int
	}{
		{"user-lifecycle-create", 0},           // unknown user, no Directory: SCIM will create it
		{"group-user-membership-add", 0},       // still unknown: ignored
		{"application-user-membership-add", 0}, // idem
	}
	for _, s := range steps {
		if r := e.send(t, sample(t, s.sample)); r.status != 200 {
			t.Fatalf("%s: %d %s", s.sample, r.status, r.raw)
		}
		ids, groups, seen := e.written(t)
		if ids != s.wantIDs || groups != 0 || len(e.q.take()) != 0 {
			t.Fatalf("%s: %d identities, %d groups", s.sample, ids, groups)
		}
		if seen == 0 {
			t.Fatalf("%s: the ignored event was not recorded as seen", s.sample)
		}
	}
	// Once SCIM created Jane, the same kind of event applies.
	createViaSCIM(t, e.st, oktaSCIMBody(janeProfile()))
	if r := e.send(t, sample(t, "user-lifecycle-deactivate")); r.status != 200 {
		t.Fatal(r.raw)
	}
	if j := e.jane(t); j == nil || j.Active {
		t.Fatalf("Jane = %+v, want deactivated", j)
	}
	// Without a Directory a profile update records what the event says:
	// the login.
	ev := sampleEvents(t, "user-account-update-profile")[0]
	tg := ev["target"].([]any)[0].(map[string]any)
	tg["alternateId"] = "jane.smith@example.com"
	ev["uuid"] = "renamed-1"
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"events": []any{ev}}})
	if r := e.post(t, string(body), secret); r.status != 200 {
		t.Fatal(r.raw)
	}
	j := e.jane(t)
	if j.UserName != "jane.smith@example.com" || resource(t, j)["title"] != "Account Executive" {
		t.Fatalf("after a login change without Directory: %s", j.Resource)
	}
}

// TestSlowDirectory: a Directory that does not answer costs at most the
// budget; the event's own data is recorded.
func TestSlowDirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, func(c *hooks.Config) {
		c.DirectoryTimeout = 40 * time.Millisecond
		c.DirectoryBudget = 60 * time.Millisecond
	})
	e.dir.setBlock(true)
	// Three creates of different users in one delivery.
	var evs []any
	for i, id := range []string{"00u1slow000000000001", "00u1slow000000000002", "00u1slow000000000003"} {
		ev := sampleEvents(t, "user-lifecycle-create")[0]
		ev["uuid"] = "slow-" + id
		ev["target"] = []any{map[string]any{"id": id, "type": "User", "alternateId": "slow" + string(rune('a'+i)) + "@example.com", "displayName": "Slow User"}}
		evs = append(evs, ev)
	}
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"events": evs}})
	if r := e.post(t, string(body), secret); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	// Each call waits for its timeout; the second is cut to what is left
	// of the budget, and then no more are made.
	if calls := e.dir.callCount(); calls > 2 {
		t.Fatalf("directory calls = %d; the budget allows at most 2", calls)
	}
	ids, err := e.st.FindIdentitiesByExternalID(t.Context(), "00u1slow000000000002")
	if err != nil || len(ids) != 1 {
		t.Fatalf("identity from the event alone: %v, %v", ids, err)
	}
	got := resource(t, ids[0])
	want := map[string]any{
		"schemas": []any{scim.URNUser}, "id": ids[0].ID, "externalId": "00u1slow000000000002",
		"userName": "slowb@example.com", "displayName": "Slow User", "active": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resource = %v\nwant %v", got, want)
	}
	if len(e.q.take()) != 3 {
		t.Fatal("want an intent per created identity")
	}
}

// TestSameAsSCIM: an identity the hooks create from an Okta profile is
// stored exactly as the SCIM API stores Okta's push of the same user, and
// a refresh leaves SCIM-only attributes alone.
func TestSameAsSCIM(t *testing.T) {
	t.Parallel()
	viaSCIM := newEnv(t, false, nil)
	createViaSCIM(t, viaSCIM.st, oktaSCIMBody(janeProfile()))
	viaHook := newEnv(t, true, nil)
	viaHook.send(t, sample(t, "user-lifecycle-create"))

	a, b := resource(t, viaSCIM.jane(t)), resource(t, viaHook.jane(t))
	delete(a, "id")
	delete(b, "id")
	if !reflect.DeepEqual(a, b) {
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		t.Fatalf("SCIM stored\n%s\nhooks stored\n%s", ja, jb)
	}

	// A SCIM user with attributes Okta's profile does not own.
	body := oktaSCIMBody(janeProfile())
	body["phoneNumbers"] = []any{map[string]any{"value": "+49 30 1234", "type": "work"}}
	body[scim.URNCustomUser] = map[string]any{"lmsRole": "manager"}
	body["name"].(map[string]any)["middleName"] = "Q"
	e := newEnv(t, true, nil)
	createViaSCIM(t, e.st, body)
	u := janeProfile()
	u.Profile.Title, u.Profile.Email, u.Profile.ManagerID, u.Profile.Manager = "", "jane@example.org", "", ""
	e.dir.put(u)
	e.send(t, sample(t, "user-account-update-profile"))
	res := resource(t, e.jane(t))
	ent := res[scim.URNEnterpriseUser].(map[string]any)
	name := res["name"].(map[string]any)
	emails := res["emails"].([]any)
	switch {
	case res["title"] != nil:
		t.Errorf("title cleared in Okta is still %v", res["title"])
	case ent["manager"] != nil:
		t.Errorf("manager cleared in Okta is still %v", ent["manager"])
	case len(emails) != 1 || emails[0].(map[string]any)["value"] != "jane@example.org" || emails[0].(map[string]any)["primary"] != true:
		t.Errorf("emails = %v", emails)
	case res["phoneNumbers"] == nil || name["middleName"] != "Q" || res[scim.URNCustomUser] == nil:
		t.Errorf("SCIM-only attributes lost: %v", res)
	case !slices.Equal(anyStrings(res["schemas"]), []string{scim.URNUser, scim.URNEnterpriseUser, scim.URNCustomUser}):
		t.Errorf("schemas = %v", res["schemas"])
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// oktaSCIMBody is what Okta's SCIM push sends for a profile with its
// default attribute mappings.
func oktaSCIMBody(u okta.User) map[string]any {
	p := u.Profile
	return map[string]any{
		"schemas":     []any{scim.URNUser, scim.URNEnterpriseUser},
		"userName":    p.Login,
		"name":        map[string]any{"givenName": p.FirstName, "familyName": p.LastName},
		"emails":      []any{map[string]any{"primary": true, "value": p.Email, "type": "work"}},
		"displayName": p.DisplayName,
		"locale":      p.Locale,
		"title":       p.Title,
		"timezone":    p.Timezone,
		"externalId":  u.ID,
		"groups":      []any{},
		"password":    "Pa55word!",
		"active":      true,
		scim.URNEnterpriseUser: map[string]any{
			"employeeNumber": p.EmployeeNumber, "costCenter": p.CostCenter, "organization": p.Organization,
			"division": p.Division, "department": p.Department,
			"manager": map[string]any{"value": p.ManagerID, "displayName": p.Manager},
		},
	}
}

// createViaSCIM POSTs a user through the real SCIM API into st.
func createViaSCIM(t *testing.T, st scim.Store, body map[string]any) {
	t.Helper()
	h, err := scim.NewHandler(st, &recorder{}, scim.Config{Token: "scim-token"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, "/scim/v2/Users", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer scim-token")
	req.Header.Set("Content-Type", "application/scim+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("SCIM POST: %d %s", rec.Code, rec.Body)
	}
}

func TestGroups(t *testing.T) {
	t.Parallel()
	groupEvent := func(uuid, typ, gid, name string) string {
		ev := sampleEvents(t, "group-user-membership-add")[0]
		ev["uuid"], ev["eventType"] = uuid, typ
		ev["target"] = []any{
			map[string]any{"id": janeID, "type": "User", "alternateId": janeMail, "displayName": "Jane Doe"},
			map[string]any{"id": gid, "type": "UserGroup", "alternateId": "unknown", "displayName": name},
		}
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"events": []any{ev}}})
		return string(b)
	}
	e := newEnv(t, true, nil)
	e.send(t, sample(t, "user-lifecycle-create"))
	jane := e.jane(t)
	steps := []struct {
		name, body string
		groups     []string
		count      int
	}{
		{"add creates the group", groupEvent("g1", "group.user_membership.add", salesID, "Sales EMEA"), []string{"Sales EMEA"}, 2},
		{"renamed in Okta: same group, new name", groupEvent("g2", "group.user_membership.add", salesID, "Sales Europe"), []string{"Sales Europe"}, 2},
		{"a pushed group of that name is used", groupEvent("g3", "group.user_membership.add", "00g1pushed0000000000", "Pushed"), []string{"Pushed", "Sales Europe"}, 2},
		{"remove from an unknown group does nothing", groupEvent("g4", "group.user_membership.remove", "00g1never0000000000", "Never"), []string{"Pushed", "Sales Europe"}, 2},
		{"remove", groupEvent("g5", "group.user_membership.remove", salesID, "Sales Europe"), []string{"Pushed"}, 2},
	}
	// Okta's Push Groups created "Pushed" over SCIM, without an externalId
	// (2 groups in all once "Sales EMEA" exists).
	if _, err := e.st.CreateGroup(t.Context(), &store.Group{ID: "pushed-1", DisplayName: "Pushed", Resource: []byte(`{"displayName":"Pushed","id":"pushed-1","schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}`)}, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if r := e.post(t, s.body, secret); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if got := e.groupsOf(t, jane.ID); !slices.Equal(got, s.groups) {
				t.Fatalf("groups = %v, want %v", got, s.groups)
			}
			if _, n, _ := e.written(t); n != s.count {
				t.Fatalf("group count = %d, want %d", n, s.count)
			}
		})
	}
}

func TestOwnAppAssignmentCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	ev := sampleEvents(t, "application-user-membership-add")[0]
	tg := ev["target"].([]any)
	tg[1] = map[string]any{"id": ownApp, "type": "AppInstance", "alternateId": "learnerlink", "displayName": "learnerlink"}
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"events": []any{ev}}})
	if r := e.post(t, string(body), secret); r.status != 200 {
		t.Fatal(r.raw)
	}
	j := e.jane(t)
	if j == nil || !j.Active || !slices.Equal(e.groupsOf(t, j.ID), []string{"app:learnerlink"}) {
		t.Fatalf("Jane = %+v", j)
	}
	if got := e.q.take(); len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 {
		t.Fatalf("intents = %+v, want create then membership", got)
	}
}

// TestOktaSimDirectory wires the real Okta client, against the simulator,
// as the Directory.
func TestOktaSimDirectory(t *testing.T) {
	t.Parallel()
	sim := oktasim.New(oktasim.Options{APIToken: "sim-token"})
	t.Cleanup(sim.Close)
	sim.PutUser(janeProfile())
	c, err := okta.New(okta.Config{OrgURL: sim.URL(), APIToken: "sim-token"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, false, nil)
	h, err := hooks.NewHandler(e.st, e.q, c, hooks.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = h
	if r := e.send(t, sample(t, "user-lifecycle-create")); r.status != 200 {
		t.Fatal(r.raw)
	}
	j := e.jane(t)
	if j == nil {
		t.Fatal("not created")
	}
	res := resource(t, j)
	if res["title"] != "Account Executive" || res["name"].(map[string]any)["givenName"] != "Jane" {
		t.Fatalf("profile not from the directory: %s", j.Resource)
	}
	sim.DeleteUser(janeID)
	if r := e.send(t, sample(t, "user-account-update-profile")); r.status != 200 {
		t.Fatal(r.raw)
	}
	if j2 := e.jane(t); j2.Version != j.Version {
		t.Fatalf("a profile update for a user Okta no longer has changed the identity: %s", j2.Resource)
	}
}

func TestNewHandlerValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	tests := []struct {
		name string
		cfg  hooks.Config
	}{
		{"no secret", hooks.Config{}},
		{"negative body limit", hooks.Config{Secret: "s", MaxBodyBytes: -1}},
		{"bad header name", hooks.Config{Secret: "s", AuthHeader: "X Hook Key"}},
		{"header name with a colon", hooks.Config{Secret: "s", AuthHeader: "X-Key:"}},
	}
	for _, tt := range tests {
		if _, err := hooks.NewHandler(e.st, e.q, nil, tt.cfg); err == nil {
			t.Errorf("%s: NewHandler accepted %+v", tt.name, tt.cfg)
		}
	}
	if _, err := hooks.NewHandler(nil, e.q, nil, hooks.Config{Secret: "s"}); err == nil {
		t.Error("NewHandler accepted a nil store")
	}
}
