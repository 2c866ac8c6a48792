// Package rules decides which enrollments (courses, curricula, learning
// paths) a learner gets: onboarding enrollments once, and rule enrollments
// when a rule starts to match the identity's attributes or IdP groups.
//
// # Firing once
//
// The worker keeps the names of carried-out rules in store.Link.Applied. Plan
// returns the enrollments of every matching rule not in Applied (and the
// onboarding ones, rule name "onboarding", if that is not in Applied yet).
// After all of them succeeded, the worker stores
//
//	cfg.StillMatching(doc, groups, append(link.Applied, <rule names of the actions>...))
//
// which keeps "onboarding" and the applied rules that still match, and drops
// rules that stopped matching, so a rule that stops matching and matches
// again later (a move out of Sales and back) fires again. A learner synced
// once while active is onboarded: StillMatching records "onboarding" even
// when no onboarding enrollments are configured, so adding some later does
// not enroll the existing population (only new learners). Applied names that
// the config no longer has are kept, so a rule removed by mistake and
// restored does not fire again for everyone. Nothing is planned for an
// inactive learner (its rules fire when it is reactivated). If some
// enrollments fail, keep the old Applied and retry the sync: Enroll should be
// idempotent, and one enrollment may come from two rules.
//
// Evaluate on mapping.Resource(identity), with the IdP group names (not the
// target names) of the identity's memberships.
//
// # Configuration
//
// Load reads the "enrollment" object of the JSON config file (see
// mapping.ReadSection: strict keys, "_comment…" keys ignored):
//
//	{"enrollment": {
//	  "onboarding": [{"kind": "course", "id": "<course id>"}],
//	  "rules": [
//	    {"name": "sales-curriculum",
//	     "when": {"attribute": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "equals": "Sales"},
//	     "enroll": [{"kind": "curriculum", "id": "<curriculum id>"}]},
//	    {"name": "admin-security",
//	     "when": {"any": [{"group": "Okta Admins"}, {"attribute": "title", "in": ["CISO", "IT Admin"]}]},
//	     "enroll": [{"kind": "course", "id": "<course id>"}]}
//	  ]}}
//
// A condition is exactly one of: attribute (a SCIM path, see mapping) with
// equals or in (any selected value equal to one of them, ignoring case);
// group (member of that IdP group, ignoring case); all (every sub-condition);
// any (at least one). Rule names are required, unique ignoring case, and not
// "onboarding". Enrollment kind is "course" or "curriculum" (learning paths
// are curricula).
package rules

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/scim/filter"
)

// Onboarding is the rule name of the onboarding enrollments in Applied.
const Onboarding = "onboarding"

// Section is the top-level key of the config file that Load reads.
const Section = "enrollment"

// maxDepth bounds condition nesting; real rules need two or three levels.
const maxDepth = 8

// Config is the enrollment configuration.
type Config struct {
	Onboarding []connector.Enrollment `json:"onboarding"` // enrolled once, on the first sync
	Rules      []Rule                 `json:"rules"`
}

// Rule enrolls a learner when its condition starts to hold.
type Rule struct {
	Name   string                 `json:"name"`
	When   Condition              `json:"when"`
	Enroll []connector.Enrollment `json:"enroll"`
}

// Condition is exactly one of Attribute (with Equals or In), Group, All, Any.
type Condition struct {
	Attribute string      `json:"attribute,omitempty"` // SCIM attribute path
	Equals    string      `json:"equals,omitempty"`
	In        []string    `json:"in,omitempty"`
	Group     string      `json:"group,omitempty"` // member of this IdP group (name, ignoring case)
	All       []Condition `json:"all,omitempty"`
	Any       []Condition `json:"any,omitempty"`
}

// Action is one enrollment to carry out now.
type Action struct {
	Rule       string
	Enrollment connector.Enrollment
	// Why is for the audit trail: the rule and the configured condition that
	// matched, naming attributes and configured values, never the learner's.
	Why string
}

