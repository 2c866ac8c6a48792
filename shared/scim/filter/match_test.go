package filter

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// oktaUserJSON is a User as Okta provisions it (core + enterprise extension),
// plus a custom extension with a number and a boolean.
const oktaUserJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "00u1abcdEFGH2345x697",
  "userName": "Jane.Doe@example.com",
  "name": {"givenName": "Jane", "familyName": "O'Malley", "formatted": "Jane O'Malley"},
  "displayName": "Jane O'Malley",
  "title": "Sales Engineer",
  "userType": "Employee",
  "locale": "en-US",
  "nickName": null,
  "active": true,
  "emails": [
    {"primary": true, "value": "jane.doe@example.com", "type": "work"},
    {"value": "jane@home.example.org", "type": "home"}
  ],
  "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
  "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "US", "primary": true}],
  "groups": [],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
    "division": "Theme Park", "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
  },
  "urn:learnerlink:params:scim:schemas:extension:lms:1.0:User": {"seniorityYears": 7, "certified": false, "bigId": 9007199254740993},
  "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\""}
}`

// entraUserJSON is a User as Microsoft Entra ID provisions it.
const entraUserJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "jdoe",
  "userName": "JDoe@contoso.onmicrosoft.com",
  "active": true,
  "displayName": "Jane Doe",
  "emails": [{"primary": true, "type": "work", "value": "JDoe@contoso.com"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
  "roles": [],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Finance", "manager": {"value": "M-1"}}
}`

