// Package mapping projects an identity's desired state (the SCIM User we
// store) onto a target learner: core attributes, extra target fields and the
// learner-group names.
//
// # Configuration
//
// A Config maps each target field to a Source: a fallback chain of source
// expressions whose first non-empty value wins. Core target fields fill the
// connector.Learner struct (externalId, userName, email, firstName, lastName,
// active); every other key becomes an entry of Learner.Fields under that name
// (e.g. "departmentName", "customFields.string1"). Mapping cannot know which
// field names a target understands, so connectors must ignore (and log the
// names of) Fields they do not support.
//
// Source expressions:
//
//	userName                                      SCIM attribute path
//	name.givenName                                sub-attribute
//	emails[primary eq true].value                 value filter (needs a sub-attribute)
//	urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
//	urn:learnerlink:params:scim:schemas:extension:custom:2.0:User:region
//	=Sales                                        literal ("=" alone is the empty string)
//	externalIdOf(urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value)
//
// Paths are parsed with shared/scim/filter and match attribute names
// case-insensitively. A multi-valued attribute without a filter yields its
// first element. externalIdOf resolves a reference to another identity (our
// id, or the IdP's id, as Okta and Entra send in manager.value) through
// Config.Lookup and yields that identity's mapped externalId, so a
// supervisor field always equals what we wrote as the manager's externalId.
// When the reference names no identity (not provisioned yet), or Lookup is
// nil, the reference itself is used: with Okta it is the manager's Okta id,
// which is what the manager's externalId will be once provisioned.
//
// Defaults (Default) work with no file at all:
//
//	externalId             externalId (the Okta user id), else our id
//	userName               userName
//	email                  emails[primary eq true].value, else emails[type eq "work"].value, else emails.value
//	firstName, lastName    name.givenName, name.familyName
//	active                 active (always false for a deleted identity)
//	departmentName         enterprise department
//	jobTitle               title
//	employeeNumber         enterprise employeeNumber
//	supervisorExternalId   externalIdOf(enterprise manager.value)
//	location               addresses[type eq "work"].locality
//	customFields.string1   enterprise costCenter
//	customFields.string2   enterprise division
//	customFields.string3   enterprise organization
//
// The customFields defaults write into slots a portal may already use for
// something else: unmap them ("") or move them before going live.
//
// Groups: every IdP group is passed through under its own name unless
// groups.map renames it (case-insensitive key; "" drops it). With
// groups.onlyMapped only groups named in the map are passed.
// passCustomAttributes copies every simple attribute of the custom extension
// (CustomURN) into Fields under its own name, unless a field of that name is
// configured.
//
// # File and environment
//
// Load reads the "mapping" object of a JSON file (ReadSection; other top-level
// keys belong to other components) and then environment overrides
// LEARNERLINK_MAP_<FIELD>=<expression>, where <FIELD> is the target field
// upper-cased with every non-alphanumeric character replaced by "_"
// (LEARNERLINK_MAP_CUSTOMFIELDS_STRING4). An override value starting with "["
// is a JSON array of expressions; "-" unmaps the field. Overrides are looked up
// for core fields, configured fields and a catalogue of common target fields
// (Absorb's user fields and customFields slots); to map another field, name it
// in the file. Everything is validated at load; errors name the key.
//
//	{"mapping": {
//	  "fields": {"departmentName": "urn:…:enterprise:2.0:User:division", "customFields.string3": ""},
//	  "passCustomAttributes": false,
//	  "groups": {"map": {"Okta Sales": "Sales Team", "Everyone": ""}, "onlyMapped": false}
//	}}
package mapping
