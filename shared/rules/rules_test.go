package rules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/store"
)

const ent = mapping.EnterpriseURN

func course(id string) connector.Enrollment { return connector.Enrollment{Kind: "course", ID: id} }
func curriculum(id string) connector.Enrollment {
	return connector.Enrollment{Kind: "curriculum", ID: id}
}

// user builds the evaluation document the worker would, from SCIM JSON.
func user(t testing.TB, active bool, department, title string) map[string]any {
	t.Helper()
	res, err := json.Marshal(map[string]any{
		"userName": "jane@example.com",
		"title":    title,
		"emails":   []any{map[string]any{"type": "work", "value": "jane@example.com"}},
		ent:        map[string]any{"department": department, "employeeNumber": 1001},
		mapping.CustomURN: map[string]any{
			"isManager": title == "Manager",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := mapping.Resource(&store.Identity{ID: "u-1", UserName: "jane@example.com", Active: active, Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func testConfig() Config {
	return Config{
		Onboarding: []connector.Enrollment{course("welcome"), course("code-of-conduct")},
		Rules: []Rule{
			{Name: "sales-curriculum", When: Condition{Attribute: ent + ":department", Equals: "Sales"},
				Enroll: []connector.Enrollment{curriculum("sales-101")}},
			{Name: "managers", When: Condition{Any: []Condition{
				{Attribute: mapping.CustomURN + ":isManager", Equals: "true"},
				{Group: "People Managers"},
			}}, Enroll: []connector.Enrollment{curriculum("lead-path"), course("feedback")}},
			{Name: "admin-security", When: Condition{Group: "Okta Admins"},
				Enroll: []connector.Enrollment{course("security-compliance")}},
			{Name: "sales-leads", When: Condition{All: []Condition{
				{Attribute: ent + ":department", In: []string{"Sales", "Marketing"}},
				{Attribute: "title", Equals: "Manager"},
			}}, Enroll: []connector.Enrollment{course("forecasting")}},
		},
	}
}

func TestPlan(t *testing.T) {
	onboarding := []Action{
		{Rule: Onboarding, Enrollment: course("welcome"), Why: "onboarding: first sync of the learner"},
		{Rule: Onboarding, Enrollment: course("code-of-conduct"), Why: "onboarding: first sync of the learner"},
	}
	sales := Action{Rule: "sales-curriculum", Enrollment: curriculum("sales-101"), Why: `rule "sales-curriculum": department = "Sales"`}
	tests := []struct {
		name     string
		resource map[string]any
		groups   []string
		applied  []string
		want     []Action
	}{
		{"new sales learner: onboarding then sales", user(t, true, "Sales", "AE"), nil, nil, append(onboarding, sales)},
		{"value compared ignoring case", user(t, true, "sales", "AE"), nil, []string{Onboarding}, []Action{
			{Rule: "sales-curriculum", Enrollment: curriculum("sales-101"), Why: `rule "sales-curriculum": department = "Sales"`}}},
		{"nothing matches, onboarded", user(t, true, "Finance", "AE"), nil, []string{Onboarding}, nil},
		{"already applied", user(t, true, "Sales", "AE"), nil, []string{Onboarding, "sales-curriculum"}, nil},
		{"inactive gets nothing", user(t, false, "Sales", "AE"), []string{"Okta Admins"}, nil, nil},
		{"group, ignoring case", user(t, true, "Finance", "AE"), []string{"okta admins"}, []string{Onboarding}, []Action{
			{Rule: "admin-security", Enrollment: course("security-compliance"), Why: `rule "admin-security": member of "Okta Admins"`}}},
		{"any names the matching branch", user(t, true, "Finance", "AE"), []string{"People Managers"}, []string{Onboarding}, []Action{
			{Rule: "managers", Enrollment: curriculum("lead-path"), Why: `rule "managers": member of "People Managers"`},
			{Rule: "managers", Enrollment: course("feedback"), Why: `rule "managers": member of "People Managers"`}}},
		{"any with both branches; all with in", user(t, true, "Marketing", "Manager"), []string{"People Managers"}, []string{Onboarding}, []Action{
			{Rule: "managers", Enrollment: curriculum("lead-path"), Why: `rule "managers": (isManager = "true" or member of "People Managers")`},
			{Rule: "managers", Enrollment: course("feedback"), Why: `rule "managers": (isManager = "true" or member of "People Managers")`},
			{Rule: "sales-leads", Enrollment: course("forecasting"), Why: `rule "sales-leads": (department in ("Sales", "Marketing") and title = "Manager")`}}},
		{"all fails when one part fails", user(t, true, "Marketing", "AE"), nil, []string{Onboarding}, nil},
		{"applied names of removed rules are harmless", user(t, true, "Finance", "AE"), nil, []string{Onboarding, "gone"}, nil},
	}
	c := testConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Plan(tt.resource, tt.groups, tt.applied)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan\n got %+v\nwant %+v", got, tt.want)
			}
			// Deterministic: the same input gives the same plan.
			if again := c.Plan(tt.resource, tt.groups, tt.applied); !reflect.DeepEqual(again, got) {
				t.Errorf("second Plan differs: %+v", again)
			}
		})
	}
}

func TestPlanConditions(t *testing.T) {
	doc := map[string]any{
		"userName": "jane",
		"active":   "True", // Entra sends booleans as strings
		"emails": []any{
			map[string]any{"type": "home", "value": "h@x"},
			map[string]any{"type": "work", "value": "w@x"},
		},
		"tags":      []any{"blue", "green"},
		"seniority": json.Number("3"),
		"score":     2.5,
		ent:         map[string]any{"manager": map[string]any{"value": "u-boss"}},
	}
	tests := []struct {
		name string
		when Condition
		want bool
	}{
		{"equals top-level", Condition{Attribute: "userName", Equals: "JANE"}, true},
		{"equals misses", Condition{Attribute: "userName", Equals: "bob"}, false},
		{"absent attribute", Condition{Attribute: "title", Equals: "x"}, false},
		{"filtered value", Condition{Attribute: `emails[type eq "work"].value`, Equals: "w@x"}, true},
		{"filtered value misses other element", Condition{Attribute: `emails[type eq "work"].value`, Equals: "h@x"}, false},
		{"any element of a multi-valued attribute", Condition{Attribute: "emails.value", Equals: "h@x"}, true},
		{"multi-valued simple", Condition{Attribute: "tags", In: []string{"red", "green"}}, true},
		{"number", Condition{Attribute: "seniority", Equals: "3"}, true},
		{"float", Condition{Attribute: "score", Equals: "2.5"}, true},
		{"extension sub-attribute", Condition{Attribute: ent + ":manager.value", Equals: "u-boss"}, true},
		{"group absent", Condition{Group: "Admins"}, false},
		{"nested all/any", Condition{All: []Condition{{Any: []Condition{{Group: "Admins"}, {Attribute: "userName", Equals: "jane"}}}, {Attribute: "tags", Equals: "blue"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Rules: []Rule{{Name: "r", When: tt.when, Enroll: []connector.Enrollment{course("c")}}}}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got := len(c.Plan(doc, nil, []string{Onboarding})) == 1
			if got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStillMatching(t *testing.T) {
	c := testConfig()
	tests := []struct {
		name     string
		resource map[string]any
		groups   []string
		applied  []string
		want     []string
	}{
		{"first sync records onboarding and fired rules", user(t, true, "Sales", "AE"), nil, []string{"sales-curriculum"},
			[]string{Onboarding, "sales-curriculum"}},
		{"onboarding recorded even with nothing applied", user(t, true, "Finance", "AE"), nil, nil, []string{Onboarding}},
		{"inactive first sync is not onboarded", user(t, false, "Sales", "AE"), nil, nil, nil},
		{"inactive keeps onboarding and matching rules", user(t, false, "Sales", "AE"), nil, []string{"sales-curriculum", Onboarding},
			[]string{Onboarding, "sales-curriculum"}},
		{"rule that stopped matching is dropped", user(t, true, "Finance", "AE"), nil, []string{Onboarding, "sales-curriculum"},
			[]string{Onboarding}},
		{"group removed drops the compliance rule", user(t, true, "Sales", "AE"), nil, []string{Onboarding, "admin-security", "sales-curriculum"},
			[]string{Onboarding, "sales-curriculum"}},
		{"unknown names kept, duplicates removed, sorted", user(t, true, "Sales", "AE"), []string{"Okta Admins"},
			[]string{"zzz-removed", "sales-curriculum", "admin-security", "sales-curriculum", Onboarding},
			[]string{"admin-security", Onboarding, "sales-curriculum", "zzz-removed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.StillMatching(tt.resource, tt.groups, tt.applied)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLifecycle walks a learner through the worker loop: a rule fires once,
// not again while it matches, and again after it stopped matching.
func TestLifecycle(t *testing.T) {
	c := testConfig()
	var applied []string
	sync := func(doc map[string]any, groups ...string) []string {
		var fired []string
		actions := c.Plan(doc, groups, applied)
		for _, a := range actions {
			fired = append(fired, a.Rule+"/"+a.Enrollment.ID)
			applied = append(applied, a.Rule)
		}
		applied = c.StillMatching(doc, groups, applied)
		return fired
	}
	steps := []struct {
		name   string
		doc    map[string]any
		groups []string
		want   []string
	}{
		{"created in Sales", user(t, true, "Sales", "AE"), nil,
			[]string{"onboarding/welcome", "onboarding/code-of-conduct", "sales-curriculum/sales-101"}},
		{"resynced unchanged", user(t, true, "Sales", "AE"), nil, nil},
		{"made Okta admin", user(t, true, "Sales", "AE"), []string{"Okta Admins"}, []string{"admin-security/security-compliance"}},
		{"moves to Finance", user(t, true, "Finance", "AE"), []string{"Okta Admins"}, nil},
		{"deactivated while back in Sales", user(t, false, "Sales", "AE"), []string{"Okta Admins"}, nil},
		{"reactivated in Sales", user(t, true, "Sales", "AE"), []string{"Okta Admins"}, []string{"sales-curriculum/sales-101"}},
	}
	for _, s := range steps {
		if got := sync(s.doc, s.groups...); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: fired %q, want %q", s.name, got, s.want)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "learnerlink.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	c, err := Load(writeConfig(t, `{
	  "_comment": "top",
	  "mapping": {"fields": {}},
	  "enrollment": {
	    "_comment": "enrollment docs",
	    "onboarding": [{"kind": "course", "id": "welcome", "_comment": "first day"}],
	    "rules": [
	      {"name": "sales", "when": {"attribute": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "equals": "Sales"},
	       "enroll": [{"kind": "curriculum", "id": "sales-101"}]},
	      {"name": "admins", "when": {"any": [{"group": "Okta Admins"}, {"all": [{"attribute": "title", "in": ["CISO"]}]}]},
	       "enroll": [{"kind": "course", "id": "sec"}]}
	    ]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Onboarding: []connector.Enrollment{course("welcome")},
		Rules: []Rule{
			{Name: "sales", When: Condition{Attribute: ent + ":department", Equals: "Sales"}, Enroll: []connector.Enrollment{curriculum("sales-101")}},
			{Name: "admins", When: Condition{Any: []Condition{{Group: "Okta Admins"}, {All: []Condition{{Attribute: "title", In: []string{"CISO"}}}}}},
				Enroll: []connector.Enrollment{course("sec")}},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	for _, body := range []string{`{}`, `{"enrollment": null}`} {
		c, err := Load(writeConfig(t, body))
		if err != nil || !reflect.DeepEqual(c, Config{}) {
			t.Errorf("%s: got %+v, %v", body, c, err)
		}
	}
	if c, err := Load(""); err != nil || !reflect.DeepEqual(c, Config{}) {
		t.Errorf("empty path: got %+v, %v", c, err)
	}
}

func TestLoadErrors(t *testing.T) {
	rule := func(name, when, enroll string) string {
		return `{"name": ` + name + `, "when": ` + when + `, "enroll": ` + enroll + `}`
	}
	ok := `[{"kind": "course", "id": "c"}]`
	dept := `{"attribute": "title", "equals": "x"}`
	tests := []struct {
		name  string
		rules string // the rules array
		want  []string
	}{
		{"unknown key", `[{"name": "a", "when": {"attribute": "title", "equal": "x"}, "enroll": []}]`, []string{`unknown field "equal"`}},
		{"name required", `[` + rule(`""`, dept, ok) + `]`, []string{"rules[0]: name is required"}},
		{"name spaces", `[` + rule(`" a"`, dept, ok) + `]`, []string{"surrounding spaces"}},
		{"duplicate names ignoring case", `[` + rule(`"a"`, dept, ok) + `,` + rule(`"A"`, dept, ok) + `]`, []string{`rules[1]: duplicate name "A"`}},
		{"reserved name", `[` + rule(`"Onboarding"`, dept, ok) + `]`, []string{"reserved"}},
		{"empty enroll", `[` + rule(`"a"`, dept, `[]`) + `]`, []string{`rule "a": enroll is empty`}},
		{"bad kind", `[` + rule(`"a"`, dept, `[{"kind": "webinar", "id": "w"}]`) + `]`, []string{`rule "a": enroll[0]: kind "webinar"`}},
		{"missing id", `[` + rule(`"a"`, dept, `[{"kind": "course"}]`) + `]`, []string{"enroll[0]: id is required"}},
		{"empty condition", `[` + rule(`"a"`, `{}`, ok) + `]`, []string{`rule "a": when: needs exactly one`}},
		{"two kinds", `[` + rule(`"a"`, `{"group": "g", "attribute": "title", "equals": "x"}`, ok) + `]`, []string{"needs exactly one"}},
		{"attribute without value", `[` + rule(`"a"`, `{"attribute": "title"}`, ok) + `]`, []string{"exactly one of equals, in"}},
		{"attribute with both", `[` + rule(`"a"`, `{"attribute": "title", "equals": "x", "in": ["y"]}`, ok) + `]`, []string{"exactly one of equals, in"}},
		{"empty in", `[` + rule(`"a"`, `{"attribute": "title", "in": []}`, ok) + `]`, []string{"in is empty"}},
		{"empty value in in", `[` + rule(`"a"`, `{"attribute": "title", "in": ["x", ""]}`, ok) + `]`, []string{"empty value"}},
		{"equals without attribute", `[` + rule(`"a"`, `{"group": "g", "equals": "x"}`, ok) + `]`, []string{"need an attribute"}},
		{"bad path", `[` + rule(`"a"`, `{"attribute": "emails[type eq", "equals": "x"}`, ok) + `]`, []string{`rule "a": when: attribute: bad attribute path`}},
		{"filter without sub-attribute", `[` + rule(`"a"`, `{"attribute": "emails[type eq \"work\"]", "equals": "x"}`, ok) + `]`, []string{"needs a sub-attribute"}},
		{"nested error located", `[` + rule(`"a"`, `{"all": [`+dept+`, {"any": [{"group": " "}]}]}`, ok) + `]`, []string{`rule "a": when.all[1].any[0]: group name is blank`}},
		{"empty all", `[` + rule(`"a"`, `{"all": []}`, ok) + `]`, []string{"all is empty"}},
		{"too deep", `[` + rule(`"a"`, strings.Repeat(`{"all": [`, 10)+dept+strings.Repeat(`]}`, 10), ok) + `]`, []string{"nested deeper than"}},
		{"several problems at once", `[` + rule(`""`, `{}`, `[]`) + `]`, []string{"name is required", "needs exactly one", "enroll is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, `{"enrollment": {"rules": `+tt.rules+`}}`))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	_, err := Load(writeConfig(t, `{"enrollment": {"onboarding": [{"kind": "Course", "id": "x"}]}}`))
	if err == nil || !strings.Contains(err.Error(), "onboarding[0]") {
		t.Errorf("bad onboarding: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

// TestExampleConfig keeps infra/config/learnerlink.example.json loadable by
// both packages and checks the rules it documents.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "infra", "config", "learnerlink.example.json")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Onboarding) == 0 || len(c.Rules) < 3 {
		t.Fatalf("example has %d onboarding enrollments and %d rules", len(c.Onboarding), len(c.Rules))
	}
	id := &store.Identity{ID: "u-1", UserName: "jane@example.com", ExternalID: "00u1", Active: true,
		Resource: json.RawMessage(`{"userName":"jane@example.com","name":{"givenName":"Jane","familyName":"Doe"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`)}
	if _, _, err := m.Learner(id, nil); err != nil {
		t.Fatal(err)
	}
	doc, err := mapping.Resource(id)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, a := range c.Plan(doc, []string{"Okta Admins"}, nil) {
		rules[a.Rule] = true
	}
	for _, want := range []string{Onboarding, "sales-curriculum", "okta-admins-security"} {
		if !rules[want] {
			t.Errorf("example plan for a Sales admin lacks %q (got %v)", want, rules)
		}
	}
}
