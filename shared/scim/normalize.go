package scim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// maxKeyBytes bounds values the store indexes or uses as keys (ids,
// userName, displayName, externalId). DynamoDB rejects key attributes over
// 2 KiB with a server error; refusing them here keeps every input a 4xx.
const maxKeyBytes = 1024

// keyOK reports whether s can be looked up in the store at all; anything
// else names nothing we could have stored.
func keyOK(s string) bool {
	return s != "" && len(s) <= maxKeyBytes && utf8.ValidString(s)
}

// Canonical resource form, used for storage, PATCH and rendering: a JSON
// object whose core attributes sit at the top level under their schema
// spelling, extension attributes under the extension URN, values already
// validated (booleans are bool, numbers json.Number), unassigned
// attributes (null, empty objects and arrays) absent, and "schemas" listing
// the core schema plus every extension present.

// normalize validates a POST/PUT body against the resource type. Unknown
// attributes and schema URNs are dropped, read-only attributes ignored
// (RFC 7644 §3.5.1), password discarded.
func (rt *resourceType) normalize(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for _, k := range sortedKeys(in) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		v := in[k]
		if ext := rt.extension(k); ext != nil {
			if v == nil {
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, badRequest(errInvalidValue, "%s must be an object", ext.ID)
			}
			for _, sk := range sortedKeys(obj) {
				if err := rt.normalizeInto(out, ext, sk, obj[sk]); err != nil {
					return nil, err
				}
			}
			continue
		}
		sch, name := rt.splitQualified(k)
		if sch == nil {
			continue // unknown schema URN
		}
		if err := rt.normalizeInto(out, sch, name, v); err != nil {
			return nil, err
		}
	}
	setSchemas(rt, out)
	return out, nil
}

// normalizeInto validates one attribute of sch and stores it in res.
func (rt *resourceType) normalizeInto(res map[string]any, sch *schema, name string, v any) error {
	if sch.freeForm {
		fv, err := normFree(name, v, sch.ID+":"+name)
		if err != nil {
			return err
		}
		setFree(extObject(res, sch.ID, fv != nil), name, fv)
		return nil
	}
	var a *attribute
	if sch == rt.Core {
		a = rt.coreAttr(name)
	} else {
		a = sch.find(name)
	}
	if a == nil || a.Mutability == mutReadOnly || a.Mutability == mutWriteOnly {
		return nil
	}
	nv, err := normValue(a, v, a.Name)
	if err != nil {
		return err
	}
	c := res
	if sch != rt.Core {
		c = extObject(res, sch.ID, nv != nil)
	}
	if c == nil {
		return nil
	}
	if nv == nil {
		delete(c, a.Name)
	} else {
		c[a.Name] = nv
	}
	return nil
}

// splitQualified resolves a possibly URN-qualified attribute name
// ("urn:…:enterprise:2.0:User:department") to its schema and bare name.
// An unknown URN yields a nil schema.
func (rt *resourceType) splitQualified(k string) (*schema, string) {
	if len(k) < 4 || !strings.EqualFold(k[:4], "urn:") {
		return rt.Core, k
	}
	for _, s := range append([]*schema{rt.Core}, rt.Extensions...) {
		if len(k) > len(s.ID)+1 && k[len(s.ID)] == ':' && strings.EqualFold(k[:len(s.ID)], s.ID) {
			return s, k[len(s.ID)+1:]
		}
	}
	return nil, ""
}

// extObject returns the extension object of res, creating it if asked.
func extObject(res map[string]any, urn string, create bool) map[string]any {
	m, _ := res[urn].(map[string]any)
	if m == nil && create {
		m = map[string]any{}
		res[urn] = m
	}
	return m
}

// setSchemas recomputes "schemas" and drops empty extension objects.
func setSchemas(rt *resourceType, res map[string]any) {
	schemas := []any{rt.Core.ID}
	for _, s := range rt.Extensions {
		if m, ok := res[s.ID].(map[string]any); ok && len(m) > 0 {
			schemas = append(schemas, s.ID)
		} else {
			delete(res, s.ID)
		}
	}
	res["schemas"] = schemas
}

