package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Core target fields: they fill connector.Learner's own attributes and must
// stay mapped.
const (
	FieldExternalID = "externalId"
	FieldUserName   = "userName"
	FieldEmail      = "email"
	FieldFirstName  = "firstName"
	FieldLastName   = "lastName"
	FieldActive     = "active"
)

// Schema URNs of the User extensions we read.
const (
	EnterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	CustomURN     = "urn:learnerlink:params:scim:schemas:extension:custom:2.0:User"
)

// EnvPrefix starts every mapping override variable.
const EnvPrefix = "LEARNERLINK_MAP_"

// Section is the top-level key of the config file that Load reads.
const Section = "mapping"

func coreFields() []string {
	return []string{FieldExternalID, FieldUserName, FieldEmail, FieldFirstName, FieldLastName, FieldActive}
}

func isCore(field string) bool { return slices.Contains(coreFields(), field) }

// Source is a fallback chain of source expressions: the first that yields a
// non-empty value wins. In JSON a single expression may be written as a
// plain string; "", null and [] leave the field unmapped.
type Source []string

// UnmarshalJSON accepts a string or an array of strings.
func (s *Source) UnmarshalJSON(b []byte) error {
	var one *string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = nil
		if one != nil && *one != "" {
			*s = Source{*one}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want an expression or an array of expressions")
	}
	*s = many
	return nil
}

// MarshalJSON writes a one-expression chain as a plain string, and an
// unmapped one as "".
func (s Source) MarshalJSON() ([]byte, error) {
	if unmapped(s) {
		return []byte(`""`), nil
	}
	if len(s) == 1 {
		return json.Marshal(s[0])
	}
	return json.Marshal([]string(s))
}

// GroupMap says which IdP groups become which target groups.
type GroupMap struct {
	// Map renames IdP groups (key compared case-insensitively) to target
	// group names; an empty name drops the group.
	Map map[string]string `json:"map,omitempty"`
	// OnlyMapped passes only the groups named in Map.
	OnlyMapped bool `json:"onlyMapped,omitempty"`
}

// IdentityLookup finds the identity a reference names (our id or the IdP's
// id); it returns an error wrapping store.ErrNotFound when there is none.
// StoreLookup builds one over the store.
type IdentityLookup func(ref string) (*store.Identity, error)

// Config maps target fields to sources. Build it with Default or Load.
type Config struct {
	// Fields maps a target field to its source (see the package doc).
	Fields map[string]Source `json:"fields"`
	// PassCustomAttributes copies the custom extension's simple attributes
	// into Learner.Fields by name.
	PassCustomAttributes bool     `json:"passCustomAttributes,omitempty"`
	Groups               GroupMap `json:"groups"`
	// Lookup resolves externalIdOf references; the worker sets it per sync
	// (it needs a context). Nil uses references as they are.
	Lookup IdentityLookup `json:"-"`
}

// Default is the mapping used with no configuration; see the package doc.
func Default() Config {
	ent := func(attr string) Source { return Source{EnterpriseURN + ":" + attr} }
	return Config{Fields: map[string]Source{
		FieldExternalID: {"externalId", "id"},
		FieldUserName:   {"userName"},
		FieldEmail:      {"emails[primary eq true].value", `emails[type eq "work"].value`, "emails.value"},
		FieldFirstName:  {"name.givenName"},
		FieldLastName:   {"name.familyName"},
		FieldActive:     {"active"},

		"departmentName":       ent("department"),
		"jobTitle":             {"title"},
		"employeeNumber":       ent("employeeNumber"),
		"supervisorExternalId": {refPrefix + EnterpriseURN + ":manager.value" + ")"},
		"location":             {`addresses[type eq "work"].locality`},
		"customFields.string1": ent("costCenter"),
		"customFields.string2": ent("division"),
		"customFields.string3": ent("organization"),
	}}
}

// fileConfig is the "mapping" section; pointers tell "absent" from "set".
type fileConfig struct {
	Fields               map[string]json.RawMessage `json:"fields"`
	PassCustomAttributes *bool                      `json:"passCustomAttributes"`
	Groups               *GroupMap                  `json:"groups"`
}

