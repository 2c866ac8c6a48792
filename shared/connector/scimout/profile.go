package scimout

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/scim/filter"
)

// Schema URNs the connector writes.
const (
	URNUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	URNGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URNEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	urnCorePrefix = "urn:ietf:params:scim:schemas:core:2.0:"
)

// Profile describes one vendor's SCIM service: what it requires, where
// learner fields go and which optional features it has. The zero value of
// each override means "ask the server" (GET /ServiceProviderConfig).
type Profile struct {
	Name string
	// PatchSupported, ETagSupported and MaxResults override discovery;
	// many LMS servers mis-report them.
	PatchSupported *bool
	ETagSupported  *bool
	MaxResults     int
	// Required lists what a learner must carry to be created (and updated
	// while active): "userName", "givenName", "familyName", "email",
	// "externalId", or a FieldMap key.
	Required []string
	// FieldMap maps connector.Learner.Fields keys to SCIM attribute paths:
	// "title", "name.middleName", `addresses[type eq "work"].locality`,
	// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter".
	// Fields keys not in the map are ignored (their names logged once).
	// A value filter must be `<sub-attribute> eq "<value>"` so a missing
	// element can be created.
	FieldMap map[string]string
	// GroupsSupported makes Target() a connector.GroupSetter.
	GroupsSupported bool
	// TagsAttribute is the SCIM path of a comma-separated list of training
	// tags (EasyLlama); set, it makes Target() a connector.Enroller that
	// adds Enrollment.ID as a tag.
	TagsAttribute string
	// EmailType is the emails[].type learnerlink writes and prefers when
	// reading; "" means "work".
	EmailType string
}

// Profiles returns the built-in profiles by name: "generic", "learnamp",
// "lessonly", "easyllama" and "absorb-scim". Each call returns fresh
// values, safe to modify. Sources and confidence: see the package doc.
func Profiles() map[string]Profile {
	no := false
	enterprise := func(attr string) string { return URNEnterprise + ":" + attr }
	return map[string]Profile{
		"generic": {
			Name:     "generic",
			Required: []string{"userName"},
			FieldMap: map[string]string{
				"jobTitle":       "title",
				"departmentName": enterprise("department"),
				"employeeNumber": enterprise("employeeNumber"),
				"costCenter":     enterprise("costCenter"),
				"division":       enterprise("division"),
				"organization":   enterprise("organization"),
				"location":       `addresses[type eq "work"].locality`,
			},
			GroupsSupported: true,
		},
		"learnamp": {
			Name:     "learnamp",
			Required: []string{"userName", "givenName", "familyName", "email"},
			FieldMap: map[string]string{
				"jobTitle":       "title",
				"departmentName": enterprise("department"),
				"employeeNumber": enterprise("employeeNumber"),
				"timezone":       "timezone",
				"location":       `addresses[type eq "work"].locality`,
			},
		},
		"lessonly": {
			Name:     "lessonly",
			Required: []string{"userName", "givenName", "familyName", "email"},
			FieldMap: map[string]string{
				"location":     enterprise("costCenter"),
				"businessUnit": enterprise("division"),
			},
		},
		"easyllama": {
			Name:     "easyllama",
			Required: []string{"userName", "givenName", "familyName"},
			FieldMap: map[string]string{
				"jobTitle":       "title",
				"departmentName": enterprise("department"),
			},
		},
		"absorb-scim": {
			Name: "absorb-scim",
			// Absorb documents no ServiceProviderConfig; PUT and GET are
			// documented for users, PATCH is not, so PUT is forced.
			PatchSupported: &no,
			Required:       []string{"userName", "givenName", "familyName"},
			FieldMap: map[string]string{
				"jobTitle":       "title",
				"departmentName": enterprise("department"),
				"employeeNumber": enterprise("employeeNumber"),
			},
			GroupsSupported: true,
		},
	}
}

// coreRequired are the Required names that are not Fields keys.
var coreRequired = []string{"userName", "givenName", "familyName", "email", "externalId"}

