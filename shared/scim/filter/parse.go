package filter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse parses a filter expression. Errors are *Error (wrapping nothing special); the SCIM layer maps them to 400 invalidFilter.
//
// Grammar (RFC 7644 §3.4.2.2), by precedence: or < and < not/grouping:
//
//	filter    = andExp *("or" andExp)
//	andExp    = term *("and" term)
//	term      = "(" filter ")" / "not" "(" filter ")" / attrExp / valuePath
//	attrExp   = path ("pr" / compareOp compValue)
//	path      = [URN ":"] attrName ["." subAttr] / valuePath ["." subAttr]
//	valuePath = [URN ":"] attrName "[" valFilter "]"
//
// valFilter is a filter whose paths are relative to one element: no URN and
// no nested "[".
func Parse(s string) (*Filter, error) {
	p := parser{in: s}
	if err := p.checkUTF8(); err != nil {
		return nil, err
	}
	f, err := p.parseOr(scope{})
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.in) {
		return nil, p.errorf(p.pos, "unexpected %s, expected \"and\", \"or\" or end of filter", p.describe(p.pos))
	}
	return f, nil
}

// ParsePath parses a PATCH path. Errors are *Error; the SCIM layer maps them to 400 invalidPath.
func ParsePath(s string) (Path, error) {
	p := parser{in: s}
	if err := p.checkUTF8(); err != nil {
		return Path{}, err
	}
	p.skipSpace()
	if p.pos == len(p.in) {
		return Path{}, p.errorf(p.pos, "empty path")
	}
	path, err := p.parsePath(scope{})
	if err != nil {
		return Path{}, err
	}
	p.skipSpace()
	if p.pos < len(p.in) {
		return Path{}, p.errorf(p.pos, "unexpected %s after path", p.describe(p.pos))
	}
	return path, nil
}

type parser struct {
	in    string
	pos   int
	depth int
}

