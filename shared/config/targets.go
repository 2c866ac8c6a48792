package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TargetSpec is one entry of the "targets" section of the LEARNERLINK_CONFIG
// file. Credentials never appear in the file: Credentials names, for each
// credential, the environment variable ("<credential>Env") or the key in
// the Secrets Manager secret ("<credential>Secret") that holds it.
type TargetSpec struct {
	Name string `json:"name"`
	// Type is absorb, scim, onelogin or sandbox.
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
	// Profile is the scimout profile (scim only): generic, lessonly, ...
	Profile string `json:"profile,omitempty"`
	// RateLimit is requests per second to this target, summed over every
	// worker; 0 means 10.
	RateLimit   float64           `json:"rateLimit,omitempty"`
	Credentials map[string]string `json:"credentials,omitempty"`
	// Mapping and Enrollment have the format of the top-level sections;
	// absent means the top-level ones.
	Mapping    json.RawMessage `json:"mapping,omitempty"`
	Enrollment json.RawMessage `json:"enrollment,omitempty"`
	// RoleMap maps group names to OneLogin role ids (onelogin only).
	RoleMap map[string]int `json:"roleMap,omitempty"`
	// Absorb only.
	DefaultDepartmentID string `json:"defaultDepartmentId,omitempty"`
	CreateDepartments   bool   `json:"createDepartments,omitempty"`
	GroupsField         string `json:"groupsField,omitempty"`
}

// DefaultTargetRate is a target's rate limit when the config sets none.
const DefaultTargetRate = 10

// targetCredentials is which credentials each target type takes.
var targetCredentials = map[string][]string{
	"absorb":   {"username", "password", "privateKey"},
	"scim":     {"token", "username", "password"},
	"onelogin": {"clientId", "clientSecret"},
	"sandbox":  {},
}

// LoadTargets reads and validates the "targets" section of the
// configuration document (source names it in errors). No document, or no
// section, is nil: one target from the environment.
func LoadTargets(data []byte, source string) ([]TargetSpec, error) {
	if data == nil {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	raw, ok := top["targets"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("targets: want an array of targets: %w", err)
	}
	var errs []error
	specs := make([]TargetSpec, 0, len(items))
	seen := map[string]bool{}
	for i, item := range items {
		var t TargetSpec
		if onlyComments(item) {
			continue // a "_comment" entry documenting the section
		}
		if err := decodeStrict(item, &t); err != nil {
			errs = append(errs, fmt.Errorf("targets[%d]: %w", i, err))
			continue
		}
		if err := t.validate(); err != nil {
			errs = append(errs, fmt.Errorf("targets[%d]: %w", i, err))
			continue
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("target %q: name: used twice", t.Name))
		}
		seen[t.Name] = true
		specs = append(specs, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, errors.New("targets: the section lists no target (leave it out for the single LEARNERLINK_TARGET)")
	}
	return specs, nil
}

func onlyComments(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return false
	}
	for k := range m {
		if !strings.HasPrefix(k, "_comment") {
			return false
		}
	}
	return true
}

// decodeStrict decodes one target, ignoring "_comment" keys at its top
// level and refusing any other unknown key.
func decodeStrict(raw json.RawMessage, v any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	for k := range m {
		if strings.HasPrefix(k, "_comment") {
			delete(m, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (t *TargetSpec) validate() error {
	if t.Name == "" {
		return errors.New("name: required")
	}
	// The name is part of queue group ids (identity#target) and table keys.
	for _, r := range t.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("target %q: name: only letters, digits, '-', '_' and '.'", t.Name)
		}
	}
	if len(t.Name) > 64 {
		return fmt.Errorf("target %q: name: at most 64 characters", t.Name)
	}
	creds, ok := targetCredentials[t.Type]
	if !ok {
		return fmt.Errorf("target %q: type: %q, want absorb, scim, onelogin or sandbox", t.Name, t.Type)
	}
	var errs []error
	if t.Type != "sandbox" && t.URL == "" {
		errs = append(errs, fmt.Errorf("target %q: url: required", t.Name))
	}
	if t.Type == "scim" && t.Profile == "" {
		errs = append(errs, fmt.Errorf("target %q: profile: required for a scim target", t.Name))
	}
	if t.Type != "scim" && t.Profile != "" {
		errs = append(errs, fmt.Errorf("target %q: profile: only for scim targets", t.Name))
	}
	if t.Type != "onelogin" && len(t.RoleMap) > 0 {
		errs = append(errs, fmt.Errorf("target %q: roleMap: only for onelogin targets", t.Name))
	}
	if t.Type != "absorb" && (t.DefaultDepartmentID != "" || t.CreateDepartments || t.GroupsField != "") {
		errs = append(errs, fmt.Errorf("target %q: defaultDepartmentId/createDepartments/groupsField: only for absorb targets", t.Name))
	}
	if t.RateLimit < 0 || t.RateLimit > 200 {
		errs = append(errs, fmt.Errorf("target %q: rateLimit: want requests per second above 0 and at most 200", t.Name))
	}
	if t.RateLimit == 0 {
		t.RateLimit = DefaultTargetRate
	}
	for k, v := range t.Credentials {
		cred, ok := strings.CutSuffix(k, "Env")
		if !ok {
			cred, ok = strings.CutSuffix(k, "Secret")
		}
		if !ok || !slices.Contains(creds, cred) {
			errs = append(errs, fmt.Errorf("target %q: credentials.%s: unknown; a %s target takes %s, each as <name>Env or <name>Secret", t.Name, k, t.Type, strings.Join(creds, ", ")))
		} else if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("target %q: credentials.%s: empty", t.Name, k))
		}
	}
	return errors.Join(errs...)
}

// Credential returns the value of one credential of t: from the
// environment variable credentials.<name>Env names, else from the secret's
// key credentials.<name>Secret names. "" when neither is configured or set.
func (s Settings) Credential(t TargetSpec, name string, getenv func(string) string) string {
	if env := t.Credentials[name+"Env"]; env != "" && getenv != nil {
		if v := getenv(env); v != "" {
			return v
		}
	}
	if key := t.Credentials[name+"Secret"]; key != "" {
		return s.SecretValues[key]
	}
	return ""
}
