package scim

import "strings"

// Schema URNs of the resources this service provider serves.
const (
	URNUser           = "urn:ietf:params:scim:schemas:core:2.0:User"
	URNGroup          = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URNEnterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	// URNCustomUser holds free-form simple-typed attributes an admin maps in
	// Okta; they are stored as sent and passed on for LMS custom fields.
	URNCustomUser = "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User"
)

// Message and discovery schema URNs (RFC 7644 §3, RFC 7643 §5-7).
const (
	urnListResponse  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	urnError         = "urn:ietf:params:scim:api:messages:2.0:Error"
	urnPatchOp       = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	urnSearchRequest = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	urnSPConfig      = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	urnResourceType  = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	urnSchema        = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// Attribute types (RFC 7643 §2.3).
const (
	typeString    = "string"
	typeBoolean   = "boolean"
	typeDecimal   = "decimal"
	typeInteger   = "integer"
	typeDateTime  = "dateTime"
	typeBinary    = "binary"
	typeReference = "reference"
	typeComplex   = "complex"
)

const (
	mutReadOnly  = "readOnly"
	mutReadWrite = "readWrite"
	mutImmutable = "immutable"
	mutWriteOnly = "writeOnly"
)

// attribute is an RFC 7643 §7 attribute definition. The JSON form is what
// /Schemas serves; the same definitions drive validation, PATCH path
// resolution, projection and filter case sensitivity, so discovery cannot
// drift from behaviour.
type attribute struct {
	Name            string       `json:"name"`
	Type            string       `json:"type"`
	MultiValued     bool         `json:"multiValued"`
	Description     string       `json:"description,omitempty"`
	Required        bool         `json:"required"`
	CanonicalValues []string     `json:"canonicalValues,omitempty"`
	CaseExact       bool         `json:"caseExact"`
	Mutability      string       `json:"mutability"`
	Returned        string       `json:"returned"`
	Uniqueness      string       `json:"uniqueness"`
	ReferenceTypes  []string     `json:"referenceTypes,omitempty"`
	SubAttributes   []*attribute `json:"subAttributes,omitempty"`
}

// sub finds a sub-attribute case-insensitively.
func (a *attribute) sub(name string) *attribute {
	return findAttr(a.SubAttributes, name)
}

// hasValueSub reports whether elements are identified by a "value"
// sub-attribute (emails, members, manager...), which PATCH uses for bare
// values and for matching elements to remove.
func (a *attribute) hasValueSub() bool { return a.sub("value") != nil }

func findAttr(attrs []*attribute, name string) *attribute {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

type attrOpt func(*attribute)

func multi(a *attribute)      { a.MultiValued = true }
func required(a *attribute)   { a.Required = true }
func caseExact(a *attribute)  { a.CaseExact = true }
func readOnly(a *attribute)   { a.Mutability = mutReadOnly }
func immutable(a *attribute)  { a.Mutability = mutImmutable }
func writeOnly(a *attribute)  { a.Mutability = mutWriteOnly; a.Returned = "never" }
func alwaysOut(a *attribute)  { a.Returned = "always" }
func uniqServer(a *attribute) { a.Uniqueness = "server" }
func canonical(v ...string) attrOpt {
	return func(a *attribute) { a.CanonicalValues = v }
}
func refs(v ...string) attrOpt {
	return func(a *attribute) { a.ReferenceTypes = v }
}
func subs(s ...*attribute) attrOpt {
	return func(a *attribute) { a.SubAttributes = s }
}
func desc(d string) attrOpt { return func(a *attribute) { a.Description = d } }

func attr(name, typ string, opts ...attrOpt) *attribute {
	a := &attribute{Name: name, Type: typ, Mutability: mutReadWrite, Returned: "default", Uniqueness: "none"}
	for _, o := range opts {
		o(a)
	}
	return a
}

// schema is an RFC 7643 §7 schema.
type schema struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Attributes  []*attribute `json:"attributes"`
	// freeForm: any attribute name with a simple value (or an array of
	// them) is accepted; used by the custom extension whose attributes are
	// whatever the admin maps in the IdP.
	freeForm bool
}

func (s *schema) find(name string) *attribute { return findAttr(s.Attributes, name) }

// resourceType ties a core schema to its extensions and endpoint.
type resourceType struct {
	Name        string
	Endpoint    string
	Description string
	Core        *schema
	Extensions  []*schema
	// common holds id, externalId and meta (RFC 7643 §3.1): present on
	// every resource but not part of its schema's attribute list.
	common []*attribute
}

// schemaByURN finds the core schema or an extension, case-insensitively
// (URNs compare case-insensitively, RFC 8141).
func (rt *resourceType) schemaByURN(urn string) *schema {
	if strings.EqualFold(urn, rt.Core.ID) {
		return rt.Core
	}
	return rt.extension(urn)
}

func (rt *resourceType) extension(urn string) *schema {
	for _, s := range rt.Extensions {
		if strings.EqualFold(urn, s.ID) {
			return s
		}
	}
	return nil
}

// coreAttr finds a core or common attribute.
func (rt *resourceType) coreAttr(name string) *attribute {
	if a := rt.Core.find(name); a != nil {
		return a
	}
	return findAttr(rt.common, name)
}

// caseExact answers the filter package's question for a lower-cased path
// without URN ("emails.value", "meta.version"). Unknown paths compare
// case-insensitively.
func (rt *resourceType) caseExact(path string) bool {
	top, sub, _ := strings.Cut(path, ".")
	var a *attribute
	if a = rt.coreAttr(top); a == nil {
		for _, s := range rt.Extensions {
			if a = s.find(top); a != nil {
				break
			}
		}
	}
	if a == nil {
		return false
	}
	if sub != "" {
		if a = a.sub(sub); a == nil {
			return false
		}
	}
	return a.CaseExact
}

func commonAttributes() []*attribute {
	return []*attribute{
		attr("id", typeString, caseExact, readOnly, alwaysOut, uniqServer,
			desc("Unique identifier for the resource, assigned by the service provider.")),
		attr("externalId", typeString, caseExact,
			desc("Identifier of the resource in the provisioning client (e.g. the Okta user id).")),
		attr("meta", typeComplex, readOnly, subs(
			attr("resourceType", typeString, caseExact, readOnly),
			attr("created", typeDateTime, readOnly),
			attr("lastModified", typeDateTime, readOnly),
			attr("location", typeReference, caseExact, readOnly, refs("uri")),
			attr("version", typeString, caseExact, readOnly),
		)),
	}
}

// multiValuedSubs are the sub-attributes RFC 7643 §2.4 gives every
// multi-valued attribute, plus value.
func multiValuedSubs(typeValues ...string) []*attribute {
	return []*attribute{
		attr("value", typeString),
		attr("display", typeString),
		attr("type", typeString, canonical(typeValues...)),
		attr("primary", typeBoolean),
	}
}

func userResourceType() *resourceType {
	core := &schema{
		ID:          URNUser,
		Name:        "User",
		Description: "User Account",
		Attributes: []*attribute{
			attr("userName", typeString, required, uniqServer,
				desc("Unique identifier for the User, used to sign in; compared case-insensitively.")),
			attr("name", typeComplex, desc("The components of the user's real name."), subs(
				attr("formatted", typeString),
				attr("familyName", typeString),
				attr("givenName", typeString),
				attr("middleName", typeString),
				attr("honorificPrefix", typeString),
				attr("honorificSuffix", typeString),
			)),
			attr("displayName", typeString),
			attr("nickName", typeString),
			attr("profileUrl", typeReference, refs("external")),
			attr("title", typeString),
			attr("userType", typeString),
			attr("preferredLanguage", typeString),
			attr("locale", typeString),
			attr("timezone", typeString),
			attr("active", typeBoolean, desc("Whether the user may use the LMS; defaults to true.")),
			attr("password", typeString, caseExact, writeOnly,
				desc("Accepted and discarded: learnerlink never stores passwords.")),
			attr("emails", typeComplex, multi, subs(multiValuedSubs("work", "home", "other")...)),
			attr("phoneNumbers", typeComplex, multi,
				subs(multiValuedSubs("work", "home", "mobile", "fax", "pager", "other")...)),
			attr("addresses", typeComplex, multi, subs(
				attr("formatted", typeString),
				attr("streetAddress", typeString),
				attr("locality", typeString),
				attr("region", typeString),
				attr("postalCode", typeString),
				attr("country", typeString),
				attr("type", typeString, canonical("work", "home", "other")),
				attr("primary", typeBoolean),
			)),
			attr("groups", typeComplex, multi, readOnly,
				desc("Groups the user belongs to, computed from group memberships."), subs(
					attr("value", typeString, caseExact, readOnly),
					attr("$ref", typeReference, caseExact, readOnly, refs("Group")),
					attr("display", typeString, readOnly),
					attr("type", typeString, readOnly, canonical("direct", "indirect")),
				)),
		},
	}
	enterprise := &schema{
		ID:          URNEnterpriseUser,
		Name:        "EnterpriseUser",
		Description: "Enterprise User",
		Attributes: []*attribute{
			attr("employeeNumber", typeString),
			attr("costCenter", typeString),
			attr("organization", typeString),
			attr("division", typeString),
			attr("department", typeString),
			attr("manager", typeComplex, subs(
				attr("value", typeString, caseExact, desc("The id of the manager's User.")),
				attr("$ref", typeReference, caseExact, refs("User")),
				// readWrite (RFC 7643 says readOnly): Okta maps it and we have
				// no other source for it.
				attr("displayName", typeString),
			)),
		},
	}
	custom := &schema{
		ID:          URNCustomUser,
		Name:        "LearnerlinkUser",
		Description: "Free-form attributes mapped in the identity provider (string, number or boolean values, or arrays of them), passed on to LMS custom fields.",
		Attributes:  []*attribute{},
		freeForm:    true,
	}
	return &resourceType{
		Name:        "User",
		Endpoint:    "/Users",
		Description: "User Account",
		Core:        core,
		Extensions:  []*schema{enterprise, custom},
		common:      commonAttributes(),
	}
}

func groupResourceType() *resourceType {
	core := &schema{
		ID:          URNGroup,
		Name:        "Group",
		Description: "Group",
		Attributes: []*attribute{
			attr("displayName", typeString, required, uniqServer,
				desc("Name of the group; unique, compared case-insensitively.")),
			attr("members", typeComplex, multi, desc("Users in the group."), subs(
				attr("value", typeString, caseExact, immutable),
				attr("$ref", typeReference, caseExact, immutable, refs("User")),
				attr("display", typeString),
				attr("type", typeString, immutable, canonical("User")),
			)),
		},
	}
	return &resourceType{
		Name:        "Group",
		Endpoint:    "/Groups",
		Description: "Group",
		Core:        core,
		common:      commonAttributes(),
	}
}