// groupJSON is a Group as Okta pushes it.
const groupJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
  "displayName": "Sales Reps",
  "externalId": "00g1emaKYZTWRYYRRTSK",
  "members": [
    {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Jane O'Malley"},
    {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Bob Smith"}
  ]
}`

func decode(t testing.TB, s string, useNumber bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return m
}

// setFunc turns a set of lower-cased paths into a caseExact function; nil
// stays nil (everything case-insensitive).
func setFunc(set map[string]bool) func(string) bool {
	if set == nil {
		return nil
	}
	return func(p string) bool { return set[p] }
}

func TestMatches(t *testing.T) {
	const (
		user  = "okta"
		entra = "entra"
		group = "group"
	)
	fixtures := map[string]string{user: oktaUserJSON, entra: entraUserJSON, group: groupJSON}
	exactIDs := map[string]bool{"id": true, "externalid": true, "meta.version": true}
	tests := []struct {
		resource  string
		filter    string
		caseExact map[string]bool
		want      bool
	}{
		// RFC 7644 examples against the Okta user
		{user, `userName eq "jane.doe@example.com"`, nil, true},
		{user, `name.familyName co "o'mal"`, nil, true},
		{user, `userName sw "J"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:core:2.0:User:userName sw "j"`, nil, true},
		{user, `title pr`, nil, true},
		{user, `meta.lastModified gt "2011-05-13T04:42:33Z"`, nil, true},
		{user, `meta.lastModified gt "2011-05-13T04:42:34Z"`, nil, false},
		{user, `meta.lastModified ge "2011-05-13T04:42:34Z"`, nil, true},
		{user, `meta.lastModified lt "2011-05-13T04:42:34Z"`, nil, false},
		{user, `meta.lastModified le "2011-05-13T04:42:34Z"`, nil, true},
		{user, `title pr and userType eq "Employee"`, nil, true},
		{user, `title pr or userType eq "Intern"`, nil, true},
		{user, `nickName pr or userType eq "Intern"`, nil, false},
		{user, `schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, nil, true},
		{user, `userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, nil, true},
		{user, `userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, nil, false},
		{user, `userType eq "Employee" and (emails.type eq "work")`, nil, true},
		{user, `userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`, nil, true},
		{user, `emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, nil, true},
		// case sensitivity of values and attribute names
		{user, `userName eq "JANE.DOE@EXAMPLE.COM"`, nil, true},
		{user, `userName eq "JANE.DOE@EXAMPLE.COM"`, map[string]bool{"username": true}, false},
		{user, `USERNAME eq "jane.doe@example.com"`, nil, true},
		{user, `Name.GivenName eq "jane"`, nil, true},
		{user, `id eq "2819C223-7F76-453A-919D-413861904646"`, nil, true},
		{user, `id eq "2819C223-7F76-453A-919D-413861904646"`, exactIDs, false},
		{user, `id eq "2819c223-7f76-453a-919d-413861904646"`, exactIDs, true},
		{user, `externalId eq "00u1abcdefgh2345x697"`, exactIDs, false},
		{user, `meta.version eq "W/\"3694e05e9dff591\""`, exactIDs, true},
		{user, `meta.version eq "w/\"3694E05E9DFF591\""`, exactIDs, false},
		{user, `meta.version eq "w/\"3694E05E9DFF591\""`, nil, true},
		{user, `displayName co "o'malley"`, nil, true},
		{user, `displayName co "o'malley"`, map[string]bool{"displayname": true}, false},
		{user, `displayName ew "MALLEY"`, nil, true},
		{user, `userName gt "j"`, nil, true},
		{user, `userName gt "j"`, map[string]bool{"username": true}, false},
		{user, `userName lt "K"`, nil, true},
		// multi-valued attributes: any element; value filters bind one element
		{user, `emails.value eq "jane@home.example.org"`, nil, true},
		{user, `emails.type eq "home" and emails.value co "@example.com"`, nil, true},
		{user, `emails[type eq "home" and value co "@example.com"]`, nil, false},
		{user, `emails[type eq "work"].value eq "jane.doe@example.com"`, nil, true},
		{user, `emails[type eq "home"].value eq "jane.doe@example.com"`, nil, false},
		{user, `emails[type eq "work" and value co "@example.com" and primary eq true]`, nil, true},
		{user, `emails[type eq "home" and primary eq true]`, nil, false},
		{user, `emails[not (type eq "work")]`, nil, true},
		{user, `emails[not (type eq "work" or type eq "home")]`, nil, false},
		{user, `emails[type eq "WORK"]`, nil, true},
		{user, `emails[type eq "WORK"]`, map[string]bool{"emails.type": true}, false},
		{user, `emails[type eq "work"] pr`, nil, true},
		{user, `emails[type eq "other"] pr`, nil, false},
		{user, `emails eq "jane.doe@example.com"`, nil, true},
		{user, `addresses[type eq "work"].postalCode eq "91608"`, nil, true},
		{user, `phoneNumbers.value ew "0100"`, nil, true},
		{user, `emails.value ne "jane.doe@example.com"`, nil, false},
		// extension attributes: addressed by URN only
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984`, nil, false},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName sw "john"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations"`, nil, true},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations"`, map[string]bool{"department": true}, false},
		{user, `URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department eq "Tour Operations"`, nil, true},
		{user, `department eq "Tour Operations"`, nil, false},
		{user, `urn:ietf:params:scim:schemas:extension:other:2.0:User:department pr`, nil, false},
		// booleans, numbers, null, presence
		{user, `active eq true`, nil, true},
		{user, `active eq false`, nil, false},
		{user, `active ne false`, nil, true},
		{user, `active eq "true"`, nil, false},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:certified eq false`, nil, true},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears gt 5`, nil, true},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears ge 7`, nil, true},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears lt 7`, nil, false},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears le 7.0`, nil, true},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears eq 7e0`, nil, true},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears eq 7.5`, nil, false},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears eq "7"`, nil, false},
		{user, `urn:learnerlink:params:scim:schemas:extension:lms:1.0:User:seniorityYears gt "5"`, nil, false},
		{user, `nickName eq null`, nil, true},
		{user, `nickName ne null`, nil, false},
		{user, `profileUrl eq null`, nil, true},
		{user, `title eq null`, nil, false},
		{user, `title ne null`, nil, true},
		{user, `name eq null`, nil, false},
		{user, `nickName ne "x"`, nil, true},
		{user, `profileUrl ne "x"`, nil, true},
		{user, `nickName pr`, nil, false},
		{user, `groups pr`, nil, false},
		{user, `name pr`, nil, true},
		{user, `emails pr`, nil, true},
		{user, `profileUrl pr`, nil, false},
		// Entra user
		{entra, `externalId eq "jdoe"`, nil, true},
		{entra, `userName eq "jdoe@contoso.onmicrosoft.com"`, nil, true},
		{entra, `emails[type eq "work" and primary eq true].value eq "jdoe@contoso.com"`, nil, true},
		{entra, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "M-1"`, nil, true},
		{entra, `roles pr`, nil, false},
		// Group
		{group, `displayName eq "sales reps"`, nil, true},
		{group, `urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Sales Reps"`, nil, true},
		{group, `members[value eq "902c246b-6245-4190-8e05-00816be7344a"]`, nil, true},
		{group, `members[value eq "00000000-0000-0000-0000-000000000000"]`, nil, false},
		{group, `members.display co "bob"`, nil, true},
		{group, `members[value eq "902c246b-6245-4190-8e05-00816be7344a"].display eq "Bob Smith"`, nil, true},
		{group, `members[value eq "2819c223-7f76-453a-919d-413861904646"].display eq "Bob Smith"`, nil, false},
		{group, `members pr and not (members[display eq "Carol"])`, nil, true},
	}
	for _, useNumber := range []bool{false, true} {
		resources := map[string]map[string]any{}
		for name, s := range fixtures {
			resources[name] = decode(t, s, useNumber)
		}
		for _, tc := range tests {
			name := tc.resource + "/" + tc.filter
			if useNumber {
				name = "UseNumber/" + name
			}
			t.Run(name, func(t *testing.T) {
				f, err := Parse(tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.Matches(resources[tc.resource], setFunc(tc.caseExact)); got != tc.want {
					t.Errorf("Matches = %v, want %v (tree %s)", got, tc.want, dump(f))
				}
			})
		}
	}
}

