package scim

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/scim/filter"
)

// patchOp is one validated RFC 7644 §3.5.2 operation.
type patchOp struct {
	op       string // "add", "remove" or "replace"
	path     string // "" when omitted
	value    any
	hasValue bool
}

// parsePatch validates a PatchOp request body.
func parsePatch(body map[string]any) ([]patchOp, error) {
	if err := requireSchema(body, urnPatchOp); err != nil {
		return nil, err
	}
	raw, _ := lookupFold(body, "Operations")
	ops, ok := raw.([]any)
	if !ok || len(ops) == 0 {
		return nil, badRequest(errInvalidSyntax, "Operations must be a non-empty array")
	}
	out := make([]patchOp, 0, len(ops))
	for i, r := range ops {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, badRequest(errInvalidSyntax, "Operations[%d] must be an object", i)
		}
		opv, _ := lookupFold(m, "op")
		name, _ := opv.(string)
		o := patchOp{op: strings.ToLower(name)}
		switch o.op {
		case "add", "remove", "replace":
		default:
			return nil, badRequest(errInvalidSyntax, "Operations[%d].op must be add, remove or replace", i)
		}
		if p, ok := lookupFold(m, "path"); ok && p != nil {
			s, ok := p.(string)
			if !ok {
				return nil, badRequest(errInvalidPath, "Operations[%d].path must be a string", i)
			}
			o.path = strings.TrimSpace(s)
		}
		o.value, o.hasValue = lookupFold(m, "value")
		if o.op != "remove" && !o.hasValue {
			return nil, badRequest(errInvalidValue, "Operations[%d] (%s) needs a value", i, o.op)
		}
		out = append(out, o)
	}
	return out, nil
}

// patcher applies operations to a copy of a canonical resource. Nothing
// reaches the store until every operation succeeded.
type patcher struct {
	rt  *resourceType
	res map[string]any
	id  string
	// members handles Group.members, which live in the store's membership
	// index rather than in the resource; nil for Users.
	members *memberSet
}

// target is a resolved PATCH path.
type target struct {
	sch    *schema
	attr   *attribute // nil: the whole extension object, or a free-form attribute (name)
	name   string     // free-form (custom extension) attribute
	filter *filter.Filter
	sub    *attribute
	ignore bool // unknown attribute or schema: dropped, as in request bodies
}

