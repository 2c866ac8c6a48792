package filter

import (
	"errors"
	"strings"
	"testing"
)

// rfcExamples are the example filters of RFC 7644 §3.4.2.2 (Figure 2),
// with the normalised rendering expected from String().
func rfcExamples() []struct{ in, want string } {
	return []struct{ in, want string }{
		{`userName eq "bjensen"`, ``},
		{`name.familyName co "O'Malley"`, ``},
		{`userName sw "J"`, ``},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`, ``},
		{`title pr`, ``},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, ``},
		{`meta.lastModified ge "2011-05-13T04:42:34Z"`, ``},
		{`meta.lastModified lt "2011-05-13T04:42:34Z"`, ``},
		{`meta.lastModified le "2011-05-13T04:42:34Z"`, ``},
		{`title pr and userType eq "Employee"`, ``},
		{`title pr or userType eq "Intern"`, ``},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, ``},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, ``},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, ``},
		{`userType eq "Employee" and (emails.type eq "work")`, `userType eq "Employee" and emails.type eq "work"`},
		{`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`, ``},
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, ``},
	}
}

// validFilters are further accepted filters: input, String(), and the
// fully parenthesised tree from dump().
func validFilters() []struct{ in, want, tree string } {
	nested := func(n int) string { return strings.Repeat("(", n) + "a pr" + strings.Repeat(")", n) }
	return []struct{ in, want, tree string }{
		// operators and keywords in any case
		{`userName Eq "john"`, `userName eq "john"`, `(eq userName "john")`},
		{`Username EQ "john" AND title PR`, `Username eq "john" and title pr`, `(and (eq Username "john") (pr title))`},
		{`a NE 1 Or b Co "x" or c SW "y" or d ew "z" or e GT 1 or f GE 2 or g LT 3 or h LE 4`,
			`a ne 1 or b co "x" or c sw "y" or d ew "z" or e gt 1 or f ge 2 or g lt 3 or h le 4`, ``},
		{`NOT (a pr)`, `not (a pr)`, `(not (pr a))`},
		// precedence: not > and > or; parentheses override
		{`a pr or b pr and c pr`, ``, `(or (pr a) (and (pr b) (pr c)))`},
		{`a pr and b pr or c pr`, ``, `(or (and (pr a) (pr b)) (pr c))`},
		{`(a pr or b pr) and c pr`, ``, `(and (or (pr a) (pr b)) (pr c))`},
		{`not (a pr) and b pr`, ``, `(and (not (pr a)) (pr b))`},
		{`a pr and not (b pr or c pr) or d pr`, ``, `(or (and (pr a) (not (or (pr b) (pr c)))) (pr d))`},
		{`not (not (a pr))`, ``, `(not (not (pr a)))`},
		{`((a pr))`, `a pr`, `(pr a)`},
		{`(a pr and b pr) and (c pr and d pr)`, `a pr and b pr and c pr and d pr`, `(and (pr a) (pr b) (pr c) (pr d))`},
		{`(a pr or b pr) or c pr`, `a pr or b pr or c pr`, `(or (pr a) (pr b) (pr c))`},
		// value paths
		{`emails[type eq "work"]`, ``, `(exists emails[(eq type "work")])`},
		{`emails[type eq "work"].value eq "x@example.com"`, ``, `(eq emails[(eq type "work")].value "x@example.com")`},
		{`emails[type eq "work" and value co "@x" and primary eq true]`, ``, ``},
		{`emails[(type eq "work" or type eq "home") and not (value ew ".org")]`, ``, ``},
		{`emails[not (type eq "work")]`, ``, `(exists emails[(not (eq type "work"))])`},
		{`emails[type eq "work"] pr`, ``, `(pr emails[(eq type "work")])`},
		{`emails [ type eq "work" ] and title pr`, `emails[type eq "work"] and title pr`, ``},
		{`members[$ref eq "https://x/Users/1"]`, ``, ``},
		{`addresses[type eq "work"].postalCode sw "916"`, ``, ``},
		// URN-qualified paths
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7"`, ``,
			`(eq urn:ietf:params:scim:schemas:extension:enterprise:2.0:User|employeeNumber "7")`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`, ``,
			`(eq urn:ietf:params:scim:schemas:extension:enterprise:2.0:User|manager.value "x")`},
		{`urn:ietf:params:scim:schemas:extension:acme-corp_1:1.0:User:costCenter eq "7"`, ``, ``},
		{`urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"].value pr`, ``, ``},
		// compValue: JSON literals
		{`displayName eq "a \"quoted\" name"`, ``, `(eq displayName "a \"quoted\" name")`},
		{`displayName eq "caf\u00e9 \u00E9 \/ \\ \b\f\n\r\t"`, `displayName eq "café é / \\ \b\f\n\r\t"`, ``},
		{`displayName eq "<b>&amp;</b>"`, ``, ``},
		{`displayName eq ""`, ``, ``},
		{`displayName eq "日本語"`, ``, ``},
		{`x eq 12345678901234567890`, ``, ``},
		{`x gt -1.5e3`, ``, ``},
		{`x le 1E+2`, ``, ``},
		{`x eq 0`, ``, ``},
		{`x eq -0.0`, ``, ``},
		{`active eq TRUE`, `active eq true`, ``},
		{`active ne False`, `active ne false`, ``},
		{`manager eq NULL`, `manager eq null`, ``},
		{`manager ne null`, ``, ``},
		// lenient whitespace and tokenisation
		{"  userName \t eq\n\"x\"  ", `userName eq "x"`, ``},
		{`userName eq "x"and(title pr)`, `userName eq "x" and title pr`, ``},
		{`userName eq"x"`, `userName eq "x"`, ``},
		{`(a pr)or(b pr)`, `a pr or b pr`, ``},
		// keywords are only keywords where they can be
		{`not pr`, ``, `(pr not)`},
		{`not eq "x" and and pr or or pr`, ``, `(or (and (eq not "x") (pr and)) (pr or))`},
		{`not[value pr]`, ``, `(exists not[(pr value)])`},
		// nesting up to the bound
		{nested(maxDepth), `a pr`, ``},
		{strings.Repeat("not (", maxDepth) + "a pr" + strings.Repeat(")", maxDepth), strings.Repeat("not (", maxDepth) + "a pr" + strings.Repeat(")", maxDepth), ``},
		{strings.Repeat("a pr and ", 5000) + "a pr", strings.Repeat("a pr and ", 5000) + "a pr", ``},
	}
}

