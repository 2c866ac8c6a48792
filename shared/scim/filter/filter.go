// Package filter parses and evaluates SCIM 2.0 filters (RFC 7644 §3.4.2.2)
// and PATCH paths (RFC 7644 §3.5.2).
//
// Decision: this is a small hand-written recursive-descent parser, not
// github.com/scim2/filter-parser/v2 (v2.2.0, still in go.mod). Tested against
// the inputs this package must accept, that library
//   - rejects value filters with more than one and/or, with parentheses, or
//     with "or not (...)" (e.g. `emails[type eq "work" and value co "@x" and primary eq true]`)
//     and the Entra form `emails[type eq "work"].value eq "x"`;
//   - does not decode JSON string escapes (`"a \"q\""` keeps the backslashes)
//     and rejects lower-case \u escapes;
//   - silently wraps integers beyond int64 (12345678901234567890 became
//     -9223372036854775808);
//   - renders `a and (b or c)` as `a and b or c` (a different filter) and
//     `eq null` as `eq`, so String() does not round-trip;
//   - rejects '-' in schema URNs, has no nesting bound, and reports most errors
//     at position 1.
//
// Evaluation (Matches) had to be written here anyway, so owning the grammar
// too costs about as much as wrapping it and removes those defects.
//
// Leniency beyond the RFC ABNF: keywords, operators and true/false/null are
// case-insensitive; any run of spaces, tabs or newlines may separate tokens
// (including none where the tokens are unambiguous, e.g. `"x"and`); and an
// attribute expression may use a value path with a sub-attribute
// (`emails[type eq "work"].value eq "x"`), as Microsoft Entra sends.
package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// maxDepth bounds nesting of "(", "not (" and "[" so a hostile filter
// cannot exhaust the stack during parsing, rendering or evaluation.
const maxDepth = 64

// coreURNPrefix marks schema URNs whose attributes live at the top level of
// a resource rather than in an extension object.
const coreURNPrefix = "urn:ietf:params:scim:schemas:core:2.0:"

// Filter is a parsed RFC 7644 §3.4.2.2 filter.
type Filter struct {
	op    opKind
	terms []*Filter // operands: two or more for and/or, exactly one for not

	// Attribute expressions only.
	path       Path
	val        value
	lpath      string // lower-cased full path without URN, e.g. "emails.value", passed to caseExact
	lpathValue string // lpath + ".value": used when a complex value is compared through its "value" sub-attribute
}

type opKind uint8

const (
	opInvalid opKind = iota
	opAnd
	opOr
	opNot
	opExists // a bare value path, e.g. emails[type eq "work"]
	opPr
	opEq
	opNe
	opCo
	opSw
	opEw
	opGt
	opGe
	opLt
	opLe
)

func (o opKind) String() string {
	switch o {
	case opAnd:
		return "and"
	case opOr:
		return "or"
	case opNot:
		return "not"
	case opPr:
		return "pr"
	case opEq:
		return "eq"
	case opNe:
		return "ne"
	case opCo:
		return "co"
	case opSw:
		return "sw"
	case opEw:
		return "ew"
	case opGt:
		return "gt"
	case opGe:
		return "ge"
	case opLt:
		return "lt"
	case opLe:
		return "le"
	}
	return ""
}

// compareOp maps an operator keyword (any case) to its opKind.
func compareOp(w string) (opKind, bool) {
	if len(w) != 2 {
		return opInvalid, false
	}
	for o := opPr; o <= opLe; o++ {
		if strings.EqualFold(w, o.String()) {
			return o, true
		}
	}
	return opInvalid, false
}

type valKind uint8

const (
	valNone valKind = iota
	valNull
	valBool
	valNumber
	valString
)

// value is a compValue.
type value struct {
	kind valKind
	str  string // the decoded string, or the number literal as written
	fold string // lower-cased str, for case-insensitive string operators
	b    bool
	num  number
}

