package absorbsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The OData subset Absorb documents for _filter: eq ne gt ge lt le, and or
// not, parentheses; substringof, startswith, endswith, tolower, toupper;
// literals 'text' (a quote doubled inside), numbers, null, true/false,
// guid'…' and datetime'…'; nested fields as customFields/string1.
//
// Comparisons of text are case-insensitive: Absorb runs on SQL Server,
// whose default collation is, so `username eq 'JDoe'` matches "jdoe". That
// is an inference (no public statement either way), kept because it is the
// stricter case for a client's duplicate handling.

// errFilter marks a filter the sim cannot parse or evaluate; Absorb answers
// those with 422.
var errFilter = errors.New("invalid _filter")

// record is what a filter is evaluated against: the value of a field by
// its lower-cased name, ok false for an unknown field. Empty text is null.
type record func(field string) (any, bool)

// node is a parsed filter expression.
type node interface {
	eval(r record) (any, error)
}

type (
	binary struct {
		op   string
		l, r node
	}
	not     struct{ x node }
	field   struct{ name string }
	literal struct{ v any }
	call    struct {
		fn   string
		args []node
	}
)

func parseFilter(s string) (node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q", errFilter, p.toks[p.pos].text)
	}
	return n, nil
}

// matches evaluates n against r; only a boolean true matches.
func matches(n node, r record) (bool, error) {
	v, err := n.eval(r)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%w: expression is not a condition", errFilter)
	}
	return b, nil
}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string // identifier, or the unquoted string literal
	typ  string // for typed literals: "guid", "datetime"
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			out = append(out, token{kind: tLParen, text: "("})
			i++
		case c == ')':
			out = append(out, token{kind: tRParen, text: ")"})
			i++
		case c == ',':
			out = append(out, token{kind: tComma, text: ","})
			i++
		case c == '\'':
			lit, n, err := quoted(s[i:])
			if err != nil {
				return nil, err
			}
			out = append(out, token{kind: tString, text: lit})
			i += n
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tNumber, text: s[i:j]})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '/' || s[j] == '.') {
				j++
			}
			word := s[i:j]
			if j < len(s) && s[j] == '\'' { // typed literal: guid'…', datetime'…'
				typ := strings.ToLower(word)
				if typ != "guid" && typ != "datetime" {
					return nil, fmt.Errorf("%w: unknown literal type %q", errFilter, word)
				}
				lit, n, err := quoted(s[j:])
				if err != nil {
					return nil, err
				}
				out = append(out, token{kind: tString, text: lit, typ: typ})
				i = j + n
				continue
			}
			out = append(out, token{kind: tIdent, text: word})
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected character %q", errFilter, c)
		}
	}
	return out, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// quoted reads a '…' literal at the start of s, where ” is one quote; it
// returns the text and the bytes consumed.
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("%w: unterminated string", errFilter)
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peekWord(words ...string) (string, bool) {
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != tIdent {
		return "", false
	}
	w := strings.ToLower(p.toks[p.pos].text)
	for _, x := range words {
		if w == x {
			return w, true
		}
	}
	return "", false
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.peekWord("or"); !ok {
			return l, nil
		}
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = binary{op: "or", l: l, r: r}
	}
}

func (p *parser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.peekWord("and"); !ok {
			return l, nil
		}
		p.pos++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = binary{op: "and", l: l, r: r}
	}
}