// Load returns Default overlaid with the "mapping" section of the JSON file at
// path (skipped when path is empty) and then with LEARNERLINK_MAP_* overrides
// read through getenv (nil reads none). The result is validated.
func Load(path string, getenv func(string) string) (Config, error) {
	if path == "" {
		return Parse(nil, "", getenv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("mapping: read config: %w", err)
	}
	return Parse(data, path, getenv)
}

// Parse is Load for a config document already in memory (source names it
// in errors); nil data means no document.
func Parse(data []byte, source string, getenv func(string) string) (Config, error) {
	c := Default()
	if data != nil {
		var f fileConfig
		if err := DecodeSection(data, source, Section, &f); err != nil {
			return Config{}, fmt.Errorf("mapping: %w", err)
		}
		var errs []error
		for _, field := range slices.Sorted(maps.Keys(f.Fields)) {
			raw := f.Fields[field]
			var src Source
			if err := json.Unmarshal(raw, &src); err != nil {
				errs = append(errs, fmt.Errorf("mapping: fields.%s: %w", field, err))
			}
			c.Fields[field] = src
		}
		if err := errors.Join(errs...); err != nil {
			return Config{}, err
		}
		if f.PassCustomAttributes != nil {
			c.PassCustomAttributes = *f.PassCustomAttributes
		}
		if f.Groups != nil {
			c.Groups = *f.Groups
		}
	}
	if getenv != nil {
		var errs []error
		for _, field := range envFields(c.Fields) {
			name := EnvVar(field)
			v := getenv(name)
			if v == "" {
				continue
			}
			src, err := parseEnvSource(v)
			if err == nil {
				err = checkSource(field, src)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("mapping: %s: %w", name, err))
				continue
			}
			c.Fields[field] = src
		}
		if err := errors.Join(errs...); err != nil {
			return Config{}, err
		}
	}
	for field, src := range c.Fields {
		if unmapped(src) && !isCore(field) {
			delete(c.Fields, field)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// EnvVar names the override variable of a target field.
func EnvVar(field string) string {
	b := []byte(strings.ToUpper(field))
	for i, ch := range b {
		if !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			b[i] = '_'
		}
	}
	return EnvPrefix + string(b)
}

func parseEnvSource(v string) (Source, error) {
	switch {
	case v == "-":
		return nil, nil
	case strings.HasPrefix(v, "["):
		var s Source
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return nil, fmt.Errorf("bad JSON array of expressions: %w", err)
		}
		return s, nil
	}
	return Source{v}, nil
}

// envFields lists the fields whose override variables Load reads, sorted:
// getenv cannot enumerate, so the candidates are core fields, configured
// fields and a catalogue of common target fields.
func envFields(configured map[string]Source) []string {
	fields := append(coreFields(),
		"departmentName", "jobTitle", "employeeNumber", "supervisorExternalId", "location",
		"middleName", "phone", "address", "address2", "city", "postalCode",
		"referenceNumber", "dateHired", "dateTerminated", "notes")
	slot := func(kind string, n int) {
		for i := 1; i <= n; i++ {
			fields = append(fields, "customFields."+kind+strconv.Itoa(i))
		}
	}
	slot("string", 30)
	slot("decimal", 5)
	slot("datetime", 5)
	slot("bool", 5)
	for f := range configured {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return slices.Compact(fields)
}

func unmapped(s Source) bool { return len(s) == 0 || len(s) == 1 && s[0] == "" }

// Validate checks every field name and expression and the group map. All
// problems are reported, each naming its key.
func (c Config) Validate() error {
	var errs []error
	fields := slices.Collect(maps.Keys(c.Fields))
	for _, f := range coreFields() {
		if _, ok := c.Fields[f]; !ok {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	for _, f := range fields {
		if err := checkSource(f, c.Fields[f]); err != nil {
			errs = append(errs, fmt.Errorf("mapping: fields.%s: %w", f, err))
		}
	}
	seen := make(map[string]string, len(c.Groups.Map))
	for _, k := range slices.Sorted(maps.Keys(c.Groups.Map)) {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("mapping: groups.map: empty group name"))
			continue
		}
		folded := strings.ToLower(k)
		if other, dup := seen[folded]; dup {
			errs = append(errs, fmt.Errorf("mapping: groups.map: %q and %q name the same group", other, k))
		}
		seen[folded] = k
	}
	return errors.Join(errs...)
}

func checkSource(field string, src Source) error {
	if !validFieldName(field) {
		return fmt.Errorf("bad target field name %q", field)
	}
	if unmapped(src) {
		if isCore(field) {
			return errors.New("core field cannot be unmapped")
		}
		return nil
	}
	for _, s := range src {
		e, err := parseExpr(s)
		if err != nil {
			return err
		}
		if e.ref && field == FieldExternalID {
			return errors.New("externalIdOf cannot be used for externalId itself")
		}
		if e.lit && field == FieldActive && e.literal != "" {
			if _, err := strconv.ParseBool(e.literal); err != nil {
				return fmt.Errorf("literal %q is not a boolean", e.literal)
			}
		}
	}
	return nil
}

// validFieldName accepts dotted identifiers such as customFields.string1.
func validFieldName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !letter && (i == 0 || !(r == '_' || r == '-' || r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

// ReadSection decodes the top-level key section of the JSON config file at
// path into v. Decoding is strict (unknown keys are errors naming them),
// except that object keys starting with "_comment" are ignored at any depth,
// so the file can document itself. Other top-level keys are not checked:
// they belong to other components. A missing or null section leaves v as is.
func ReadSection(path, section string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	return DecodeSection(data, path, section, v)
}

// DecodeSection is ReadSection for a document already in memory; source
// names it in errors.
func DecodeSection(data []byte, path, section string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: trailing data after the top-level object", path)
	}
	sec, ok := top[section]
	if !ok || sec == nil {
		return nil
	}
	raw, err := json.Marshal(stripComments(sec))
	if err != nil {
		return fmt.Errorf("%s: %s: %w", path, section, err)
	}
	sdec := json.NewDecoder(bytes.NewReader(raw))
	sdec.DisallowUnknownFields()
	if err := sdec.Decode(v); err != nil {
		return fmt.Errorf("%s: %s: %w", path, section, err)
	}
	return nil
}

func stripComments(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if strings.HasPrefix(k, "_comment") {
				delete(t, k)
				continue
			}
			t[k] = stripComments(e)
		}
	case []any:
		for i, e := range t {
			t[i] = stripComments(e)
		}
	}
	return v
}
