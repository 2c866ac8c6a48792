package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

// The stored SCIM User is the SCIM API's canonical form (see
// shared/scim/normalize.go): core attributes at the top level, extension
// attributes under their URN, strings and booleans only here, unassigned
// attributes absent (no empty objects or arrays), "schemas" listing the
// core schema and each extension present (enterprise before custom), and
// the identity's "id". It maps the Okta profile as Okta's SCIM push does
// with its default attribute mappings.

// decodeResource reads a stored resource (numbers stay json.Number, as in
// the SCIM API).
func decodeResource(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("stored resource is not a JSON object: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// encodeResource serialises a resource the way the SCIM API does.
func encodeResource(res map[string]any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, fmt.Errorf("encode resource: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// fill copies the indexed fields from res and stores res as the
// identity's resource, as the SCIM API's fillIdentity does.
func fill(ident *store.Identity, res map[string]any) error {
	res["id"] = ident.ID
	ident.UserName, _ = res["userName"].(string)
	ident.ExternalID, _ = res["externalId"].(string)
	ident.Active = res["active"] != false
	raw, err := encodeResource(res)
	if err != nil {
		return err
	}
	ident.Resource = raw
	return nil
}

// newResource is a new identity's SCIM User for an Okta user. partial:
// the profile is only what an event said (the directory was unavailable).
func newResource(u *okta.User, partial bool) map[string]any {
	res := map[string]any{"active": true, "externalId": u.ID}
	applyProfile(res, u.Profile, partial, false)
	return res
}

// applyProfile sets the attributes Okta's profile owns: userName ← login,
// name.givenName/familyName, emails (the primary one), title, the
// enterprise department, employeeNumber, costCenter, division,
// organization and manager (value ← managerId, displayName ← manager),
// and displayName, locale and timezone when Okta has them. A standard
// attribute Okta has cleared is removed, unless partial (then only the
// values present are set). Everything else in res (phone numbers,
// addresses, custom extension attributes…) is kept.
func applyProfile(res map[string]any, p okta.Profile, partial, keepUserName bool) {
	set := func(m map[string]any, k, v string) {
		switch {
		case v != "":
			m[k] = v
		case !partial:
			delete(m, k)
		}
	}
	setIfAny := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	if !keepUserName {
		setIfAny(res, "userName", p.Login)
	}
	name := object(res, "name")
	set(name, "givenName", p.FirstName)
	set(name, "familyName", p.LastName)
	putObject(res, "name", name)
	setIfAny(res, "displayName", p.DisplayName)
	set(res, "title", p.Title)
	setIfAny(res, "locale", p.Locale)
	setIfAny(res, "timezone", p.Timezone)
	if p.Email != "" {
		setPrimaryEmail(res, p.Email)
	}

	ent := object(res, scim.URNEnterpriseUser)
	set(ent, "department", p.Department)
	set(ent, "employeeNumber", p.EmployeeNumber)
	set(ent, "costCenter", p.CostCenter)
	set(ent, "division", p.Division)
	set(ent, "organization", p.Organization)
	mgr := object(ent, "manager")
	set(mgr, "value", p.ManagerID)
	set(mgr, "displayName", p.Manager)
	putObject(ent, "manager", mgr)
	putObject(res, scim.URNEnterpriseUser, ent)
	setSchemas(res)
}

// object returns a copy of res[k] if it is an object, else a new one.
func object(res map[string]any, k string) map[string]any {
	out := map[string]any{}
	if m, ok := res[k].(map[string]any); ok {
		for kk, v := range m {
			out[kk] = v
		}
	}
	return out
}

// putObject stores m, or removes k when m is empty (unassigned).
func putObject(res map[string]any, k string, m map[string]any) {
	if len(m) == 0 {
		delete(res, k)
		return
	}
	res[k] = m
}

// setPrimaryEmail updates the primary email (else the first work one)
// or adds a primary work email, as Okta's push maps profile.email.
func setPrimaryEmail(res map[string]any, email string) {
	emails, _ := res["emails"].([]any)
	at := -1
	for i, e := range emails {
		if m, ok := e.(map[string]any); ok && m["primary"] == true {
			at = i
			break
		}
	}
	if at < 0 {
		for i, e := range emails {
			if m, ok := e.(map[string]any); ok && strings.EqualFold(fmt.Sprint(m["type"]), "work") {
				at = i
				break
			}
		}
	}
	out := make([]any, 0, len(emails)+1)
	if at < 0 {
		out = append(out, map[string]any{"primary": true, "type": "work", "value": email})
		out = append(out, emails...)
	} else {
		for i, e := range emails {
			if i == at {
				m := object(map[string]any{"e": e}, "e")
				m["value"] = email
				e = m
			}
			out = append(out, e)
		}
	}
	res["emails"] = out
}

// setSchemas recomputes "schemas" from the extensions present, in the
// SCIM API's order, and drops empty extension objects.
func setSchemas(res map[string]any) {
	schemas := []any{scim.URNUser}
	for _, urn := range []string{scim.URNEnterpriseUser, scim.URNCustomUser} {
		if m, ok := res[urn].(map[string]any); ok && len(m) > 0 {
			schemas = append(schemas, urn)
		} else {
			delete(res, urn)
		}
	}
	res["schemas"] = schemas
}
