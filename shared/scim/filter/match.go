package filter

import (
	"cmp"
	"encoding/json"
	"strings"
)

// Matches evaluates the filter against a resource decoded from JSON (map[string]any, []any, string, float64/json.Number, bool, nil).
// Attribute names match case-insensitively (RFC 7643 §2.1). A schema URN prefix (e.g. "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department") addresses the extension object keyed by that URN; "urn:ietf:params:scim:schemas:core:2.0:User:userName" addresses core attribute userName.
// String comparisons are case-insensitive unless caseExact(path) is true, where path is the full attribute path lower-cased without URN, e.g. "id", "externalid", "emails.value", "meta.version". caseExact may be nil (everything case-insensitive).
// Multi-valued attributes match if any element matches; "emails.value eq x" and "emails[type eq \"work\"].value eq x" and "emails[type eq \"work\" and value co \"@x\"]" all work. pr: present and not null/empty string/empty array. gt/ge/lt/le: numbers numerically, strings (incl. RFC 3339 dateTimes) lexicographically (case-folded unless caseExact), booleans only with eq/ne. Comparing with null: "eq null" matches absent/null.
//
// Further rules: a complex value compared without a sub-attribute is
// compared through its "value" sub-attribute (so `emails co "x"` means
// `emails.value co "x"`, as in the RFC examples); "ne" is the negation of
// "eq" (an absent attribute is "ne" anything but null); values of mismatched
// type never match. A nil filter matches everything.
func (f *Filter) Matches(resource map[string]any, caseExact func(path string) bool) bool {
	if f == nil {
		return true
	}
	return f.eval(resource, caseExact)
}

func (f *Filter) eval(obj map[string]any, caseExact func(string) bool) bool {
	switch f.op {
	case opInvalid:
		return false
	case opAnd:
		for _, t := range f.terms {
			if !t.eval(obj, caseExact) {
				return false
			}
		}
		return true
	case opOr:
		for _, t := range f.terms {
			if t.eval(obj, caseExact) {
				return true
			}
		}
		return false
	case opNot:
		return !f.terms[0].eval(obj, caseExact)
	}
	// For null a hit means "a non-null value exists", otherwise "an equal
	// value exists" for eq/ne and "the operator holds" for the rest.
	hit := f.anyValue(obj, caseExact)
	isNull := f.val.kind == valNull
	switch f.op {
	case opEq:
		return hit != isNull
	case opNe:
		return hit == isNull
	}
	return hit
}

// anyValue reports whether some value addressed by f.path passes f.test.
func (f *Filter) anyValue(obj map[string]any, caseExact func(string) bool) bool {
	base := obj
	if f.path.URN != "" && !isCoreURN(f.path.URN) {
		ext, _ := lookup(obj, f.path.URN)
		base, _ = ext.(map[string]any)
	}
	v, ok := lookup(base, f.path.Attr)
	if !ok {
		return false
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if f.element(e, caseExact) {
				return true
			}
		}
		return false
	}
	return f.element(v, caseExact)
}

// element applies the value filter and sub-attribute to one element of the
// (possibly single-valued) attribute.
func (f *Filter) element(e any, caseExact func(string) bool) bool {
	if f.path.Filter != nil {
		m, ok := e.(map[string]any)
		if !ok || !f.path.Filter.eval(m, caseExact) {
			return false
		}
	}
	if f.path.SubAttr == "" {
		return f.test(e, caseExact, true)
	}
	m, ok := e.(map[string]any)
	if !ok {
		return false
	}
	sv, ok := lookup(m, f.path.SubAttr)
	if !ok {
		return false
	}
	if arr, ok := sv.([]any); ok {
		for _, x := range arr {
			if f.test(x, caseExact, false) {
				return true
			}
		}
		return false
	}
	return f.test(sv, caseExact, false)
}

// test applies the operator to one leaf value. For eq/ne it tests equality
// (eval negates for ne); for null it tests "is not null".
func (f *Filter) test(x any, caseExact func(string) bool, complexViaValue bool) bool {
	switch f.op {
	case opExists:
		return true
	case opPr:
		return present(x)
	}
	if f.val.kind == valNull {
		return x != nil
	}
	path := f.lpath
	if m, ok := x.(map[string]any); ok && complexViaValue {
		x, _ = lookup(m, "value")
		path = f.lpathValue
	}
	switch f.val.kind {
	case valBool:
		b, ok := x.(bool)
		return ok && b == f.val.b
	case valNumber:
		n, ok := toNumber(x)
		return ok && f.holds(compareNumbers(n, f.val.num))
	case valString:
		s, ok := x.(string)
		return ok && f.testString(s, caseExact != nil && caseExact(path))
	}
	return false
}

func (f *Filter) testString(s string, exact bool) bool {
	lit := f.val.str
	if !exact {
		if f.op == opEq || f.op == opNe {
			return strings.EqualFold(s, lit)
		}
		s, lit = strings.ToLower(s), f.val.fold
	}
	switch f.op {
	case opCo:
		return strings.Contains(s, lit)
	case opSw:
		return strings.HasPrefix(s, lit)
	case opEw:
		return strings.HasSuffix(s, lit)
	}
	return f.holds(strings.Compare(s, lit))
}

// holds interprets a three-way comparison result for eq/ne (equality) and
// the ordering operators.
func (f *Filter) holds(c int) bool {
	switch f.op {
	case opEq, opNe:
		return c == 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	}
	return false
}

// present implements "pr": not null, not an empty string, not an empty
// array or object.
func present(x any) bool {
	switch v := x.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// lookup finds name case-insensitively. If several keys differ only in
// case, the exact one wins, else the smallest, so results never depend on
// map iteration order.
func lookup(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	var (
		best  string
		val   any
		found bool
	)
	for k, v := range m {
		if strings.EqualFold(k, name) && (!found || k < best) {
			best, val, found = k, v, true
		}
	}
	return val, found
}

func toNumber(x any) (number, bool) {
	switch v := x.(type) {
	case float64:
		return number{f: v}, true
	case float32:
		return number{f: float64(v)}, true
	case int:
		return number{f: float64(v), i: int64(v), isInt: true}, true
	case int64:
		return number{f: float64(v), i: v, isInt: true}, true
	case int32:
		return number{f: float64(v), i: int64(v), isInt: true}, true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return number{f: float64(i), i: i, isInt: true}, true
		}
		if fv, err := v.Float64(); err == nil {
			return number{f: fv}, true
		}
	}
	return number{}, false
}

func compareNumbers(a, b number) int {
	if a.isInt && b.isInt {
		return cmp.Compare(a.i, b.i)
	}
	return cmp.Compare(a.f, b.f)
}
