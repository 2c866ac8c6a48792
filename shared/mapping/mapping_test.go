package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/store"
)

// oktaUser is a SCIM User as Okta sends it, with both extensions.
const oktaUser = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User"],
  "id": "u-1",
  "externalId": "00u1okta",
  "userName": "jane@example.com",
  "name": {"givenName": "Jane", "familyName": "Doe"},
  "displayName": "Jane Doe",
  "title": "Account Executive",
  "active": true,
  "emails": [
    {"value": "jane.home@example.net", "type": "home"},
    {"value": "jane@example.com", "type": "work", "primary": true}
  ],
  "addresses": [
    {"type": "home", "locality": "Springfield"},
    {"type": "work", "locality": "Chicago", "country": "US"}
  ],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "E-1001",
    "costCenter": "CC-42",
    "organization": "Acme",
    "division": "North America",
    "department": "Sales",
    "manager": {"value": "u-boss", "displayName": "Bob Boss"}
  },
  "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User": {
    "region": "EMEA",
    "seniority": 3,
    "isManager": true,
    "tags": ["a", "b"]
  }
}`

func identity(t testing.TB, resource string, mutate ...func(*store.Identity)) *store.Identity {
	t.Helper()
	id := &store.Identity{
		ID:         "u-1",
		UserName:   "jane@example.com",
		ExternalID: "00u1okta",
		Active:     true,
		Resource:   json.RawMessage(resource),
	}
	for _, m := range mutate {
		m(id)
	}
	return id
}

// patch returns oktaUser with top-level keys replaced (nil deletes).
func patch(t testing.TB, changes map[string]any) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(oktaUser), &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if v == nil {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lookupOf finds identities by our id or externalId in a fixed set.
func lookupOf(ids ...*store.Identity) IdentityLookup {
	return func(ref string) (*store.Identity, error) {
		for _, id := range ids {
			if id.ID == ref || id.ExternalID == ref {
				return id, nil
			}
		}
		return nil, fmt.Errorf("no %q: %w", ref, store.ErrNotFound)
	}
}

func boss() *store.Identity {
	return &store.Identity{ID: "u-boss", UserName: "bob@example.com", ExternalID: "00uBOSS", Active: true,
		Resource: json.RawMessage(`{"userName":"bob@example.com"}`)}
}

func TestDefaultLearner(t *testing.T) {
	c := Default()
	c.Lookup = lookupOf(boss())
	l, groups, err := c.Learner(identity(t, oktaUser), []store.Member{{GroupID: "g2", GroupName: "Sales"}, {GroupID: "g1", GroupName: "Everyone"}})
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Learner{
		ExternalID: "00u1okta",
		UserName:   "jane@example.com",
		Email:      "jane@example.com",
		FirstName:  "Jane",
		LastName:   "Doe",
		Active:     true,
		Fields: map[string]string{
			"departmentName":       "Sales",
			"jobTitle":             "Account Executive",
			"employeeNumber":       "E-1001",
			"supervisorExternalId": "00uBOSS",
			"location":             "Chicago",
			"customFields.string1": "CC-42",
			"customFields.string2": "North America",
			"customFields.string3": "Acme",
		},
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("learner\n got %+v\nwant %+v", l, want)
	}
	if !reflect.DeepEqual(groups, []string{"Everyone", "Sales"}) {
		t.Errorf("groups = %q", groups)
	}
}

// TestDefaultFields checks each default rule, including its fallbacks.
func TestDefaultFields(t *testing.T) {
	ent := EnterpriseURN
	tests := []struct {
		name     string
		resource string
		mutate   func(*store.Identity)
		lookup   IdentityLookup
		get      func(connector.Learner) string
		want     string
	}{
		{"externalId from identity column", oktaUser, nil, nil, func(l connector.Learner) string { return l.ExternalID }, "00u1okta"},
		{"externalId falls back to our id", patch(t, map[string]any{"externalId": nil}), func(i *store.Identity) { i.ExternalID = "" }, nil,
			func(l connector.Learner) string { return l.ExternalID }, "u-1"},
		{"userName from identity column", oktaUser, func(i *store.Identity) { i.UserName = "Jane@Example.com" }, nil,
			func(l connector.Learner) string { return l.UserName }, "Jane@Example.com"},
		{"email primary", oktaUser, nil, nil, func(l connector.Learner) string { return l.Email }, "jane@example.com"},
		{"email work when no primary", patch(t, map[string]any{"emails": []any{
			map[string]any{"value": "h@x", "type": "home"}, map[string]any{"value": "w@x", "type": "work"}}}), nil, nil,
			func(l connector.Learner) string { return l.Email }, "w@x"},
		{"email first when no primary or work", patch(t, map[string]any{"emails": []any{
			map[string]any{"value": "h@x", "type": "home"}, map[string]any{"value": "o@x", "type": "other"}}}), nil, nil,
			func(l connector.Learner) string { return l.Email }, "h@x"},
		{"email primary beats work", patch(t, map[string]any{"emails": []any{
			map[string]any{"value": "w@x", "type": "work"}, map[string]any{"value": "p@x", "type": "other", "primary": true}}}), nil, nil,
			func(l connector.Learner) string { return l.Email }, "p@x"},
		{"email missing", patch(t, map[string]any{"emails": nil}), nil, nil, func(l connector.Learner) string { return l.Email }, ""},
		{"firstName", oktaUser, nil, nil, func(l connector.Learner) string { return l.FirstName }, "Jane"},
		{"lastName", oktaUser, nil, nil, func(l connector.Learner) string { return l.LastName }, "Doe"},
		{"name attributes match case-insensitively", patch(t, map[string]any{"name": nil, "NAME": map[string]any{"GivenName": "J"}}), nil, nil,
			func(l connector.Learner) string { return l.FirstName }, "J"},
		{"active", oktaUser, nil, nil, func(l connector.Learner) string { return fmt.Sprint(l.Active) }, "true"},
		{"inactive column wins over resource", oktaUser, func(i *store.Identity) { i.Active = false }, nil,
			func(l connector.Learner) string { return fmt.Sprint(l.Active) }, "false"},
		{"deleted is inactive", oktaUser, func(i *store.Identity) { i.Deleted = true }, nil,
			func(l connector.Learner) string { return fmt.Sprint(l.Active) }, "false"},
		{"departmentName", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["departmentName"] }, "Sales"},
		{"jobTitle", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["jobTitle"] }, "Account Executive"},
		{"employeeNumber", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["employeeNumber"] }, "E-1001"},
		{"employeeNumber as a JSON number keeps its text", patch(t, map[string]any{ent: map[string]any{"employeeNumber": json.Number("1001.50")}}), nil, nil,
			func(l connector.Learner) string { return l.Fields["employeeNumber"] }, "1001.50"},
		{"location from work address", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["location"] }, "Chicago"},
		{"location empty without work address", patch(t, map[string]any{"addresses": []any{map[string]any{"type": "home", "locality": "X"}}}), nil, nil,
			func(l connector.Learner) string { return l.Fields["location"] }, ""},
		{"costCenter", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["customFields.string1"] }, "CC-42"},
		{"division", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["customFields.string2"] }, "North America"},
		{"organization", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["customFields.string3"] }, "Acme"},
		{"missing enterprise extension clears its fields", patch(t, map[string]any{ent: nil}), nil, nil,
			func(l connector.Learner) string {
				return l.Fields["departmentName"] + "|" + l.Fields["supervisorExternalId"]
			}, "|"},
		{"supervisor by our id", oktaUser, nil, lookupOf(boss()),
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "00uBOSS"},
		{"supervisor by Okta id", patch(t, map[string]any{ent: map[string]any{"manager": map[string]any{"value": "00uBOSS"}}}), nil, lookupOf(boss()),
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "00uBOSS"},
		{"supervisor without externalId falls back to its id", oktaUser, nil,
			lookupOf(&store.Identity{ID: "u-boss", UserName: "bob@example.com"}),
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "u-boss"},
		{"supervisor unknown keeps the reference", patch(t, map[string]any{ent: map[string]any{"manager": map[string]any{"value": "00uNEW"}}}), nil, lookupOf(boss()),
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "00uNEW"},
		{"supervisor without lookup keeps the reference", oktaUser, nil, nil,
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "u-boss"},
		{"supervisor as Entra's plain string", patch(t, map[string]any{ent: map[string]any{"manager": "u-boss"}}), nil, lookupOf(boss()),
			func(l connector.Learner) string { return l.Fields["supervisorExternalId"] }, "00uBOSS"},
		{"custom extension not passed by default", oktaUser, nil, nil, func(l connector.Learner) string { return l.Fields["region"] }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Lookup = tt.lookup
			var mut []func(*store.Identity)
			if tt.mutate != nil {
				mut = append(mut, tt.mutate)
			}
			l, _, err := c.Learner(identity(t, tt.resource, mut...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(l); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLearnerConfigured(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Config)
		want   map[string]string // expected Fields entries ("" value: must be present and empty)
		absent []string
		check  func(t *testing.T, l connector.Learner)
	}{
		{
			name: "literal and fallback chain",
			edit: func(c *Config) {
				c.Fields["departmentName"] = Source{CustomURN + ":team", "=Unassigned"}
				c.Fields["customFields.string5"] = Source{"=Okta"}
			},
			want: map[string]string{"departmentName": "Unassigned", "customFields.string5": "Okta"},
		},
		{
			name: "custom extension by path",
			edit: func(c *Config) { c.Fields["customFields.string4"] = Source{CustomURN + ":region"} },
			want: map[string]string{"customFields.string4": "EMEA"},
		},
		{
			name: "pass custom attributes",
			edit: func(c *Config) {
				c.PassCustomAttributes = true
				c.Fields["region"] = Source{"=configured wins"}
			},
			want:   map[string]string{"region": "configured wins", "seniority": "3", "isManager": "true"},
			absent: []string{"tags"},
		},
		{
			name:   "unmapped field is absent",
			edit:   func(c *Config) { delete(c.Fields, "customFields.string1") },
			absent: []string{"customFields.string1"},
		},
		{
			name: "core fields overridden",
			edit: func(c *Config) {
				c.Fields[FieldExternalID] = Source{EnterpriseURN + ":employeeNumber"}
				c.Fields[FieldEmail] = Source{`emails[type eq "home"].value`}
				c.Fields[FieldActive] = Source{"=false"}
			},
			check: func(t *testing.T, l connector.Learner) {
				if l.ExternalID != "E-1001" || l.Email != "jane.home@example.net" || l.Active {
					t.Errorf("got %+v", l)
				}
			},
		},
		{
			name: "supervisor resolves through the configured externalId",
			edit: func(c *Config) {
				c.Fields[FieldExternalID] = Source{EnterpriseURN + ":employeeNumber", "id"}
				c.Lookup = lookupOf(&store.Identity{ID: "u-boss", UserName: "bob",
					Resource: json.RawMessage(`{"` + EnterpriseURN + `":{"employeeNumber":"E-7"}}`)})
			},
			want: map[string]string{"supervisorExternalId": "E-7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			l, _, err := c.Learner(identity(t, oktaUser), nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got, ok := l.Fields[k]; !ok || got != v {
					t.Errorf("Fields[%s] = %q (present %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := l.Fields[k]; ok {
					t.Errorf("Fields[%s] = %q, want absent", k, v)
				}
			}
			if tt.check != nil {
				tt.check(t, l)
			}
		})
	}
}

func TestLearnerErrors(t *testing.T) {
	failing := func(string) (*store.Identity, error) { return nil, errors.New("store down") }
	tests := []struct {
		name     string
		edit     func(*Config)
		identity *store.Identity
		want     string
	}{
		{"resource not JSON", nil, identity(t, `{"userName":`), "decode resource"},
		{"no userName", nil, identity(t, `{}`, func(i *store.Identity) { i.UserName = "" }), "userName maps to nothing"},
		{"active not boolean", func(c *Config) { c.Fields[FieldActive] = Source{"title"} }, identity(t, oktaUser), "not a boolean"},
		{"lookup fails", func(c *Config) { c.Lookup = failing }, identity(t, oktaUser), "store down"},
		{"bad hand-built expression", func(c *Config) { c.Fields["x"] = Source{"emails[type eq"} }, identity(t, oktaUser), "field x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.edit != nil {
				tt.edit(&c)
			}
			_, _, err := c.Learner(tt.identity, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	members := func(names ...string) []store.Member {
		var ms []store.Member
		for i, n := range names {
			ms = append(ms, store.Member{GroupID: fmt.Sprint("g", i), GroupName: n, UserID: "u-1"})
		}
		return ms
	}
	tests := []struct {
		name    string
		groups  GroupMap
		members []store.Member
		want    []string
	}{
		{"pass-through, sorted", GroupMap{}, members("Sales", "Everyone", "Admins"), []string{"Admins", "Everyone", "Sales"}},
		{"none", GroupMap{}, nil, nil},
		{"rename case-insensitively", GroupMap{Map: map[string]string{"okta sales": "Sales Team"}}, members("Okta Sales", "Everyone"),
			[]string{"Everyone", "Sales Team"}},
		{"empty target drops", GroupMap{Map: map[string]string{"Everyone": ""}}, members("Everyone", "Sales"), []string{"Sales"}},
		{"only mapped", GroupMap{Map: map[string]string{"Sales": "Sales Team", "Admins": "Admins"}, OnlyMapped: true},
			members("Sales", "Everyone", "Admins"), []string{"Admins", "Sales Team"}},
		{"two groups onto one", GroupMap{Map: map[string]string{"Sales EU": "Sales", "Sales US": "Sales"}}, members("Sales EU", "Sales US"), []string{"Sales"}},
		{"unnamed membership skipped", GroupMap{}, []store.Member{{GroupID: "g1"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Groups = tt.groups
			_, got, err := c.Learner(identity(t, oktaUser), tt.members)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("groups = %q, want %q", got, tt.want)
			}
		})
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

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		file  string // "" means no file
		env   func(string) string
		check func(t *testing.T, c Config)
	}{
		{"no file, no env is Default", "", nil, func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.Fields, Default().Fields) || c.PassCustomAttributes || c.Groups.Map != nil {
				t.Errorf("got %+v", c)
			}
		}},
		{"file without mapping section is Default", `{"enrollment": {"rules": []}, "_comment": "x"}`, nil, func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.Fields, Default().Fields) {
				t.Errorf("got %+v", c.Fields)
			}
		}},
		{"file overrides, unmaps and adds", `{"mapping": {
			"_comment": "documented",
			"fields": {
				"_comment_fields": "ignored",
				"departmentName": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
				"customFields.string2": "",
				"customFields.string3": null,
				"customFields.string9": ["urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:region", "=none"]
			},
			"passCustomAttributes": true,
			"groups": {"map": {"Okta Sales": "Sales Team"}, "onlyMapped": true}
		}}`, nil, func(t *testing.T, c Config) {
			want := Default().Fields
			want["departmentName"] = Source{EnterpriseURN + ":division"}
			delete(want, "customFields.string2")
			delete(want, "customFields.string3")
			want["customFields.string9"] = Source{CustomURN + ":region", "=none"}
			if !reflect.DeepEqual(c.Fields, want) {
				t.Errorf("fields\n got %v\nwant %v", c.Fields, want)
			}
			if !c.PassCustomAttributes || !c.Groups.OnlyMapped || c.Groups.Map["Okta Sales"] != "Sales Team" {
				t.Errorf("got %+v", c)
			}
		}},
		{"env overrides file", `{"mapping": {"fields": {"jobTitle": "=from file", "customFields.string7": "title"}}}`,
			envOf("LEARNERLINK_MAP_JOBTITLE", "=from env",
				"LEARNERLINK_MAP_CUSTOMFIELDS_STRING7", "-",
				"LEARNERLINK_MAP_CUSTOMFIELDS_STRING4", `urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:region`,
				"LEARNERLINK_MAP_EMAIL", `["emails[type eq \"work\"].value", "userName"]`,
				"LEARNERLINK_MAP_SUPERVISOREXTERNALID", "-"),
			func(t *testing.T, c Config) {
				checks := map[string]Source{
					"jobTitle":             {"=from env"},
					"customFields.string4": {CustomURN + ":region"},
					"email":                {`emails[type eq "work"].value`, "userName"},
				}
				for f, want := range checks {
					if !reflect.DeepEqual(c.Fields[f], want) {
						t.Errorf("%s = %q, want %q", f, c.Fields[f], want)
					}
				}
				for _, f := range []string{"customFields.string7", "supervisorExternalId"} {
					if _, ok := c.Fields[f]; ok {
						t.Errorf("%s still mapped", f)
					}
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			c, err := Load(path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  func(string) string
		want []string // every substring must be in the error
	}{
		{"unknown key", `{"mapping": {"feilds": {}}}`, nil, []string{`unknown field "feilds"`}},
		{"unknown key in groups", `{"mapping": {"groups": {"only": true}}}`, nil, []string{`unknown field "only"`}},
		{"not JSON", `{"mapping": `, nil, []string{"unexpected EOF"}},
		{"trailing data", `{"mapping": {}} {}`, nil, []string{"trailing data"}},
		{"top level not an object", `[]`, nil, []string{"cannot unmarshal"}},
		{"wrong type", `{"mapping": {"fields": {"jobTitle": 3}}}`, nil, []string{"jobTitle"}},
		{"bad paths name their keys", `{"mapping": {"fields": {
			"jobTitle": "title[",
			"location": "addresses[type eq \"work\"]",
			"departmentName": ["department", ""],
			"customFields.string1": "externalIdOf(manager.value"}}}`, nil,
			[]string{"fields.jobTitle", "fields.location", "needs a sub-attribute", "fields.departmentName", "empty expression",
				"fields.customFields.string1", "without closing"}},
		{"core field unmapped", `{"mapping": {"fields": {"userName": ""}}}`, nil, []string{"fields.userName", "cannot be unmapped"}},
		{"externalId references itself", `{"mapping": {"fields": {"externalId": "externalIdOf(manager.value)"}}}`, nil,
			[]string{"fields.externalId", "externalIdOf"}},
		{"active literal not boolean", `{"mapping": {"fields": {"active": "=yes please"}}}`, nil, []string{"fields.active", "not a boolean"}},
		{"bad field name", `{"mapping": {"fields": {"job title": "title", "a..b": "title"}}}`, nil,
			[]string{`"job title"`, `"a..b"`}},
		{"group map case duplicates", `{"mapping": {"groups": {"map": {"Sales": "A", "sales": "B"}}}}`, nil, []string{"groups.map", "same group"}},
		{"group map empty key", `{"mapping": {"groups": {"map": {" ": "A"}}}}`, nil, []string{"groups.map", "empty group name"}},
		{"env bad path names the variable", `{}`, envOf("LEARNERLINK_MAP_DEPARTMENTNAME", "department["), []string{"LEARNERLINK_MAP_DEPARTMENTNAME"}},
		{"env bad array", `{}`, envOf("LEARNERLINK_MAP_EMAIL", `["x"`), []string{"LEARNERLINK_MAP_EMAIL", "JSON array"}},
		{"env unmaps core", `{}`, envOf("LEARNERLINK_MAP_USERNAME", "-"), []string{"LEARNERLINK_MAP_USERNAME", "cannot be unmapped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.file), tt.env)
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
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json"), nil); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestEnvVar(t *testing.T) {
	tests := map[string]string{
		"departmentName":       "LEARNERLINK_MAP_DEPARTMENTNAME",
		"customFields.string1": "LEARNERLINK_MAP_CUSTOMFIELDS_STRING1",
		"email":                "LEARNERLINK_MAP_EMAIL",
		"cost-center":          "LEARNERLINK_MAP_COST_CENTER",
	}
	for field, want := range tests {
		if got := EnvVar(field); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", field, got, want)
		}
	}
}

func TestSourceJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Source
		out  string
	}{
		{`"userName"`, Source{"userName"}, `"userName"`},
		{`["a","b"]`, Source{"a", "b"}, `["a","b"]`},
		{`""`, nil, `""`},
		{`null`, nil, `""`},
		{`[]`, Source{}, `""`},
	}
	for _, tt := range tests {
		var s Source
		if err := json.Unmarshal([]byte(tt.in), &s); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if !reflect.DeepEqual(s, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.in, s, tt.want)
		}
		out, err := json.Marshal(s)
		if err != nil || string(out) != tt.out {
			t.Errorf("%s: marshal = %s, %v; want %s", tt.in, out, err, tt.out)
		}
	}
	var s Source
	if err := json.Unmarshal([]byte(`{}`), &s); err == nil {
		t.Error("object accepted as a Source")
	}
}

func TestHash(t *testing.T) {
	base := connector.Learner{ExternalID: "00u1", UserName: "jane", Email: "j@x", FirstName: "J", LastName: "D", Active: true,
		Fields: map[string]string{"departmentName": "Sales", "jobTitle": "AE"}}
	h := Hash(base, []string{"b", "a"})
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex sha256", h)
	}
	same := []struct {
		name   string
		l      connector.Learner
		groups []string
	}{
		{"group order", base, []string{"a", "b"}},
		{"duplicate groups", base, []string{"a", "b", "a"}},
		{"target id ignored", func() connector.Learner { l := base; l.ID = "abs-1"; return l }(), []string{"a", "b"}},
		{"map rebuilt", func() connector.Learner {
			l := base
			l.Fields = map[string]string{"jobTitle": "AE", "departmentName": "Sales"}
			return l
		}(), []string{"b", "a"}},
	}
	for _, tt := range same {
		if got := Hash(tt.l, tt.groups); got != h {
			t.Errorf("%s: hash changed", tt.name)
		}
	}
	if Hash(connector.Learner{}, nil) != Hash(connector.Learner{Fields: map[string]string{}}, []string{}) {
		t.Error("nil and empty differ")
	}
	differ := []struct {
		name   string
		edit   func(*connector.Learner)
		groups []string
	}{
		{"externalId", func(l *connector.Learner) { l.ExternalID = "x" }, nil},
		{"userName", func(l *connector.Learner) { l.UserName = "x" }, nil},
		{"email", func(l *connector.Learner) { l.Email = "x" }, nil},
		{"firstName", func(l *connector.Learner) { l.FirstName = "x" }, nil},
		{"lastName", func(l *connector.Learner) { l.LastName = "x" }, nil},
		{"active", func(l *connector.Learner) { l.Active = false }, nil},
		{"field value", func(l *connector.Learner) { l.Fields = map[string]string{"departmentName": "x", "jobTitle": "AE"} }, nil},
		{"field cleared vs absent", func(l *connector.Learner) {
			l.Fields = map[string]string{"departmentName": "Sales", "jobTitle": "AE", "location": ""}
		}, nil},
		{"groups", nil, []string{"a"}},
		{"value moved between fields", func(l *connector.Learner) { l.FirstName, l.LastName = "D", "J" }, nil},
	}
	for _, tt := range differ {
		l := base
		if tt.edit != nil {
			tt.edit(&l)
		}
		groups := tt.groups
		if groups == nil {
			groups = []string{"a", "b"}
		}
		if Hash(l, groups) == h {
			t.Errorf("%s: hash did not change", tt.name)
		}
	}
	// Pinned: links store hashes written by earlier releases, so a change
	// of scheme costs one redundant write per learner. It is sha256 of
	// {"active":true,"email":"j@x","externalId":"00u1","fields":{"departmentName":"Sales","jobTitle":"AE"},
	// "firstName":"J","groups":["a","b"],"lastName":"D","userName":"jane"} (no spaces or newline).
	if want := "cdd477713e6b68382ec65356c68bb3f2d805bd7b705eec65fea47a003b3e9e31"; h != want {
		t.Errorf("hash scheme changed: %s, want %s", h, want)
	}
}

// fakeFinder is an in-memory IdentityFinder.
type fakeFinder struct{ ids []*store.Identity }

func (f fakeFinder) GetIdentity(_ context.Context, id string) (*store.Identity, error) {
	for _, i := range f.ids {
		if i.ID == id {
			return i, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f fakeFinder) FindIdentitiesByExternalID(_ context.Context, ext string) ([]*store.Identity, error) {
	var out []*store.Identity
	for _, i := range f.ids {
		if i.ExternalID == ext {
			out = append(out, i)
		}
	}
	return out, nil
}

func (f fakeFinder) GetIdentityByUserName(_ context.Context, u string) (*store.Identity, error) {
	for _, i := range f.ids {
		if strings.EqualFold(i.UserName, u) {
			return i, nil
		}
	}
	return nil, store.ErrNotFound
}

func TestStoreLookup(t *testing.T) {
	f := fakeFinder{ids: []*store.Identity{
		{ID: "u-1", ExternalID: "00u1", UserName: "one@x"},
		{ID: "u-2", ExternalID: "dup", UserName: "two@x"},
		{ID: "u-3", ExternalID: "dup", UserName: "three@x"},
	}}
	tests := []struct {
		ref      string
		want     string
		notFound bool
	}{
		{"u-1", "u-1", false},
		{"00u1", "u-1", false},
		{"TWO@x", "u-2", false},
		{"dup", "", true},
		{"nobody", "", true},
	}
	lookup := StoreLookup(context.Background(), f)
	for _, tt := range tests {
		id, err := lookup(tt.ref)
		switch {
		case tt.notFound:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", tt.ref, err)
			}
		case err != nil || id.ID != tt.want:
			t.Errorf("%s: got %v, %v; want %s", tt.ref, id, err, tt.want)
		}
	}
}