// checkRequired enforces required core attributes and bounds the indexed
// ones.
func (rt *resourceType) checkRequired(res map[string]any) error {
	for _, a := range rt.Core.Attributes {
		if !a.Required {
			continue
		}
		s, _ := res[a.Name].(string)
		if strings.TrimSpace(s) == "" {
			return badRequest(errInvalidValue, "%s is required", a.Name)
		}
	}
	for _, k := range []string{"userName", "displayName", "externalId"} {
		if s, ok := res[k].(string); ok && len(s) > maxKeyBytes {
			return badRequest(errInvalidValue, "%s is longer than %d bytes", k, maxKeyBytes)
		}
	}
	return nil
}

// normValue validates v against a and returns its canonical form; nil
// means unassigned.
func normValue(a *attribute, v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if !a.MultiValued {
		return normSingle(a, v, path)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, badRequest(errInvalidValue, "%s must be an array", path)
	}
	out := make([]any, 0, len(arr))
	primaries := 0
	for i, e := range arr {
		ne, err := normSingle(a, e, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		if ne == nil {
			continue
		}
		if m, ok := ne.(map[string]any); ok && m["primary"] == true {
			primaries++
		}
		out = append(out, ne)
	}
	if primaries > 1 {
		return nil, badRequest(errInvalidValue, "%s: at most one value may be primary", path)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// normSingle validates one value of a (a single-valued attribute or one
// element of a multi-valued one).
func normSingle(a *attribute, v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case typeString, typeReference, typeBinary:
		s, ok := v.(string)
		if !ok {
			return nil, badRequest(errInvalidValue, "%s must be a string", path)
		}
		return s, nil
	case typeBoolean:
		b, ok := boolValue(v)
		if !ok {
			return nil, badRequest(errInvalidValue, "%s must be a boolean", path)
		}
		return b, nil
	case typeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, badRequest(errInvalidValue, "%s must be a dateTime string", path)
		}
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return nil, badRequest(errInvalidValue, "%s must be an xsd:dateTime (RFC 3339)", path)
		}
		return s, nil
	case typeInteger, typeDecimal:
		n, ok := v.(json.Number)
		if !ok {
			return nil, badRequest(errInvalidValue, "%s must be a number", path)
		}
		if a.Type == typeInteger {
			if _, err := n.Int64(); err != nil {
				return nil, badRequest(errInvalidValue, "%s must be an integer", path)
			}
		}
		return n, nil
	case typeComplex:
		m, ok := v.(map[string]any)
		if !ok {
			// A bare value for a single-valued complex attribute with a
			// "value" sub-attribute is its value: Entra sends the manager
			// as a plain id.
			if !a.MultiValued && a.hasValueSub() {
				m = map[string]any{"value": v}
			} else {
				return nil, badRequest(errInvalidValue, "%s must be an object", path)
			}
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			sa := a.sub(k)
			if sa == nil || sa.Mutability == mutReadOnly {
				continue
			}
			nv, err := normValue(sa, m[k], path+"."+sa.Name)
			if err != nil {
				return nil, err
			}
			if nv != nil {
				out[sa.Name] = nv
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	return nil, badRequest(errInvalidValue, "%s has an unsupported type", path)
}

// boolValue accepts JSON booleans and the strings Entra sends ("True",
// "false", ...).
func boolValue(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(b) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

// normFree validates a free-form (custom extension) attribute: a simple
// value or an array of simple values.
func normFree(name string, v any, path string) (any, error) {
	if !validAttrName(name) {
		return nil, badRequest(errInvalidValue, "%q is not a valid attribute name", name)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string, bool, json.Number:
		return x, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			switch e.(type) {
			case nil:
			case string, bool, json.Number:
				out = append(out, e)
			default:
				return nil, badRequest(errInvalidValue, "%s[%d] must be a string, number or boolean", path, i)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	return nil, badRequest(errInvalidValue, "%s must be a string, number or boolean (or an array of them)", path)
}

// setFree sets a free-form attribute, replacing an existing one whose name
// differs only in case (attribute names are case-insensitive).
func setFree(c map[string]any, name string, v any) {
	if c == nil {
		return
	}
	for k := range c {
		if strings.EqualFold(k, name) {
			delete(c, k)
		}
	}
	if v != nil {
		c[name] = v
	}
}

// validAttrName is RFC 7643 §2.1 ATTRNAME.
func validAttrName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