func (p *patcher) apply(o patchOp) error {
	if o.path != "" {
		t, err := p.resolve(o.path)
		if err != nil {
			return err
		}
		return p.applyTarget(o.op, t, o.value, o.hasValue)
	}
	if o.op == "remove" {
		return badRequest(errNoTarget, "remove needs a path")
	}
	obj, ok := o.value.(map[string]any)
	if !ok {
		return badRequest(errInvalidValue, "%s without a path needs an object value", o.op)
	}
	for _, k := range sortedKeys(obj) {
		if err := p.applyKey(o.op, k, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// applyKey applies one member of a path-less value. Keys may be attribute
// names, URN-qualified names, sub-attribute paths ("name.givenName", as
// Entra sends) or extension URNs whose value is an object.
func (p *patcher) applyKey(op, k string, v any) error {
	switch {
	case strings.EqualFold(k, "schemas"):
		return nil
	case strings.EqualFold(k, "id"):
		// Okta echoes the id in a group rename; only a change is an error.
		if s, ok := v.(string); ok && s == p.id {
			return nil
		}
		return badRequest(errMutability, "id is readOnly and cannot be changed")
	}
	t, err := p.resolve(k)
	if err != nil {
		return nil // not an attribute name at all: dropped like any unknown attribute
	}
	return p.applyTarget(op, t, v, true)
}

// resolve maps a path to the attribute it names.
func (p *patcher) resolve(s string) (target, error) {
	if ext := p.rt.extension(s); ext != nil {
		return target{sch: ext}, nil
	}
	fp, err := filter.ParsePath(s)
	if err != nil {
		return target{}, badRequest(errInvalidPath, "path %q is invalid: %v", s, err)
	}
	sch := p.rt.Core
	if fp.URN != "" {
		if sch = p.rt.schemaByURN(fp.URN); sch == nil {
			// "urn:…:enterprise:2.0:User" parses as URN "…:2.0" + attribute "User".
			switch whole := p.rt.schemaByURN(fp.URN + ":" + fp.Attr); {
			case whole == p.rt.Core:
				return target{}, badRequest(errInvalidPath, "path %q names no attribute", s)
			case whole != nil && fp.Filter == nil && fp.SubAttr == "":
				return target{sch: whole}, nil
			}
			return target{ignore: true}, nil
		}
	}
	if fp.Attr == "" {
		if sch == p.rt.Core {
			return target{}, badRequest(errInvalidPath, "path %q names no attribute", s)
		}
		return target{sch: sch}, nil
	}
	if sch.freeForm {
		if fp.Filter != nil || fp.SubAttr != "" || !validAttrName(fp.Attr) {
			return target{}, badRequest(errInvalidPath, "path %q: %s attributes are simple values", s, sch.ID)
		}
		return target{sch: sch, name: fp.Attr}, nil
	}
	var a *attribute
	if sch == p.rt.Core {
		a = p.rt.coreAttr(fp.Attr)
	} else {
		a = sch.find(fp.Attr)
	}
	if a == nil {
		return target{ignore: true}, nil
	}
	t := target{sch: sch, attr: a, filter: fp.Filter}
	if fp.Filter != nil && !a.MultiValued {
		return target{}, badRequest(errInvalidPath, "path %q: %s is not multi-valued", s, a.Name)
	}
	if fp.SubAttr != "" {
		if a.Type != typeComplex {
			return target{}, badRequest(errInvalidPath, "path %q: %s has no sub-attributes", s, a.Name)
		}
		if t.sub = a.sub(fp.SubAttr); t.sub == nil {
			return target{ignore: true}, nil
		}
	}
	return t, nil
}

func (p *patcher) applyTarget(op string, t target, v any, hasValue bool) error {
	if t.ignore {
		return nil
	}
	if t.attr != nil {
		if t.attr.Mutability == mutReadOnly || (t.sub != nil && t.sub.Mutability == mutReadOnly) {
			return badRequest(errMutability, "%s is readOnly", t.attr.Name)
		}
		if t.attr.Mutability == mutWriteOnly {
			return nil // password: accepted, never stored
		}
		if p.members != nil && t.attr.Name == "members" {
			return p.members.apply(op, t, v, hasValue)
		}
	}
	switch {
	case t.attr == nil && t.name == "":
		return p.applyExtension(op, t, v)
	case t.attr == nil:
		if op == "remove" {
			setFree(p.container(t, false), t.name, nil)
			return nil
		}
		fv, err := normFree(t.name, v, t.sch.ID+":"+t.name)
		if err != nil {
			return err
		}
		setFree(p.container(t, fv != nil), t.name, fv)
		return nil
	case t.attr.MultiValued:
		return p.applyMulti(op, t, v, hasValue)
	case t.attr.Type == typeComplex:
		return p.applyComplex(op, t, v)
	}
	c := p.container(t, op != "remove")
	if op == "remove" {
		if c != nil {
			delete(c, t.attr.Name)
		}
		return nil
	}
	nv, err := normValue(t.attr, v, t.attr.Name)
	if err != nil {
		return err
	}
	setOrDelete(c, t.attr.Name, nv)
	return nil
}

// container is the object holding t's attribute: the resource for core
// attributes, the extension object otherwise.
func (p *patcher) container(t target, create bool) map[string]any {
	if t.sch == p.rt.Core {
		return p.res
	}
	return extObject(p.res, t.sch.ID, create)
}

// applyExtension handles a path naming a whole extension: its value's
// members are applied one by one, so unnamed attributes stay unchanged.
func (p *patcher) applyExtension(op string, t target, v any) error {
	if op == "remove" {
		delete(p.res, t.sch.ID)
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			delete(p.res, t.sch.ID)
			return nil
		}
		return badRequest(errInvalidValue, "%s must be an object", t.sch.ID)
	}
	for _, k := range sortedKeys(obj) {
		st := target{sch: t.sch}
		if t.sch.freeForm {
			st.name = k
		} else if st.attr = t.sch.find(k); st.attr == nil {
			continue
		}
		if err := p.applyTarget(op, st, obj[k], true); err != nil {
			return err
		}
	}
	return nil
}

// applyComplex handles a single-valued complex attribute (name, manager).
// add and replace both merge: sub-attributes not named stay unchanged
// (RFC 7644 §3.5.2.3).
func (p *patcher) applyComplex(op string, t target, v any) error {
	a := t.attr
	c := p.container(t, op != "remove")
	if c == nil {
		return nil
	}
	if op == "remove" {
		if t.sub == nil {
			delete(c, a.Name)
		} else if m, ok := c[a.Name].(map[string]any); ok {
			delete(m, t.sub.Name)
			if len(m) == 0 {
				delete(c, a.Name)
			}
		}
		return nil
	}
	m, _ := c[a.Name].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	if t.sub != nil {
		nv, err := normValue(t.sub, v, a.Name+"."+t.sub.Name)
		if err != nil {
			return err
		}
		setOrDelete(m, t.sub.Name, nv)
	} else if v == nil {
		m = nil
	} else if err := mergeComplex(m, a, v, a.Name); err != nil {
		return err
	}
	if len(m) == 0 {
		delete(c, a.Name)
	} else {
		c[a.Name] = m
	}
	return nil
}

// mergeComplex sets the sub-attributes named in raw on dst; null unsets.
func mergeComplex(dst map[string]any, a *attribute, raw any, path string) error {
	obj, ok := raw.(map[string]any)
	if !ok {
		if a.MultiValued || !a.hasValueSub() {
			return badRequest(errInvalidValue, "%s must be an object", path)
		}
		obj = map[string]any{"value": raw} // Entra: manager as a bare id
	}
	for _, k := range sortedKeys(obj) {
		sa := a.sub(k)
		if sa == nil || sa.Mutability == mutReadOnly {
			continue
		}
		nv, err := normValue(sa, obj[k], path+"."+sa.Name)
		if err != nil {
			return err
		}
		setOrDelete(dst, sa.Name, nv)
	}
	return nil
}

// applyMulti handles multi-valued attributes, with or without a value
// filter and sub-attribute.
func (p *patcher) applyMulti(op string, t target, v any, hasValue bool) error {
	a := t.attr
	c := p.container(t, op != "remove")
	if c == nil {
		return nil
	}
	arr, _ := c[a.Name].([]any)
	arr = append([]any(nil), arr...)
	var touched []int
	switch {
	case t.filter != nil:
		var matched []int
		for i, e := range arr {
			if m, ok := e.(map[string]any); ok && t.filter.Matches(m, p.rt.caseExact) {
				matched = append(matched, i)
			}
		}
		if op == "remove" {
			arr = removeMatched(arr, t.sub, matched)
			break
		}
		if len(matched) == 0 {
			// Entra sets emails[type eq "work"].value on a user without a
			// work email and expects one to be created.
			e, ok := elementFromFilter(a, t.filter)
			if !ok {
				return badRequest(errNoTarget, "no %s value matches the filter", a.Name)
			}
			arr = append(arr, e)
			matched = []int{len(arr) - 1}
		}
		for _, i := range matched {
			e := maps.Clone(arr[i].(map[string]any))
			if t.sub != nil {
				nv, err := normValue(t.sub, v, a.Name+"."+t.sub.Name)
				if err != nil {
					return err
				}
				setOrDelete(e, t.sub.Name, nv)
			} else if err := mergeComplex(e, a, v, a.Name); err != nil {
				return err
			}
			arr[i] = e
		}
		touched = matched
	case t.sub != nil:
		if op != "remove" && len(arr) == 0 {
			return badRequest(errNoTarget, "%s has no values", a.Name)
		}
		all := make([]int, len(arr))
		for i := range arr {
			all[i] = i
		}
		if op == "remove" {
			arr = removeMatched(arr, t.sub, all)
			break
		}
		nv, err := normValue(t.sub, v, a.Name+"."+t.sub.Name)
		if err != nil {
			return err
		}
		for i := range arr {
			if e, ok := arr[i].(map[string]any); ok {
				e = maps.Clone(e)
				setOrDelete(e, t.sub.Name, nv)
				arr[i] = e
			}
		}
		touched = all
	case op == "remove":
		if !hasValue || v == nil {
			arr = nil
			break
		}
		items, err := elements(a, v)
		if err != nil {
			return err
		}
		arr = slices.DeleteFunc(arr, func(e any) bool {
			for _, it := range items {
				if sameElement(a, e, it) {
					return true
				}
			}
			return false
		})
	default:
		items, err := elements(a, v)
		if err != nil {
			return err
		}
		if op == "replace" {
			arr = nil
		}
		for _, it := range items {
			if !slices.ContainsFunc(arr, func(e any) bool { return reflect.DeepEqual(e, it) }) {
				arr = append(arr, it)
				touched = append(touched, len(arr)-1)
			}
		}
	}
	demotePrimaries(arr, touched)
	arr = dropEmpty(arr, a)
	if len(arr) == 0 {
		delete(c, a.Name)
	} else {
		c[a.Name] = arr
	}
	return nil
}

// removeMatched removes the matched elements, or only their sub-attribute
// when sub is set.
func removeMatched(arr []any, sub *attribute, matched []int) []any {
	gone := make(map[int]bool, len(matched))
	for _, i := range matched {
		gone[i] = true
	}
	out := arr[:0:0]
	for i, e := range arr {
		if !gone[i] {
			out = append(out, e)
			continue
		}
		m, ok := e.(map[string]any)
		if sub == nil || !ok {
			continue
		}
		m = maps.Clone(m)
		delete(m, sub.Name)
		out = append(out, m)
	}
	return out
}

// dropEmpty removes elements left empty, or without a value where the
// attribute's elements are identified by one (an email without an address
// means nothing).
func dropEmpty(arr []any, a *attribute) []any {
	valued := a.hasValueSub()
	return slices.DeleteFunc(arr, func(e any) bool {
		m, ok := e.(map[string]any)
		if !ok || len(m) == 0 {
			return true
		}
		_, hasVal := m["value"]
		return valued && !hasVal
	})
}

// elements normalises a PATCH value for a multi-valued attribute: an array
// or a single element.
func elements(a *attribute, v any) ([]any, error) {
	if _, ok := v.([]any); !ok {
		v = []any{v}
	}
	nv, err := normValue(a, v, a.Name)
	if err != nil || nv == nil {
		return nil, err
	}
	return nv.([]any), nil
}

// sameElement decides whether a remove value names element e: by "value"
// where elements have one, else by equality.
func sameElement(a *attribute, e, item any) bool {
	em, ok1 := e.(map[string]any)
	im, ok2 := item.(map[string]any)
	if ok1 && ok2 {
		if iv, ok := im["value"].(string); ok {
			ev, _ := em["value"].(string)
			if sa := a.sub("value"); sa != nil && !sa.CaseExact {
				return strings.EqualFold(ev, iv)
			}
			return ev == iv
		}
	}
	return reflect.DeepEqual(e, item)
}

// elementFromFilter builds the element an `attr eq "literal"` value filter
// describes, for a replace that matched nothing.
func elementFromFilter(a *attribute, f *filter.Filter) (map[string]any, bool) {
	name, val, ok := f.Equality()
	if !ok {
		return nil, false
	}
	name = strings.TrimPrefix(name, strings.ToLower(a.Name)+".")
	sa := a.sub(name)
	if sa == nil || sa.Mutability == mutReadOnly {
		return nil, false
	}
	nv, err := normSingle(sa, val, a.Name+"."+sa.Name)
	if err != nil || nv == nil {
		return nil, false
	}
	return map[string]any{sa.Name: nv}, true
}

// demotePrimaries keeps at most one primary value: a touched element that
// is primary wins (RFC 7644 §3.5.2: setting primary clears the others).
func demotePrimaries(arr []any, touched []int) {
	winner := -1
	for _, i := range touched {
		if m, ok := arr[i].(map[string]any); ok && m["primary"] == true {
			winner = i
		}
	}
	if winner < 0 {
		return
	}
	for i, e := range arr {
		if m, ok := e.(map[string]any); ok && i != winner && m["primary"] == true {
			m = maps.Clone(m)
			m["primary"] = false
			arr[i] = m
		}
	}
}

func setOrDelete(m map[string]any, k string, v any) {
	if v == nil {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// lookupFold finds a JSON member case-insensitively (attribute names and
// message fields are case-insensitive, RFC 7643 §2.1), preferring an exact
// match.
func lookupFold(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, name) {
			return m[k], true
		}
	}
	return nil, false
}

// requireSchema checks that "schemas" lists urn.
func requireSchema(body map[string]any, urn string) error {
	raw, _ := lookupFold(body, "schemas")
	list, ok := raw.([]any)
	if !ok {
		return badRequest(errInvalidSyntax, "schemas must be an array including %s", urn)
	}
	for _, s := range list {
		if str, ok := s.(string); ok && strings.EqualFold(str, urn) {
			return nil
		}
	}
	return badRequest(errInvalidSyntax, "schemas must include %s", urn)
}
