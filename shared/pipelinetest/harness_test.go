package pipelinetest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/scim/scimtest"
)

const (
	simUser = "api-admin"
	simPass = "S3cret!pass"
	simKey  = "0d3c6d5e-8f6b-4b8a-9a57-2a1f0e3c4b5d"
	token   = "test-scim-token-0123456789"

	urnUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	urnGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	urnEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnPatch      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

	// Course ids seeded in the simulator and named in the config file.
	courseOnboarding = "00000000-0000-4000-8000-00000000c001"
	curriculumSales  = "00000000-0000-4000-8000-00000000a001"
	courseSecurity   = "00000000-0000-4000-8000-00000000c002"
	groupsField      = "string30" // customFields.string30, the default ABSORB_GROUPS_FIELD
)

// configJSON is the LEARNERLINK_CONFIG file: onboarding, a department rule
// and a group rule.
const configJSON = `{
  "mapping": {"fields": {"customFields.string3": ""}},
  "enrollment": {
    "onboarding": [{"kind": "course", "id": "` + courseOnboarding + `"}],
    "rules": [
      {"name": "sales-curriculum",
       "when": {"attribute": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "equals": "Sales"},
       "enroll": [{"kind": "curriculum", "id": "` + curriculumSales + `"}]},
      {"name": "okta-admins-security",
       "when": {"group": "Okta Admins"},
       "enroll": [{"kind": "course", "id": "` + courseSecurity + `"}]}
    ]
  }
}`

// env is a local runner whose target is an Absorb simulator.
type env struct {
	t        *testing.T
	sim      *absorbsim.Sim
	runner   *allinone.Runner
	settings config.Settings
	getenv   func(string) string
	depts    map[string]string // name -> Absorb id
	hc       *http.Client
}