// scope says where a (sub)filter is being parsed.
type scope struct {
	inValue bool   // inside attr[...]: paths are relative to one element
	prefix  string // lower-cased "attr." prepended to caseExact paths inside attr[...]
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &Error{Input: p.in, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// describe names the input at pos for error messages without echoing
// user data beyond one character.
func (p *parser) describe(pos int) string {
	if pos >= len(p.in) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.in[pos:])
	return strconv.QuoteRune(r)
}

func (p *parser) checkUTF8() error {
	if utf8.ValidString(p.in) {
		return nil
	}
	for i := 0; i < len(p.in); {
		r, n := utf8.DecodeRuneInString(p.in[i:])
		if r == utf8.RuneError && n == 1 {
			return p.errorf(i, "invalid UTF-8")
		}
		i += n
	}
	return p.errorf(0, "invalid UTF-8") // unreachable: ValidString said otherwise
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isWordChar covers attribute paths (URN, name, sub-attribute) and keywords.
func isWordChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '$'
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && isSpace(p.in[p.pos]) {
		p.pos++
	}
}

func (p *parser) skipSpaceFrom(i int) int {
	for i < len(p.in) && isSpace(p.in[i]) {
		i++
	}
	return i
}

// word returns the run of word characters starting at i.
func (p *parser) word(i int) string {
	j := i
	for j < len(p.in) && isWordChar(p.in[j]) {
		j++
	}
	return p.in[i:j]
}

// keyword consumes optional space and kw (any case) if present; otherwise it
// consumes nothing.
func (p *parser) keyword(kw string) bool {
	i := p.skipSpaceFrom(p.pos)
	if w := p.word(i); strings.EqualFold(w, kw) {
		p.pos = i + len(w)
		return true
	}
	return false
}

func (p *parser) enter(pos int) error {
	if p.depth >= maxDepth {
		return p.errorf(pos, "filter nested deeper than %d levels", maxDepth)
	}
	p.depth++
	return nil
}

func (p *parser) expect(c byte) error {
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == c {
		p.pos++
		return nil
	}
	return p.errorf(p.pos, "expected %q, got %s", c, p.describe(p.pos))
}

// parseOr and parseAnd build n-ary nodes in a loop, so long flat chains do
// not deepen the tree; a parenthesised operand of the same operator is
// flattened in, which String() relies on to stay parse-stable.
func (p *parser) parseOr(sc scope) (*Filter, error) {
	return p.parseChain(sc, opOr, p.parseAnd)
}

func (p *parser) parseAnd(sc scope) (*Filter, error) {
	return p.parseChain(sc, opAnd, p.parseTerm)
}

func (p *parser) parseChain(sc scope, op opKind, operand func(scope) (*Filter, error)) (*Filter, error) {
	first, err := operand(sc)
	if err != nil {
		return nil, err
	}
	var terms []*Filter
	for p.keyword(op.String()) {
		next, err := operand(sc)
		if err != nil {
			return nil, err
		}
		if terms == nil {
			terms = appendFlat(terms, first, op)
		}
		terms = appendFlat(terms, next, op)
	}
	if terms == nil {
		return first, nil
	}
	return &Filter{op: op, terms: terms}, nil
}

func appendFlat(terms []*Filter, t *Filter, op opKind) []*Filter {
	if t.op == op {
		return append(terms, t.terms...)
	}
	return append(terms, t)
}

func (p *parser) parseTerm(sc scope) (*Filter, error) {
	p.skipSpace()
	if p.pos >= len(p.in) {
		return nil, p.errorf(p.pos, "unexpected end of input, expected an attribute path, \"(\" or \"not\"")
	}
	if p.in[p.pos] == '(' {
		return p.parseGroup(sc)
	}
	// "not" is the operator only when "(" follows; otherwise it is an
	// attribute that happens to be called "not".
	if w := p.word(p.pos); strings.EqualFold(w, "not") {
		if i := p.skipSpaceFrom(p.pos + len(w)); i < len(p.in) && p.in[i] == '(' {
			p.pos = i
			inner, err := p.parseGroup(sc)
			if err != nil {
				return nil, err
			}
			return &Filter{op: opNot, terms: []*Filter{inner}}, nil
		}
	}
	return p.parseAttrExp(sc)
}

// parseGroup parses "(" filter ")" with p.pos at "(".
func (p *parser) parseGroup(sc scope) (*Filter, error) {
	if err := p.enter(p.pos); err != nil {
		return nil, err
	}
	p.pos++
	f, err := p.parseOr(sc)
	if err != nil {
		return nil, err
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	p.depth--
	return f, nil
}

func (p *parser) parseAttrExp(sc scope) (*Filter, error) {
	path, err := p.parsePath(sc)
	if err != nil {
		return nil, err
	}
	f := &Filter{path: path, lpath: sc.prefix + strings.ToLower(path.Attr)}
	if path.SubAttr != "" {
		f.lpath += "." + strings.ToLower(path.SubAttr)
	}
	f.lpathValue = f.lpath + ".value"

	afterPath := p.pos
	opPos := p.skipSpaceFrom(p.pos)
	w := p.word(opPos)
	op, ok := compareOp(w)
	if !ok {
		if path.Filter != nil && path.SubAttr == "" {
			p.pos = afterPath
			f.op = opExists
			return f, nil
		}
		return nil, p.errorf(opPos, "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr), got %s", p.describe(opPos))
	}
	p.pos = opPos + len(w)
	f.op = op
	if op == opPr {
		return f, nil
	}

	p.skipSpace()
	valPos := p.pos
	v, err := p.parseValue()
	if err != nil {
		return nil, err
	}
	switch op {
	case opCo, opSw, opEw:
		if v.kind != valString {
			return nil, p.errorf(valPos, "operator %s needs a string value", op)
		}
	case opGt, opGe, opLt, opLe:
		if v.kind != valString && v.kind != valNumber {
			return nil, p.errorf(valPos, "operator %s needs a string or number value", op)
		}
	}
	f.val = v
	return f, nil
}

// parsePath parses [URN ":"] attrName ["." subAttr] or
// [URN ":"] attrName "[" valFilter "]" ["." subAttr].
func (p *parser) parsePath(sc scope) (Path, error) {
	start := p.pos
	w := p.word(start)
	if w == "" {
		return Path{}, p.errorf(start, "expected an attribute path, got %s", p.describe(start))
	}
	p.pos += len(w)

	var path Path
	name, nameAt := w, start
	// Attribute names cannot contain ':', so the last one ends the URN
	// (which itself has colons and dots, e.g. "...:enterprise:2.0:User").
	if i := strings.LastIndexByte(w, ':'); i >= 0 {
		if sc.inValue {
			return Path{}, p.errorf(start, "schema URN not allowed inside a value filter")
		}
		if err := p.checkURN(w[:i], start); err != nil {
			return Path{}, err
		}
		path.URN = w[:i]
		name, nameAt = w[i+1:], start+i+1
	}
	attr, sub, hasSub := strings.Cut(name, ".")
	if !validName(attr) {
		return Path{}, p.errorf(nameAt, "invalid attribute name")
	}
	if hasSub && !validName(sub) {
		return Path{}, p.errorf(nameAt+len(attr)+1, "invalid sub-attribute name")
	}
	path.Attr, path.SubAttr = attr, sub

	i := p.skipSpaceFrom(p.pos)
	if i >= len(p.in) || p.in[i] != '[' {
		return path, nil
	}
	switch {
	case sc.inValue:
		return Path{}, p.errorf(i, "nested value filters are not allowed")
	case hasSub:
		return Path{}, p.errorf(i, "a value filter must follow the attribute, not a sub-attribute")
	}
	if err := p.enter(i); err != nil {
		return Path{}, err
	}
	p.pos = i + 1
	inner, err := p.parseOr(scope{inValue: true, prefix: strings.ToLower(attr) + "."})
	if err != nil {
		return Path{}, err
	}
	if err := p.expect(']'); err != nil {
		return Path{}, err
	}
	p.depth--
	path.Filter = inner

	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		sub := p.word(p.pos)
		if !validName(sub) {
			return Path{}, p.errorf(p.pos, "invalid sub-attribute name")
		}
		p.pos += len(sub)
		path.SubAttr = sub
	}
	return path, nil
}

// validName checks ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_"), allowing
// a leading "$" for "$ref" (RFC 7643 §2.1).
func validName(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// checkURN accepts "urn:" followed by non-empty colon-separated segments of
// letters, digits, '-', '.', '_': enough for SCIM schema URNs, strict enough
// that typos like "userName:x" fail loudly.
func (p *parser) checkURN(urn string, at int) error {
	if len(urn) < 4 || !strings.EqualFold(urn[:4], "urn:") {
		return p.errorf(at, "schema URN must start with \"urn:\"")
	}
	segStart := true
	for i := 0; i < len(urn); i++ {
		c := urn[i]
		switch {
		case c == ':':
			if segStart {
				return p.errorf(at+i, "empty segment in schema URN")
			}
			segStart = true
		case c == '$':
			return p.errorf(at+i, "invalid character in schema URN")
		default:
			segStart = false
		}
	}
	if segStart {
		return p.errorf(at+len(urn), "empty segment in schema URN")
	}
	return nil
}

func (p *parser) parseValue() (value, error) {
	start := p.pos
	if start >= len(p.in) {
		return value{}, p.errorf(start, "unexpected end of input, expected a value")
	}
	switch c := p.in[start]; {
	case c == '"':
		return p.parseString()
	case c == '-' || isDigit(c):
		return p.parseNumber()
	}
	w := p.word(start)
	var v value
	switch {
	case strings.EqualFold(w, "true"):
		v = value{kind: valBool, b: true}
	case strings.EqualFold(w, "false"):
		v = value{kind: valBool}
	case strings.EqualFold(w, "null"):
		v = value{kind: valNull}
	default:
		return value{}, p.errorf(start, "expected a value (string, number, true, false or null), got %s", p.describe(start))
	}
	p.pos += len(w)
	return v, nil
}

// parseString parses a JSON string literal with p.pos at the opening quote.
func (p *parser) parseString() (value, error) {
	start := p.pos
	i, escaped := start+1, false
	for ; i < len(p.in) && p.in[i] != '"'; i++ {
		switch c := p.in[i]; {
		case c == '\\':
			escaped = true
			i++ // skip the escaped byte; encoding/json validates the escape below
		case c < 0x20:
			return value{}, p.errorf(i, "control character in string")
		}
	}
	if i >= len(p.in) {
		return value{}, p.errorf(start, "unterminated string")
	}
	raw := p.in[start : i+1]
	s := raw[1 : len(raw)-1]
	if escaped {
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return value{}, p.errorf(start, "invalid escape in string")
		}
	}
	p.pos = i + 1
	return value{kind: valString, str: s, fold: strings.ToLower(s)}, nil
}

// parseNumber parses a JSON number (RFC 8259 §6) with p.pos at its start.
func (p *parser) parseNumber() (value, error) {
	start, i := p.pos, p.pos
	digits := func() bool {
		j := i
		for i < len(p.in) && isDigit(p.in[i]) {
			i++
		}
		return i > j
	}
	if p.in[i] == '-' {
		i++
	}
	switch {
	case i < len(p.in) && p.in[i] == '0':
		i++
	case !digits():
		return value{}, p.errorf(start, "invalid number")
	}
	isInt := true
	if i < len(p.in) && p.in[i] == '.' {
		i++
		isInt = false
		if !digits() {
			return value{}, p.errorf(start, "invalid number")
		}
	}
	if i < len(p.in) && (p.in[i] == 'e' || p.in[i] == 'E') {
		i++
		isInt = false
		if i < len(p.in) && (p.in[i] == '+' || p.in[i] == '-') {
			i++
		}
		if !digits() {
			return value{}, p.errorf(start, "invalid number")
		}
	}
	if i < len(p.in) && !isSpace(p.in[i]) && p.in[i] != ')' && p.in[i] != ']' {
		return value{}, p.errorf(start, "invalid number")
	}
	text := p.in[start:i]
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return value{}, p.errorf(start, "number out of range")
	}
	n := number{f: f}
	if isInt {
		if iv, err := strconv.ParseInt(text, 10, 64); err == nil {
			n.i, n.isInt = iv, true
		}
	}
	p.pos = i
	return value{kind: valNumber, str: text, num: n}, nil
}
