package filter

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, tc := range rfcExamples() {
		f.Add(tc.in)
	}
	for _, tc := range validFilters() {
		f.Add(tc.in)
	}
	for _, tc := range invalidFilters() {
		f.Add(tc.in)
	}
	for _, tc := range pathCases() {
		f.Add(tc.in + " pr")
	}
	user := decode(f, oktaUserJSON, false)
	group := decode(f, groupJSON, true)
	allExact := func(string) bool { return true }

	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Parse(s)
		if err != nil {
			checkError(t, s, err)
			return
		}
		out := flt.String()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String() %q does not parse: %v", s, out, err)
		}
		if out2 := again.String(); out2 != out {
			t.Fatalf("round trip of %q: %q then %q", s, out, out2)
		}
		for _, res := range []map[string]any{user, group} {
			for _, ce := range []func(string) bool{nil, allExact} {
				if flt.Matches(res, ce) != again.Matches(res, ce) {
					t.Fatalf("%q and its rendering %q evaluate differently", s, out)
				}
			}
		}
		flt.Equality()
	})
}

func FuzzParsePath(f *testing.F) {
	for _, tc := range pathCases() {
		f.Add(tc.in)
	}
	for _, tc := range invalidPaths() {
		f.Add(tc.in)
	}
	for _, tc := range rfcExamples() {
		f.Add(tc.in)
	}
	email := map[string]any{"type": "work", "value": "jane@example.com", "primary": true}

	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			checkError(t, s, err)
			return
		}
		if p.Attr == "" {
			t.Fatalf("ParsePath(%q) accepted an empty Attr", s)
		}
		out := p.String()
		again, err := ParsePath(out)
		if err != nil {
			t.Fatalf("ParsePath(%q) ok, but its String() %q does not parse: %v", s, out, err)
		}
		if out2 := again.String(); out2 != out {
			t.Fatalf("round trip of %q: %q then %q", s, out, out2)
		}
		if p.Filter != nil && p.Filter.Matches(email, nil) != again.Filter.Matches(email, nil) {
			t.Fatalf("%q and its rendering %q evaluate differently", s, out)
		}
	})
}

func checkError(t *testing.T, s string, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error for %q is %T, not *Error: %v", s, err, err)
	}
	if pe.Input != s || pe.Pos < 0 || pe.Pos > len(s) || pe.Msg == "" {
		t.Fatalf("bad error for %q: %+v", s, pe)
	}
}
