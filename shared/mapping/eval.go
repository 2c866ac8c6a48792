package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/scim/filter"
	"github.com/learnerlink/learnerlink/shared/store"
)

const (
	refPrefix = "externalIdOf("
	// coreURNPrefix qualifies core attributes, which live at the top level.
	coreURNPrefix = "urn:ietf:params:scim:schemas:core:2.0:"
)

// expr is one parsed source expression.
type expr struct {
	lit     bool // literal ("=text")
	literal string
	ref     bool // externalIdOf(path)
	path    filter.Path
}

func parseExpr(s string) (expr, error) {
	switch {
	case s == "":
		return expr{}, errors.New("empty expression in a fallback chain")
	case strings.HasPrefix(s, "="):
		return expr{lit: true, literal: s[1:]}, nil
	case strings.HasPrefix(s, refPrefix):
		inner, ok := strings.CutSuffix(s[len(refPrefix):], ")")
		if !ok {
			return expr{}, fmt.Errorf("expression %q: externalIdOf( without closing )", s)
		}
		p, err := ParsePath(inner)
		if err != nil {
			return expr{}, fmt.Errorf("expression %q: %w", s, err)
		}
		return expr{ref: true, path: p}, nil
	}
	p, err := ParsePath(s)
	if err != nil {
		return expr{}, fmt.Errorf("expression %q: %w", s, err)
	}
	return expr{path: p}, nil
}

// ParsePath parses a SCIM attribute path that selects values, such as
// `emails[type eq "work"].value`. It is filter.ParsePath, plus a check that
// a value filter has a sub-attribute (a filter alone selects objects, which
// never map to a value).
func ParsePath(s string) (filter.Path, error) {
	p, err := filter.ParsePath(s)
	if err != nil {
		return filter.Path{}, fmt.Errorf("bad attribute path: %w", err)
	}
	if p.Filter != nil && p.SubAttr == "" {
		return filter.Path{}, fmt.Errorf("bad attribute path %q: a value filter needs a sub-attribute, e.g. emails[type eq \"work\"].value", s)
	}
	return p, nil
}

// Select returns the non-empty simple values that p selects in resource, in
// document order: strings as they are, booleans as "true"/"false", numbers
// in their JSON form. Names (and extension URNs) match case-insensitively. A
// sub-attribute "value" of a simple value is the value itself, as Entra
// sends manager as a plain id.
func Select(resource map[string]any, p filter.Path) []string {
	base := resource
	core := len(p.URN) > len(coreURNPrefix) && strings.EqualFold(p.URN[:len(coreURNPrefix)], coreURNPrefix)
	if p.URN != "" && !core {
		ext, _ := get(resource, p.URN).(map[string]any)
		if ext == nil {
			return nil
		}
		base = ext
	}
	var elems []any
	switch v := get(base, p.Attr).(type) {
	case nil:
		return nil
	case []any:
		elems = v
	default:
		elems = []any{v}
	}
	var out []string
	for _, e := range elems {
		m, isObj := e.(map[string]any)
		if p.Filter != nil && (!isObj || !p.Filter.Matches(m, nil)) {
			continue
		}
		if p.SubAttr != "" {
			switch {
			case isObj:
				e = get(m, p.SubAttr)
			case !strings.EqualFold(p.SubAttr, "value"):
				continue
			}
		}
		out = appendScalars(out, e)
	}
	return out
}

func appendScalars(out []string, v any) []string {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if _, nested := e.([]any); !nested {
				out = appendScalars(out, e)
			}
		}
	default:
		if s, ok := scalar(t); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

func scalar(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case bool:
		return strconv.FormatBool(t), true
	case json.Number:
		return t.String(), true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	}
	return "", false
}

// get reads an attribute, preferring the exact key, else a key equal under
// case folding (RFC 7643 §2.1); the smallest such key, so the result never
// depends on map order.
func get(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	var (
		best  string
		val   any
		found bool
	)
	for k, v := range m {
		if strings.EqualFold(k, key) && (!found || k < best) {
			best, val, found = k, v, true
		}
	}
	return val
}

func set(m map[string]any, key string, v any) {
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
	m[key] = v
}

// Resource decodes the identity's SCIM User for evaluation, with the
// store's own columns laid over it: id, userName, externalId (when set) and
// active (false for a deleted identity). Rules should be evaluated on this
// document too, so both see the same values.
func Resource(id *store.Identity) (map[string]any, error) {
	var doc map[string]any
	if len(id.Resource) > 0 {
		dec := json.NewDecoder(bytes.NewReader(id.Resource))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("mapping: identity %s: decode resource: %w", id.ID, err)
		}
	}
	if doc == nil {
		doc = map[string]any{}
	}
	set(doc, "id", id.ID)
	if id.UserName != "" {
		set(doc, "userName", id.UserName)
	}
	if id.ExternalID != "" {
		set(doc, "externalId", id.ExternalID)
	}
	set(doc, "active", id.Active && !id.Deleted)
	return doc, nil
}