// compile validates the profile and compiles its paths.
func (p Profile) compile() (map[string]attrPath, *attrPath, error) {
	if strings.TrimSpace(p.Name) == "" {
		return nil, nil, errors.New("scimout: Profile.Name is required (see Profiles)")
	}
	if p.MaxResults < 0 {
		return nil, nil, fmt.Errorf("scimout: profile %s: MaxResults must not be negative", p.Name)
	}
	fields := make(map[string]attrPath, len(p.FieldMap))
	for _, k := range slices.Sorted(maps.Keys(p.FieldMap)) {
		ap, err := compilePath(p.FieldMap[k])
		if err != nil {
			return nil, nil, fmt.Errorf("scimout: profile %s: FieldMap[%q]: %w", p.Name, k, err)
		}
		fields[k] = ap
	}
	for _, r := range p.Required {
		if !slices.Contains(coreRequired, r) {
			if _, ok := fields[r]; !ok {
				return nil, nil, fmt.Errorf("scimout: profile %s: Required %q is neither one of %v nor a FieldMap key", p.Name, r, coreRequired)
			}
		}
	}
	var tags *attrPath
	if p.TagsAttribute != "" {
		ap, err := compilePath(p.TagsAttribute)
		if err != nil {
			return nil, nil, fmt.Errorf("scimout: profile %s: TagsAttribute: %w", p.Name, err)
		}
		if ap.filter != nil {
			return nil, nil, fmt.Errorf("scimout: profile %s: TagsAttribute must not use a value filter", p.Name)
		}
		tags = &ap
	}
	return fields, tags, nil
}

func (p Profile) emailType() string {
	if p.EmailType == "" {
		return "work"
	}
	return p.EmailType
}

// attrPath is a compiled SCIM attribute path.
type attrPath struct {
	raw    string
	urn    string // extension schema URN; "" for core attributes
	attr   string
	filter *filter.Filter
	// matchSub/matchVal is the filter's equality, used to create a missing
	// element (e.g. an address of type "work").
	matchSub, matchVal string
	sub                string
}

// multiValued are the RFC 7643 core User attributes that hold arrays.
var multiValued = []string{"emails", "phonenumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles", "x509certificates"}

// reserved core attributes are written from the Learner's own fields (or
// never): mapping a field onto them would fight those writes.
var reserved = []string{"id", "externalid", "username", "active", "meta", "groups", "schemas", "password", "name"}

func compilePath(s string) (attrPath, error) {
	p, err := filter.ParsePath(strings.TrimSpace(s))
	if err != nil {
		return attrPath{}, fmt.Errorf("path %q: %w", s, err)
	}
	ap := attrPath{raw: p.String(), urn: p.URN, attr: p.Attr, filter: p.Filter, sub: p.SubAttr}
	if isCoreURN(ap.urn) {
		ap.urn = ""
	}
	if ap.attr == "" {
		return attrPath{}, fmt.Errorf("path %q names no attribute", s)
	}
	la := strings.ToLower(ap.attr)
	if ap.urn == "" {
		switch {
		case la == "name" && (ap.sub == "" || strings.EqualFold(ap.sub, "givenName") || strings.EqualFold(ap.sub, "familyName")):
			return attrPath{}, fmt.Errorf("path %q is written from the learner's first/last name", s)
		case la != "name" && slices.Contains(reserved, la):
			return attrPath{}, fmt.Errorf("path %q is reserved (written by the connector or read-only)", s)
		}
	}
	if ap.filter != nil {
		name, val, ok := ap.filter.Equality()
		if !ok {
			return attrPath{}, fmt.Errorf("path %q: the value filter must be `<sub> eq \"<value>\"`", s)
		}
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = name[i+1:]
		}
		ap.matchSub, ap.matchVal = name, val
		if ap.sub == "" {
			return attrPath{}, fmt.Errorf("path %q: a value filter needs a sub-attribute (e.g. .value)", s)
		}
		return ap, nil
	}
	if ap.urn == "" && slices.Contains(multiValued, la) {
		return attrPath{}, fmt.Errorf("path %q: %s is multi-valued; select an element with a filter, e.g. %s[type eq \"work\"].value", s, ap.attr, ap.attr)
	}
	return ap, nil
}

func isCoreURN(urn string) bool {
	return len(urn) > len(urnCorePrefix) && strings.EqualFold(urn[:len(urnCorePrefix)], urnCorePrefix)
}

