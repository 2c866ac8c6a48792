package filter

import (
	"errors"
	"testing"
)

const enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// pathCases are PATCH paths as Okta and Microsoft Entra send them, plus
// edge cases. filter is the value filter's String(), "" for none; want is
// String(), "" meaning the input.
func pathCases() []struct {
	in                     string
	urn, attr, filter, sub string
	want                   string
} {
	return []struct {
		in                     string
		urn, attr, filter, sub string
		want                   string
	}{
		{`members`, "", "members", "", "", ""},
		{`members[value eq "2819c223"]`, "", "members", `value eq "2819c223"`, "", ""},
		{`members[value eq "a" or value eq "b" or value eq "c"]`, "", "members", `value eq "a" or value eq "b" or value eq "c"`, "", ""},
		{`emails[type eq "work"].value`, "", "emails", `type eq "work"`, "value", ""},
		{`emails[type eq "work" and primary eq true]`, "", "emails", `type eq "work" and primary eq true`, "", ""},
		{`name.givenName`, "", "name", "", "givenName", ""},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`, enterpriseURN, "department", "", "", ""},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, enterpriseURN, "manager", "", "", ""},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`, enterpriseURN, "manager", "", "value", ""},
		{`urn:ietf:params:scim:schemas:core:2.0:User:name.givenName`, "urn:ietf:params:scim:schemas:core:2.0:User", "name", "", "givenName", ""},
		{`addresses[type eq "work"].streetAddress`, "", "addresses", `type eq "work"`, "streetAddress", ""},
		{`phoneNumbers[type eq "mobile"].value`, "", "phoneNumbers", `type eq "mobile"`, "value", ""},
		{`active`, "", "active", "", "", ""},
		{`$ref`, "", "$ref", "", "", ""},
		{`Members[Value EQ "x"]`, "", "Members", `Value eq "x"`, "", `Members[Value eq "x"]`},
		{` emails [ type eq "work" ].value `, "", "emails", `type eq "work"`, "value", `emails[type eq "work"].value`},
	}
}

func invalidPaths() []struct {
	in  string
	pos int
} {
	return []struct {
		in  string
		pos int
	}{
		{``, 0},
		{`  `, 2},
		{`members[`, 8},
		{`members[value eq "x"`, 20},
		{`members]`, 7},
		{`members extra`, 8},
		{`name.givenName.x`, 5},
		{`name.`, 5},
		{`emails[type eq "work"].value.x`, 23},
		{`emails[type eq "work"].`, 23},
		{`emails[type eq "work"] extra`, 23},
		{`emails[type eq "work"][value pr]`, 22},
		{`members[value eq "x"] eq "y"`, 22},
		{`name.givenName[value eq "x"]`, 14},
		{`emails[type[value pr] pr]`, 11},
		{`urn:x`, 0},
		{`urn:ietf:params:`, 16},
		{`[value eq "x"]`, 0},
		{`9lives`, 0},
		{"members[value eq \"\xc3\"]", 18},
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range pathCases() {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePath(tc.in)
			if err != nil {
				t.Fatalf("ParsePath(%q) error: %v", tc.in, err)
			}
			if p.URN != tc.urn || p.Attr != tc.attr || p.SubAttr != tc.sub || p.Filter.String() != tc.filter {
				t.Errorf("ParsePath(%q) = {URN: %q, Attr: %q, Filter: %q, SubAttr: %q}, want {%q, %q, %q, %q}",
					tc.in, p.URN, p.Attr, p.Filter.String(), p.SubAttr, tc.urn, tc.attr, tc.filter, tc.sub)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got := p.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			again, err := ParsePath(p.String())
			if err != nil || again.String() != p.String() {
				t.Errorf("round trip: ParsePath(%q) = %q, %v", p.String(), again.String(), err)
			}
		})
	}
}

func TestParsePathInvalid(t *testing.T) {
	for _, tc := range invalidPaths() {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePath(tc.in)
			if err == nil {
				t.Fatalf("ParsePath(%q) = %s, want error", tc.in, p)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if pe.Input != tc.in || pe.Pos != tc.pos {
				t.Errorf("error = {Pos: %d, Msg: %q}, want Pos %d", pe.Pos, pe.Msg, tc.pos)
			}
		})
	}
}

// TestPathFilterMatchesElements is how the SCIM layer applies
// `members[value eq "..."]` and `emails[type eq "work"].value`: the value
// filter runs against each element, with caseExact paths under the attribute.
func TestPathFilterMatchesElements(t *testing.T) {
	members := []map[string]any{
		{"value": "2819c223-7f76-453a-919d-413861904646", "display": "Jane"},
		{"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Bob"},
	}
	tests := []struct {
		path      string
		caseExact map[string]bool
		want      []bool
	}{
		{`members[value eq "2819c223-7f76-453a-919d-413861904646"]`, nil, []bool{true, false}},
		{`members[value eq "2819C223-7F76-453A-919D-413861904646"]`, nil, []bool{true, false}},
		{`members[value eq "2819C223-7F76-453A-919D-413861904646"]`, map[string]bool{"members.value": true}, []bool{false, false}},
		{`members[display sw "b" or display eq "jane"]`, nil, []bool{true, true}},
		{`members[not (display pr)]`, nil, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p, err := ParsePath(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range members {
				if got := p.Filter.Matches(m, setFunc(tc.caseExact)); got != tc.want[i] {
					t.Errorf("element %d: Matches = %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}