// invalidFilters are rejected filters and the byte offset of the error.
func invalidFilters() []struct {
	in  string
	pos int
} {
	return []struct {
		in  string
		pos int
	}{
		{``, 0},
		{`   `, 3},
		{`userName`, 8},
		{`userName eq`, 11},
		{`userName eq "x`, 12},
		{`userName xx "x"`, 9},
		{`userName eq "x" extra`, 16},
		{`userName eq "x" "y"`, 16},
		{`(userName eq "x"`, 16},
		{`userName eq "x")`, 15},
		{`not userName eq "x"`, 4},
		{`not a pr`, 4},
		{`not (a pr`, 9},
		{`a pr and ()`, 10},
		{`a pr and`, 8},
		{`a pr or`, 7},
		{`and`, 3},
		{`[a eq "x"]`, 0},
		{`name.givenName.x eq "a"`, 5},
		{`name. eq "a"`, 5},
		{`1abc eq "x"`, 0},
		{`-a pr`, 0},
		{`a..b pr`, 2},
		{`userName eq 'x'`, 12},
		{`userName eq x`, 12},
		{`a eq true1`, 5},
		{`userName eq "a\qb"`, 12},
		{`userName eq "a\u00g1"`, 12},
		{"userName eq \"tab\there\"", 16},
		{"userName eq \"a\xffb\"", 14},
		{`x eq 01`, 5},
		{`x eq 1.`, 5},
		{`x eq .5`, 5},
		{`x eq 1e`, 5},
		{`x eq 1e400`, 5},
		{`x eq -`, 5},
		{`x eq +1`, 5},
		{`x eq 5and y pr`, 5},
		{`x co 5`, 5},
		{`x sw true`, 5},
		{`x gt true`, 5},
		{`x lt null`, 5},
		{`emails[type eq "work"`, 21},
		{`emails[type eq "work")`, 21},
		{`emails[]`, 7},
		{`emails[type[value eq "x"] eq "y"]`, 11},
		{`emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "x"]`, 7},
		{`name.givenName[x eq "y"]`, 14},
		{`emails[type eq "work"].value`, 28},
		{`emails[type eq "work"].value.x eq "y"`, 23},
		{`emails[type eq "work"]. eq "y"`, 23},
		{`userName:x eq "y"`, 0},
		{`urn::x eq "y"`, 4},
		{`urn:ietf:x: eq "1"`, 11},
		{`urn:ietf$:x eq "1"`, 8},
		{`a pr and not (b pr`, 18},
		{strings.Repeat("(", maxDepth+1) + "a pr" + strings.Repeat(")", maxDepth+1), maxDepth},
		{strings.Repeat("not (", maxDepth+1) + "a pr" + strings.Repeat(")", maxDepth+1), maxDepth*5 + 4},
		{strings.Repeat("(", 100000), maxDepth},
	}
}

// dump renders the tree fully parenthesised in prefix form, so tests see
// structure that String() deliberately hides.
func dump(f *Filter) string {
	var b strings.Builder
	var walk func(*Filter)
	walk = func(f *Filter) {
		b.WriteByte('(')
		switch f.op {
		case opAnd, opOr, opNot:
			b.WriteString(f.op.String())
			for _, t := range f.terms {
				b.WriteByte(' ')
				walk(t)
			}
		default:
			if f.op == opExists {
				b.WriteString("exists")
			} else {
				b.WriteString(f.op.String())
			}
			b.WriteByte(' ')
			if f.path.URN != "" {
				b.WriteString(f.path.URN + "|")
			}
			b.WriteString(f.path.Attr)
			if f.path.Filter != nil {
				b.WriteByte('[')
				walk(f.path.Filter)
				b.WriteByte(']')
			}
			if f.path.SubAttr != "" {
				b.WriteString("." + f.path.SubAttr)
			}
			if f.op != opPr && f.op != opExists {
				b.WriteByte(' ')
				f.val.write(&b)
			}
		}
		b.WriteByte(')')
	}
	walk(f)
	return b.String()
}