// container returns the object holding the path's attribute: the resource
// for core attributes, the extension object otherwise (created if asked).
func (ap attrPath) container(res map[string]any, create bool) map[string]any {
	if ap.urn == "" {
		return res
	}
	k, ok := keyFold(res, ap.urn)
	if ok {
		if m, ok := res[k].(map[string]any); ok {
			return m
		}
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	if ok {
		res[k] = m
	} else {
		res[ap.urn] = m
	}
	return m
}

// get reads the path's value as a string ("" and false when absent).
func (ap attrPath) get(res map[string]any) (string, bool) {
	v, ok := ap.getRaw(res)
	if !ok {
		return "", false
	}
	return scalar(v)
}

func (ap attrPath) getRaw(res map[string]any) (any, bool) {
	c := ap.container(res, false)
	if c == nil {
		return nil, false
	}
	v, ok := getFold(c, ap.attr)
	if !ok || v == nil {
		return nil, false
	}
	if ap.filter != nil {
		arr, _ := v.([]any)
		for _, e := range arr {
			if m, ok := e.(map[string]any); ok && ap.matches(m) {
				sv, ok := getFold(m, ap.sub)
				return sv, ok && sv != nil
			}
		}
		return nil, false
	}
	if ap.sub != "" {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		sv, ok := getFold(m, ap.sub)
		return sv, ok && sv != nil
	}
	return v, true
}

// matches applies the equality filter (sub-attribute compared
// case-insensitively, as "type" is caseExact=false in RFC 7643).
func (ap attrPath) matches(m map[string]any) bool {
	v, ok := getFold(m, ap.matchSub)
	s, isStr := v.(string)
	return ok && isStr && strings.EqualFold(s, ap.matchVal)
}

// set writes v (any JSON value) at the path, creating what is missing.
func (ap attrPath) set(res map[string]any, v any) {
	c := ap.container(res, true)
	switch {
	case ap.filter != nil:
		k, _ := keyFold(c, ap.attr)
		if k == "" {
			k = ap.attr
		}
		arr, _ := c[k].([]any)
		arr = slices.Clone(arr)
		hit := false
		for i, e := range arr {
			if m, ok := e.(map[string]any); ok && ap.matches(m) {
				m = maps.Clone(m)
				putFold(m, ap.sub, v)
				arr[i] = m
				hit = true
			}
		}
		if !hit {
			arr = append(arr, map[string]any{ap.matchSub: ap.matchVal, ap.sub: v})
		}
		c[k] = arr
	case ap.sub != "":
		k, _ := keyFold(c, ap.attr)
		if k == "" {
			k = ap.attr
		}
		m, _ := c[k].(map[string]any)
		m = maps.Clone(m)
		if m == nil {
			m = map[string]any{}
		}
		putFold(m, ap.sub, v)
		c[k] = m
	default:
		putFold(c, ap.attr, v)
	}
}

// del removes the path's value; an element left with nothing but the
// filter's own attribute (and primary) is dropped.
func (ap attrPath) del(res map[string]any) {
	c := ap.container(res, false)
	if c == nil {
		return
	}
	k, ok := keyFold(c, ap.attr)
	if !ok {
		return
	}
	switch {
	case ap.filter != nil:
		arr, _ := c[k].([]any)
		out := make([]any, 0, len(arr))
		for _, e := range arr {
			m, ok := e.(map[string]any)
			if !ok || !ap.matches(m) {
				out = append(out, e)
				continue
			}
			m = maps.Clone(m)
			if sk, ok := keyFold(m, ap.sub); ok {
				delete(m, sk)
			}
			if !onlyKeys(m, ap.matchSub, "primary") {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			delete(c, k)
		} else {
			c[k] = out
		}
	case ap.sub != "":
		m, _ := c[k].(map[string]any)
		if m == nil {
			return
		}
		m = maps.Clone(m)
		if sk, ok := keyFold(m, ap.sub); ok {
			delete(m, sk)
		}
		if len(m) == 0 {
			delete(c, k)
		} else {
			c[k] = m
		}
	default:
		delete(c, k)
	}
}

// patchOp is the path's PATCH operation for value v ("" removes). A value
// filter uses "add", which creates the element when none matches (as
// Microsoft Entra sends it); "replace" would be a noTarget error then
// (RFC 7644 §3.5.2.3).
func (ap attrPath) patchOp(v string) patchOp {
	if v == "" {
		return patchOp{Op: "remove", Path: ap.raw}
	}
	if ap.filter != nil {
		return patchOp{Op: "add", Path: ap.raw, Value: v}
	}
	return patchOp{Op: "replace", Path: ap.raw, Value: v}
}

func onlyKeys(m map[string]any, allowed ...string) bool {
	for k := range m {
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, k) }) {
			return false
		}
	}
	return true
}

// keyFold finds the key of m equal to name case-insensitively (exact
// match first, then the smallest folded match, so results never depend on
// map order).
func keyFold(m map[string]any, name string) (string, bool) {
	if m == nil {
		return "", false
	}
	if _, ok := m[name]; ok {
		return name, true
	}
	best, found := "", false
	for k := range m {
		if strings.EqualFold(k, name) && (!found || k < best) {
			best, found = k, true
		}
	}
	return best, found
}

func getFold(m map[string]any, name string) (any, bool) {
	k, ok := keyFold(m, name)
	if !ok {
		return nil, false
	}
	return m[k], true
}

// putFold sets name, replacing a key that differs only in case.
func putFold(m map[string]any, name string, v any) {
	if k, ok := keyFold(m, name); ok {
		m[k] = v
		return
	}
	m[name] = v
}

// scalar renders a simple JSON value as a string.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