func TestMatchesNumbers(t *testing.T) {
	tests := []struct {
		filter string
		value  any
		want   bool
	}{
		{`n eq 9007199254740993`, json.Number("9007199254740993"), true},
		{`n eq 9007199254740992`, json.Number("9007199254740993"), false},
		{`n gt 9007199254740992`, json.Number("9007199254740993"), true},
		{`n eq 9007199254740993`, int64(9007199254740993), true},
		{`n eq 3`, 3, true},
		{`n eq 3`, int32(3), true},
		{`n eq 3`, float32(3), true},
		{`n eq 3`, 3.0, true},
		{`n lt 3.5`, 3, true},
		{`n eq 1e2`, json.Number("100"), true},
		{`n eq 100`, json.Number("1e2"), true},
		{`n ge -1`, json.Number("-1.0"), true},
		{`n eq 1`, json.Number("not-a-number"), false},
		{`n eq 1`, "1", false},
		{`n eq 1`, true, false},
		{`n eq 12345678901234567890`, 12345678901234567890.0, true},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := Parse(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Matches(map[string]any{"n": tc.value}, nil); got != tc.want {
				t.Errorf("Matches(n=%#v) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

// TestCaseExactPaths pins the path strings handed to caseExact, which the
// SCIM layer keys its schema look-up on.
func TestCaseExactPaths(t *testing.T) {
	tests := []struct {
		filter string
		want   []string
	}{
		{`ID eq "x"`, []string{"id"}},
		{`externalId sw "x"`, []string{"externalid"}},
		{`emails.value eq "x"`, []string{"emails.value"}},
		{`emails eq "x"`, []string{"emails.value"}},
		{`emails[type eq "work"].value eq "x"`, []string{"emails.type", "emails.value"}},
		{`meta.version eq "x"`, []string{"meta.version"}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`, []string{"manager.value"}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, []string{"username"}},
		{`active eq true`, nil},
	}
	user := decode(t, oktaUserJSON, false)
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := Parse(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			var seen []string
			f.Matches(user, func(p string) bool {
				if !slices.Contains(seen, p) {
					seen = append(seen, p)
				}
				return false
			})
			slices.Sort(seen)
			if !slices.Equal(seen, tc.want) {
				t.Errorf("caseExact saw %q, want %q", seen, tc.want)
			}
		})
	}
}

func TestMatchesEdgeCases(t *testing.T) {
	tests := []struct {
		name     string
		filter   string
		resource map[string]any
		want     bool
	}{
		{"nil resource", `a pr`, nil, false},
		{"nil resource eq null", `a eq null`, nil, true},
		{"single complex treated as one element", `name[givenName eq "x"]`, map[string]any{"name": map[string]any{"givenName": "X"}}, true},
		{"value filter on simple values", `tags[value eq "x"]`, map[string]any{"tags": []any{"x"}}, false},
		{"simple multi-valued", `tags eq "x"`, map[string]any{"tags": []any{"a", "X"}}, true},
		{"multi-valued sub-attribute", `a.b eq "x"`, map[string]any{"a": map[string]any{"b": []any{"y", "x"}}}, true},
		{"keys differing only in case pick exact then smallest", `userName eq "b"`, map[string]any{"UserName": "a", "username": "b"}, false},
		{"exact key wins", `username eq "b"`, map[string]any{"UserName": "a", "username": "b"}, true},
		{"extension not an object", `urn:x:y:a pr`, map[string]any{"urn:x:y": "oops"}, false},
		{"empty string not present", `a pr`, map[string]any{"a": ""}, false},
		{"empty object not present", `a pr`, map[string]any{"a": map[string]any{}}, false},
		{"array of nulls not present", `a pr`, map[string]any{"a": []any{nil}}, false},
		{"zero is present", `a pr`, map[string]any{"a": 0.0}, true},
		{"false is present", `a pr`, map[string]any{"a": false}, true},
		{"unknown Go type is present", `a pr`, map[string]any{"a": []string{"x"}}, true},
		{"unknown Go type never equal", `a eq "x"`, map[string]any{"a": []string{"x"}}, false},
		{"case folding unicode", `a eq "ÉCOLE"`, map[string]any{"a": "école"}, true},
		{"co unicode folded", `a co "COLE"`, map[string]any{"a": "école"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Matches(tc.resource, nil); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
	if !(*Filter)(nil).Matches(map[string]any{}, nil) {
		t.Error("nil filter must match everything")
	}
}