func start(t *testing.T, simOpts absorbsim.Options, vars map[string]string) *env {
	t.Helper()
	simOpts.Username, simOpts.Password, simOpts.PrivateKey = simUser, simPass, simKey
	sim := absorbsim.New(simOpts)
	t.Cleanup(sim.Close)
	e := &env{t: t, sim: sim, depts: map[string]string{}, hc: &http.Client{Timeout: 30 * time.Second}}
	for _, d := range []string{"Sales", "Engineering"} {
		e.depts[d] = sim.SeedDepartment(absorbsim.Department{Name: d})
	}
	sim.SeedCourse(absorbsim.Course{ID: courseOnboarding, Name: "Welcome"})
	sim.SeedCourse(absorbsim.Course{ID: curriculumSales, Name: "Sales path", Type: "Curriculum"})
	sim.SeedCourse(absorbsim.Course{ID: courseSecurity, Name: "Security for admins"})

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "learnerlink.json")
	if err := os.WriteFile(cfgPath, []byte(configJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LEARNERLINK_DATA_DIR":         filepath.Join(dir, "data"),
		"LEARNERLINK_SCIM_TOKEN":       token,
		"LEARNERLINK_TARGET":           "absorb",
		"LEARNERLINK_CONFIG":           cfgPath,
		"LEARNERLINK_WORKERS":          "4",
		"ABSORB_API_URL":               sim.URL(),
		"ABSORB_USERNAME":              simUser,
		"ABSORB_PASSWORD":              simPass,
		"ABSORB_PRIVATE_KEY":           simKey,
		"ABSORB_RATE_LIMIT":            "200",
		"ABSORB_DEFAULT_DEPARTMENT_ID": sim.DefaultDepartmentID(),
	}
	for k, v := range vars {
		env[k] = v
	}
	e.getenv = func(k string) string { return env[k] }
	s, err := config.FromEnv(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	e.settings = s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := allinone.Start(t.Context(), s, allinone.Options{Getenv: e.getenv, Listener: ln})
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

// scim sends one SCIM request and decodes the answer.
func (e *env) scim(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	return scimtest.Request(e.t, e.hc, method, e.runner.URL()+"/scim/v2"+path, token, body, want)
}

// oktaUser is the body Okta's provisioning engine sends on create.
type oktaUser struct {
	oktaID, login, first, last string
	dept, title, empNo, mgr    string
	active                     bool
}

func (u oktaUser) body() map[string]any {
	ent := map[string]any{"department": u.dept, "employeeNumber": u.empNo}
	if u.mgr != "" {
		ent["manager"] = map[string]any{"value": u.mgr}
	}
	return map[string]any{
		"schemas":     []string{urnUser, urnEnterprise},
		"userName":    u.login,
		"externalId":  u.oktaID,
		"name":        map[string]any{"givenName": u.first, "familyName": u.last},
		"displayName": u.first + " " + u.last,
		"emails":      []any{map[string]any{"primary": true, "value": u.login, "type": "work"}},
		"title":       u.title,
		"active":      u.active,
		"groups":      []any{},
		urnEnterprise: ent,
	}
}

func (e *env) createUser(u oktaUser) string {
	e.t.Helper()
	res := e.scim("POST", "/Users", u.body(), http.StatusCreated)
	id, _ := res["id"].(string)
	if id == "" {
		e.t.Fatalf("no id in %v", res)
	}
	return id
}

func (e *env) patchUser(id string, ops ...map[string]any) {
	e.t.Helper()
	e.scim("PATCH", "/Users/"+id, map[string]any{"schemas": []string{urnPatch}, "Operations": ops}, http.StatusOK)
}

func replace(value map[string]any) map[string]any {
	return map[string]any{"op": "replace", "value": value}
}

// eventually polls check until it returns nil, failing after 20 seconds.
func (e *env) eventually(what string, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled waits until every identity is synced (nothing pending) and the
// queue holds nothing, then checks that no learner is duplicated.
func (e *env) settled() {
	e.t.Helper()
	e.eventually("pipeline settles", func() error {
		ps, err := e.runner.Store.ListPending(e.t.Context(), time.Now().Add(time.Hour), 10)
		if err != nil {
			return err
		}
		if len(ps) > 0 {
			return fmt.Errorf("%d identities pending", len(ps))
		}
		return nil
	})
	e.noDuplicates()
	dead, err := e.runner.Queue.DeadLetters(e.t.Context(), 10)
	if err != nil || len(dead) > 0 {
		e.t.Fatalf("dead letters: %+v %v", dead, err)
	}
}

// noDuplicates fails if two learners share a username or external id.
func (e *env) noDuplicates() {
	e.t.Helper()
	seen := map[string]string{}
	for _, u := range e.sim.Users() {
		for _, k := range []string{"user:" + strings.ToLower(u.Username), "ext:" + u.ExternalID} {
			if k == "ext:" {
				continue
			}
			if other, ok := seen[k]; ok {
				e.t.Fatalf("learners %s and %s share %s", other, u.ID, k)
			}
			seen[k] = u.ID
		}
	}
}

// learner returns the one simulator user carrying the external id.
func (e *env) learner(ext string) (absorbsim.User, error) {
	var found []absorbsim.User
	for _, u := range e.sim.Users() {
		if u.ExternalID == ext {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return absorbsim.User{}, fmt.Errorf("%d learners carry external id %s", len(found), ext)
	}
	return found[0], nil
}

func (e *env) mustLearner(ext string) absorbsim.User {
	e.t.Helper()
	u, err := e.learner(ext)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// enrolled lists the course ids the user is actively enrolled in.
func (e *env) enrolled(userID string) map[string]bool {
	out := map[string]bool{}
	for _, en := range e.sim.Enrollments(userID) {
		if en.IsActive {
			out[en.CourseID] = true
		}
	}
	return out
}

func groupsOf(u absorbsim.User) string {
	s, _ := u.CustomFields[groupsField].(string)
	return s
}

// writes counts the simulator's state-changing requests.
func (e *env) writes() int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == "PUT" || (r.Method == "POST" && r.Path != "/authenticate") {
			n++
		}
	}
	return n
}
