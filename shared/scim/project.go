package scim

import (
	"net/url"
	"strings"
)

// attrRef is one entry of attributes/excludedAttributes, lower-cased. urn
// is "" for core attributes; attr "" means the whole schema.
type attrRef struct{ urn, attr, sub string }

// projection is RFC 7644 §3.9 attributes / excludedAttributes.
type projection struct {
	include []attrRef // nil: default set
	exclude []attrRef
}

func parseProjection(rt *resourceType, q url.Values) projection {
	return projection{
		include: parseAttrRefs(rt, q.Get("attributes")),
		exclude: parseAttrRefs(rt, q.Get("excludedAttributes")),
	}
}

// parseAttrRefs parses a comma-separated list. Unknown URNs are skipped;
// unknown names simply match nothing.
func parseAttrRefs(rt *resourceType, s string) []attrRef {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	refs := []attrRef{}
	for _, item := range strings.Split(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		var ref attrRef
		rest := item
		if strings.HasPrefix(item, "urn:") {
			sch, name := rt.splitQualified(item)
			switch {
			case sch == nil:
				ext := rt.extension(item)
				if ext == nil && !strings.EqualFold(item, rt.Core.ID) {
					continue
				}
				if ext != nil {
					ref.urn = strings.ToLower(ext.ID)
				}
				refs = append(refs, ref)
				continue
			case sch != rt.Core:
				ref.urn = strings.ToLower(sch.ID)
			}
			rest = strings.ToLower(name)
		}
		ref.attr, ref.sub, _ = strings.Cut(rest, ".")
		refs = append(refs, ref)
	}
	return refs
}

// alwaysReturned are never projected away (RFC 7643 returned "always").
func alwaysReturned(key string) bool {
	switch strings.ToLower(key) {
	case "id", "schemas", "meta":
		return true
	}
	return false
}

// wants reports whether a core attribute would be returned at all, so the
// caller can skip loading groups or members.
func (p projection) wants(rt *resourceType, attr string) bool {
	a := strings.ToLower(attr)
	if p.include != nil {
		found := false
		for _, r := range p.include {
			if r.urn == "" && (r.attr == "" || r.attr == a) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, r := range p.exclude {
		if r.urn == "" && (r.attr == "" || r.attr == a) && r.sub == "" {
			return false
		}
	}
	return true
}

// apply projects a rendered resource in place and returns it.
func (p projection) apply(rt *resourceType, res map[string]any) map[string]any {
	if p.include == nil && p.exclude == nil {
		return res
	}
	for k, v := range res {
		if alwaysReturned(k) {
			continue
		}
		if ext := rt.extension(k); ext != nil {
			obj, _ := v.(map[string]any)
			urn := strings.ToLower(ext.ID)
			for ak, av := range obj {
				if nv, keep := p.project(urn, ak, av); keep {
					obj[ak] = nv
				} else {
					delete(obj, ak)
				}
			}
			if len(obj) == 0 {
				delete(res, k)
			}
			continue
		}
		if nv, keep := p.project("", k, v); keep {
			res[k] = nv
		} else {
			delete(res, k)
		}
	}
	return res
}

// project decides one attribute: kept whole, kept with some
// sub-attributes, or dropped.
func (p projection) project(urn, name string, v any) (any, bool) {
	a := strings.ToLower(name)
	if p.include != nil {
		var subs []string
		whole := false
		for _, r := range p.include {
			if r.urn != urn || (r.attr != "" && r.attr != a) {
				continue
			}
			if r.attr == "" || r.sub == "" {
				whole = true
			} else {
				subs = append(subs, r.sub)
			}
		}
		switch {
		case whole:
		case len(subs) == 0:
			return nil, false
		default:
			if v = keepSubs(v, subs, true); v == nil {
				return nil, false
			}
		}
	}
	var drop []string
	for _, r := range p.exclude {
		if r.urn != urn || (r.attr != "" && r.attr != a) {
			continue
		}
		if r.attr == "" || r.sub == "" {
			return nil, false
		}
		drop = append(drop, r.sub)
	}
	if len(drop) > 0 {
		if v = keepSubs(v, drop, false); v == nil {
			return nil, false
		}
	}
	return v, true
}

// keepSubs keeps (keep=true) or drops the named sub-attributes of a
// complex value or of each element of a multi-valued one; nil if nothing
// is left.
func keepSubs(v any, subs []string, keep bool) any {
	filterObj := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, x := range m {
			if containsFold(subs, k) == keep {
				out[k] = x
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		if m := filterObj(x); m != nil {
			return m
		}
		return nil
	case []any:
		var out []any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if fm := filterObj(m); fm != nil {
					out = append(out, fm)
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	if keep {
		return nil // a simple attribute has no sub-attributes to keep
	}
	return v
}