// Load reads and validates the "enrollment" section of the JSON file at path.
// An empty path, or a file without the section, is an empty Config.
func Load(path string) (Config, error) {
	if path == "" {
		return Config{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("rules: read config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for a config document already in memory (source names it
// in errors); nil data is an empty Config.
func Parse(data []byte, source string) (Config, error) {
	var c Config
	if data == nil {
		return c, nil
	}
	if err := mapping.DecodeSection(data, source, Section, &c); err != nil {
		return Config{}, fmt.Errorf("rules: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every problem of the config, each naming where it is.
func (c Config) Validate() error {
	var errs []error
	for i, e := range c.Onboarding {
		if err := checkEnrollment(e); err != nil {
			errs = append(errs, fmt.Errorf("rules: onboarding[%d]: %w", i, err))
		}
	}
	seen := map[string]bool{}
	for i, r := range c.Rules {
		where := fmt.Sprintf("rules[%d]", i)
		switch folded := strings.ToLower(r.Name); {
		case strings.TrimSpace(r.Name) == "":
			errs = append(errs, fmt.Errorf("rules: %s: name is required", where))
		case r.Name != strings.TrimSpace(r.Name):
			errs = append(errs, fmt.Errorf("rules: %s: name %q has surrounding spaces", where, r.Name))
		case folded == Onboarding:
			errs = append(errs, fmt.Errorf("rules: %s: name %q is reserved", where, r.Name))
		case seen[folded]:
			errs = append(errs, fmt.Errorf("rules: %s: duplicate name %q", where, r.Name))
		default:
			seen[folded] = true
			where = fmt.Sprintf("rule %q", r.Name)
		}
		if err := r.When.validate(0); err != nil {
			errs = append(errs, fmt.Errorf("rules: %s: when%w", where, err))
		}
		if len(r.Enroll) == 0 {
			errs = append(errs, fmt.Errorf("rules: %s: enroll is empty", where))
		}
		for j, e := range r.Enroll {
			if err := checkEnrollment(e); err != nil {
				errs = append(errs, fmt.Errorf("rules: %s: enroll[%d]: %w", where, j, err))
			}
		}
	}
	return errors.Join(errs...)
}

func checkEnrollment(e connector.Enrollment) error {
	if e.Kind != "course" && e.Kind != "curriculum" {
		return fmt.Errorf("kind %q is not \"course\" or \"curriculum\"", e.Kind)
	}
	if strings.TrimSpace(e.ID) == "" {
		return errors.New("id is required")
	}
	return nil
}

// condError prefixes the location of a nested condition: ": …", ".all[1]: …".
type condError struct {
	at  string
	err error
}

func (e *condError) Error() string { return e.at + ": " + e.err.Error() }
func (e *condError) Unwrap() error { return e.err }

func nestedError(at string, err error) error {
	var ce *condError
	if errors.As(err, &ce) {
		return &condError{at: at + ce.at, err: ce.err}
	}
	return &condError{at: at, err: err}
}

func (c Condition) validate(depth int) error {
	if depth > maxDepth {
		return &condError{err: fmt.Errorf("nested deeper than %d", maxDepth)}
	}
	kinds := 0
	for _, set := range []bool{c.Attribute != "", c.Group != "", c.All != nil, c.Any != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return &condError{err: errors.New("needs exactly one of attribute, group, all, any")}
	}
	if c.Attribute == "" && (c.Equals != "" || c.In != nil) {
		return &condError{err: errors.New("equals and in need an attribute")}
	}
	switch {
	case c.Attribute != "":
		if _, err := mapping.ParsePath(c.Attribute); err != nil {
			return &condError{err: fmt.Errorf("attribute: %w", err)}
		}
		if (c.Equals != "") == (c.In != nil) {
			return &condError{err: fmt.Errorf("attribute %q needs exactly one of equals, in", c.Attribute)}
		}
		if c.In != nil && len(c.In) == 0 {
			return &condError{err: errors.New("in is empty")}
		}
		if slices.Contains(c.In, "") {
			return &condError{err: errors.New("in has an empty value, which never matches")}
		}
	case c.Group != "":
		if strings.TrimSpace(c.Group) == "" {
			return &condError{err: errors.New("group name is blank")}
		}
	default:
		subs, name := c.All, "all"
		if c.Any != nil {
			subs, name = c.Any, "any"
		}
		if len(subs) == 0 {
			return &condError{err: fmt.Errorf("%s is empty", name)}
		}
		for i, s := range subs {
			if err := s.validate(depth + 1); err != nil {
				return nestedError(fmt.Sprintf(".%s[%d]", name, i), err)
			}
		}
	}
	return nil
}

// Plan returns the enrollments to carry out now, in a deterministic order:
// onboarding first unless applied, then each matching rule not in applied,
// in config order, each rule's enrollments in their order. An inactive
// learner gets nothing.
func (c Config) Plan(resource map[string]any, groups []string, applied []string) []Action {
	if !active(resource) {
		return nil
	}
	done := make(map[string]bool, len(applied))
	for _, a := range applied {
		done[a] = true
	}
	var out []Action
	if !done[Onboarding] {
		for _, e := range c.Onboarding {
			out = append(out, Action{Rule: Onboarding, Enrollment: e, Why: "onboarding: first sync of the learner"})
		}
	}
	member := groupSet(groups)
	for _, r := range c.Rules {
		if done[r.Name] {
			continue
		}
		why, ok := r.When.match(resource, member)
		if !ok {
			continue
		}
		for _, e := range r.Enroll {
			out = append(out, Action{Rule: r.Name, Enrollment: e, Why: fmt.Sprintf("rule %q: %s", r.Name, why)})
		}
	}
	return out
}

// StillMatching returns the Applied list to store after a sync whose planned
// actions all succeeded: "onboarding" (once the learner is active), the
// applied rules that still match, and applied names the config no longer
// has. Sorted and without duplicates.
func (c Config) StillMatching(resource map[string]any, groups []string, applied []string) []string {
	byName := make(map[string]Rule, len(c.Rules))
	for _, r := range c.Rules {
		byName[r.Name] = r
	}
	member := groupSet(groups)
	var out []string
	if active(resource) || slices.Contains(applied, Onboarding) {
		out = append(out, Onboarding)
	}
	for _, name := range applied {
		if name == Onboarding {
			continue
		}
		r, known := byName[name]
		if !known {
			out = append(out, name)
			continue
		}
		if _, ok := r.When.match(resource, member); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func groupSet(groups []string) map[string]bool {
	m := make(map[string]bool, len(groups))
	for _, g := range groups {
		m[strings.ToLower(g)] = true
	}
	return m
}

// active is false only when the resource says so: a missing active
// attribute is not a deactivation.
func active(resource map[string]any) bool {
	vs := mapping.Select(resource, filter.Path{Attr: "active"})
	return len(vs) == 0 || !strings.EqualFold(vs[0], "false")
}

// match reports whether the condition holds and describes what matched.
// An attribute path that does not parse (only possible in a config that
// skipped Validate) never matches.
func (c Condition) match(resource map[string]any, member map[string]bool) (string, bool) {
	switch {
	case c.Attribute != "":
		p, err := mapping.ParsePath(c.Attribute)
		if err != nil {
			return "", false
		}
		want := c.In
		if c.Equals != "" {
			want = []string{c.Equals}
		}
		for _, v := range mapping.Select(resource, p) {
			for _, w := range want {
				if strings.EqualFold(v, w) {
					return c.describe(), true
				}
			}
		}
		return "", false
	case c.Group != "":
		if member[strings.ToLower(c.Group)] {
			return fmt.Sprintf("member of %q", c.Group), true
		}
		return "", false
	case c.All != nil:
		whys := make([]string, 0, len(c.All))
		for _, s := range c.All {
			why, ok := s.match(resource, member)
			if !ok {
				return "", false
			}
			whys = append(whys, why)
		}
		return join(whys, " and "), len(whys) > 0
	case c.Any != nil:
		// Name only the branches that matched: that is the reason.
		var whys []string
		for _, s := range c.Any {
			if why, ok := s.match(resource, member); ok {
				whys = append(whys, why)
			}
		}
		return join(whys, " or "), len(whys) > 0
	}
	return "", false
}

// describe names the attribute without its schema URN (attribute names
// have no colons; filter values may), and the configured values.
func (c Condition) describe() string {
	name := strings.TrimSpace(c.Attribute)
	head, _, _ := strings.Cut(name, "[")
	if i := strings.LastIndex(head, ":"); i >= 0 {
		name = name[i+1:]
	}
	if c.Equals != "" {
		return fmt.Sprintf("%s = %q", name, c.Equals)
	}
	quoted := make([]string, len(c.In))
	for i, v := range c.In {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%s in (%s)", name, strings.Join(quoted, ", "))
}

func join(parts []string, sep string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, sep) + ")"
}