// number keeps an exact int64 when the literal is an integer that fits, so
// large ids compare exactly; everything else compares as float64.
type number struct {
	f     float64
	i     int64
	isInt bool
}

// Path is a parsed PATCH "path" (RFC 7644 §3.5.2): attrPath / valuePath [ "." subAttr ].
//
// Filter is evaluated against each element of the multi-valued Attr; the
// paths it passes to caseExact are prefixed with the lower-cased Attr (e.g.
// "emails.type").
type Path struct {
	URN     string  // schema URN if the path was URN-qualified, e.g. "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"; "" otherwise
	Attr    string  // top-level attribute as written, e.g. "emails", "name", "department", "members"
	Filter  *Filter // value filter inside [...] (evaluated against each element of the multi-valued Attr), nil if none
	SubAttr string  // e.g. "givenName", "value"; "" if none
}

// Error is a parse error with the offending input position.
//
// Pos is a 0-based byte offset into Input. Error() leaves Input out because
// filters carry user data (emails, names) that should not reach logs.
type Error struct {
	Input string
	Pos   int
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (at offset %d)", e.Msg, e.Pos)
}

// String renders the filter back (normalised), for logs and tests.
// Keywords are lower-cased, whitespace is single spaces, redundant
// parentheses are dropped and strings are JSON-encoded.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f *Filter) write(b *strings.Builder) {
	switch f.op {
	case opInvalid:
	case opAnd, opOr:
		for i, t := range f.terms {
			if i > 0 {
				b.WriteByte(' ')
				b.WriteString(f.op.String())
				b.WriteByte(' ')
			}
			// Only "or" binds looser than its parent; "and" inside "or" needs none.
			if f.op == opAnd && t.op == opOr {
				b.WriteByte('(')
				t.write(b)
				b.WriteByte(')')
			} else {
				t.write(b)
			}
		}
	case opNot:
		b.WriteString("not (")
		f.terms[0].write(b)
		b.WriteByte(')')
	case opExists:
		f.path.write(b)
	default:
		f.path.write(b)
		b.WriteByte(' ')
		b.WriteString(f.op.String())
		if f.op != opPr {
			b.WriteByte(' ')
			f.val.write(b)
		}
	}
}

func (v value) write(b *strings.Builder) {
	switch v.kind {
	case valNull:
		b.WriteString("null")
	case valBool:
		if v.b {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case valNumber:
		b.WriteString(v.str)
	case valString:
		// json.Encoder rather than json.Marshal: no \u0026-style HTML escaping in logs.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v.str) // a string always encodes; writes to a Buffer cannot fail
		b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
}

// String renders the path back in the form ParsePath accepts.
func (p Path) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p Path) write(b *strings.Builder) {
	if p.URN != "" {
		b.WriteString(p.URN)
		b.WriteByte(':')
	}
	b.WriteString(p.Attr)
	if p.Filter != nil {
		b.WriteByte('[')
		p.Filter.write(b)
		b.WriteByte(']')
	}
	if p.SubAttr != "" {
		b.WriteByte('.')
		b.WriteString(p.SubAttr)
	}
}

// Equality reports whether the filter is exactly `<attr> eq "<string>"` on a top-level attribute (attr returned lower-cased, URN stripped for core), so the server can answer it from an index (userName, externalId, displayName, id).
//
// Extension attributes (a non-core URN), sub-attributes and value paths
// report ok=false.
func (f *Filter) Equality() (attr, value string, ok bool) {
	if f == nil || f.op != opEq || f.val.kind != valString ||
		f.path.Filter != nil || f.path.SubAttr != "" ||
		(f.path.URN != "" && !isCoreURN(f.path.URN)) {
		return "", "", false
	}
	return f.lpath, f.val.str, true
}

func isCoreURN(urn string) bool {
	return len(urn) > len(coreURNPrefix) && strings.EqualFold(urn[:len(coreURNPrefix)], coreURNPrefix)
}