func TestParseRFCExamples(t *testing.T) {
	for _, tc := range rfcExamples() {
		t.Run(tc.in, func(t *testing.T) {
			checkParse(t, tc.in, tc.want, "")
		})
	}
}

func TestParseValid(t *testing.T) {
	for _, tc := range validFilters() {
		name := tc.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			checkParse(t, tc.in, tc.want, tc.tree)
		})
	}
}

func checkParse(t *testing.T, in, want, tree string) {
	t.Helper()
	if want == "" {
		want = in
	}
	f, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse(%q) error: %v", in, err)
	}
	if got := f.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if tree != "" {
		if got := dump(f); got != tree {
			t.Errorf("tree = %s, want %s", got, tree)
		}
	}
	again, err := Parse(f.String())
	if err != nil {
		t.Fatalf("re-Parse(%q) error: %v", f.String(), err)
	}
	if dump(again) != dump(f) {
		t.Errorf("re-parsed tree %s differs from %s", dump(again), dump(f))
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidFilters() {
		name := tc.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			f, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error", tc.in, f)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if pe.Input != tc.in || pe.Pos != tc.pos || pe.Msg == "" {
				t.Errorf("error = {Pos: %d, Msg: %q}, want Pos %d (%v)", pe.Pos, pe.Msg, tc.pos, err)
			}
		})
	}
}

func TestParseDecodesValues(t *testing.T) {
	tests := []struct {
		in   string
		want value
	}{
		{`a eq "x \"y\" \u00e9\n"`, value{kind: valString, str: "x \"y\" é\n", fold: "x \"y\" é\n"}},
		{`a eq "MiXeD"`, value{kind: valString, str: "MiXeD", fold: "mixed"}},
		{`a eq 42`, value{kind: valNumber, str: "42", num: number{f: 42, i: 42, isInt: true}}},
		{`a eq -7`, value{kind: valNumber, str: "-7", num: number{f: -7, i: -7, isInt: true}}},
		{`a eq 9007199254740993`, value{kind: valNumber, str: "9007199254740993", num: number{f: 9007199254740992, i: 9007199254740993, isInt: true}}},
		{`a eq 12345678901234567890`, value{kind: valNumber, str: "12345678901234567890", num: number{f: 12345678901234567890}}},
		{`a eq 2.5e1`, value{kind: valNumber, str: "2.5e1", num: number{f: 25}}},
		{`a eq true`, value{kind: valBool, b: true}},
		{`a eq False`, value{kind: valBool}},
		{`a eq null`, value{kind: valNull}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if f.val != tc.want {
				t.Errorf("value = %+v, want %+v", f.val, tc.want)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Parse(`userName eq "secret@example.com" xx`)
	if err == nil {
		t.Fatal("want error")
	}
	if msg := err.Error(); strings.Contains(msg, "secret") || !strings.Contains(msg, "offset 33") {
		t.Errorf("Error() = %q: want the offset and no input text", msg)
	}
}

func TestEquality(t *testing.T) {
	tests := []struct {
		in          string
		attr, value string
		ok          bool
	}{
		{`userName eq "bjensen"`, "username", "bjensen", true},
		{`UserName EQ "BJensen"`, "username", "BJensen", true},
		{`externalId eq "00u1abcd"`, "externalid", "00u1abcd", true},
		{`id eq "2819c223"`, "id", "2819c223", true},
		{`displayName eq "a \"b\""`, "displayname", `a "b"`, true},
		{`(userName eq "x")`, "username", "x", true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, "username", "x", true},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Sales"`, "displayname", "Sales", true},
		{`userName ne "x"`, "", "", false},
		{`userName co "x"`, "", "", false},
		{`userName eq 5`, "", "", false},
		{`userName eq null`, "", "", false},
		{`active eq true`, "", "", false},
		{`name.givenName eq "x"`, "", "", false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7"`, "", "", false},
		{`emails[type eq "work"]`, "", "", false},
		{`emails[type eq "work"].value eq "x"`, "", "", false},
		{`userName eq "x" and id eq "y"`, "", "", false},
		{`userName eq "x" or userName eq "y"`, "", "", false},
		{`not (userName eq "x")`, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			attr, value, ok := f.Equality()
			if attr != tc.attr || value != tc.value || ok != tc.ok {
				t.Errorf("Equality() = %q, %q, %v; want %q, %q, %v", attr, value, ok, tc.attr, tc.value, tc.ok)
			}
		})
	}
	if _, _, ok := (*Filter)(nil).Equality(); ok {
		t.Error("nil filter: Equality() ok = true")
	}
}