func (p *parser) unary() (node, error) {
	if _, ok := p.peekWord("not"); ok {
		p.pos++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return not{x: x}, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (node, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	op, ok := p.peekWord("eq", "ne", "gt", "ge", "lt", "le")
	if !ok {
		return l, nil // a bare boolean function such as startswith(…)
	}
	p.pos++
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	return binary{op: op, l: l, r: r}, nil
}

var functions = map[string]int{"tolower": 1, "toupper": 1, "startswith": 2, "endswith": 2, "substringof": 2}

func (p *parser) operand() (node, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected end", errFilter)
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case tLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos].kind != tRParen {
			return nil, fmt.Errorf("%w: missing )", errFilter)
		}
		p.pos++
		return n, nil
	case tString:
		return literal{v: t.text}, nil
	case tNumber:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: bad number %q", errFilter, t.text)
		}
		return literal{v: f}, nil
	case tIdent:
		w := strings.ToLower(t.text)
		switch w {
		case "null":
			return literal{v: nil}, nil
		case "true", "false":
			return literal{v: w == "true"}, nil
		}
		if arity, ok := functions[w]; ok && p.pos < len(p.toks) && p.toks[p.pos].kind == tLParen {
			p.pos++
			var args []node
			for {
				a, err := p.or()
				if err != nil {
					return nil, err
				}
				args = append(args, a)
				if p.pos < len(p.toks) && p.toks[p.pos].kind == tComma {
					p.pos++
					continue
				}
				break
			}
			if p.pos >= len(p.toks) || p.toks[p.pos].kind != tRParen {
				return nil, fmt.Errorf("%w: missing ) after %s", errFilter, w)
			}
			p.pos++
			if len(args) != arity {
				return nil, fmt.Errorf("%w: %s takes %d arguments", errFilter, w, arity)
			}
			return call{fn: w, args: args}, nil
		}
		return field{name: w}, nil
	}
	return nil, fmt.Errorf("%w: unexpected %q", errFilter, t.text)
}

func (f field) eval(r record) (any, error) {
	v, ok := r(f.name)
	if !ok {
		return nil, fmt.Errorf("%w: field %q cannot be filtered", errFilter, f.name)
	}
	return v, nil
}

func (l literal) eval(record) (any, error) { return l.v, nil }

func (n not) eval(r record) (any, error) {
	v, err := n.x.eval(r)
	if err != nil {
		return nil, err
	}
	b, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("%w: not needs a condition", errFilter)
	}
	return !b, nil
}

func (b binary) eval(r record) (any, error) {
	lv, err := b.l.eval(r)
	if err != nil {
		return nil, err
	}
	rv, err := b.r.eval(r)
	if err != nil {
		return nil, err
	}
	switch b.op {
	case "and", "or":
		lb, ok1 := lv.(bool)
		rb, ok2 := rv.(bool)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: %s needs conditions", errFilter, b.op)
		}
		if b.op == "and" {
			return lb && rb, nil
		}
		return lb || rb, nil
	case "eq":
		return equal(lv, rv), nil
	case "ne":
		return !equal(lv, rv), nil
	}
	if lv == nil || rv == nil {
		return false, nil // ordering against null is never true
	}
	c, err := compare(lv, rv)
	if err != nil {
		return nil, err
	}
	switch b.op {
	case "gt":
		return c > 0, nil
	case "ge":
		return c >= 0, nil
	case "lt":
		return c < 0, nil
	default: // le
		return c <= 0, nil
	}
}

func equal(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if c, err := compare(a, b); err == nil {
		return c == 0
	}
	return false
}

func compare(a, b any) (int, error) {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1, nil
			case x > y:
				return 1, nil
			}
			return 0, nil
		}
	case bool:
		if y, ok := b.(bool); ok {
			if x == y {
				return 0, nil
			}
			if !x {
				return -1, nil
			}
			return 1, nil
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(strings.ToLower(x), strings.ToLower(y)), nil
		}
	}
	return 0, fmt.Errorf("%w: cannot compare %T with %T", errFilter, a, b)
}

func (c call) eval(r record) (any, error) {
	vals := make([]string, len(c.args))
	for i, a := range c.args {
		v, err := a.eval(r)
		if err != nil {
			return nil, err
		}
		switch s := v.(type) {
		case string:
			vals[i] = s
		case nil:
			if c.fn == "tolower" || c.fn == "toupper" {
				return nil, nil
			}
			return false, nil // a function over null is never true
		default:
			return nil, fmt.Errorf("%w: %s takes text", errFilter, c.fn)
		}
	}
	switch c.fn {
	case "tolower":
		return strings.ToLower(vals[0]), nil
	case "toupper":
		return strings.ToUpper(vals[0]), nil
	case "startswith":
		return strings.HasPrefix(strings.ToLower(vals[0]), strings.ToLower(vals[1])), nil
	case "endswith":
		return strings.HasSuffix(strings.ToLower(vals[0]), strings.ToLower(vals[1])), nil
	default: // substringof('needle', field)
		return strings.Contains(strings.ToLower(vals[1]), strings.ToLower(vals[0])), nil
	}
}
