package reconcile

import (
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
)

// DefaultIgnoreFields are mapped fields a target answers under another
// name, so they cannot be compared as read: Absorb reads a department
// name back as departmentId and a supervisor's external id as the
// supervisor's Absorb id. The worker's Force repair still writes them.
func DefaultIgnoreFields() []string {
	return []string{"departmentName", "supervisorExternalId"}
}

// GroupsValue renders group names as the Absorb connector writes them into
// its groups field: sorted, unique, each enclosed in "|" ("|A|B|"), a "|"
// inside a name written as "/".
func GroupsValue(groups []string) string {
	var names []string
	for _, g := range groups {
		g = strings.TrimSpace(strings.ReplaceAll(g, "|", "/"))
		if g != "" && !slices.Contains(names, g) {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "|" + strings.Join(names, "|") + "|"
}

// core fields, as bits of a mask: a desired value that is empty is not
// compared, because the connectors never blank a required or key field.
const (
	coreExternalID uint8 = 1 << iota
	coreUserName
	coreEmail
	coreFirstName
	coreLastName
)

// comparer reduces a learner to a hash of the fields reconciliation
// compares, so 100k learners cost a few words each instead of their
// records.
type comparer struct {
	fields      []string // non-core mapped fields compared, sorted
	groupsField string   // "" when groups are not compared
	groupsValue func([]string) string
}

func newComparer(m mapping.Config, ignore []string, groupsField string, groupsValue func([]string) string) *comparer {
	if groupsValue == nil {
		groupsValue = GroupsValue
	}
	var fields []string
	for _, f := range slices.Sorted(maps.Keys(m.Fields)) {
		switch {
		case isCore(f), f == groupsField, slices.Contains(ignore, f), usesReference(m.Fields[f]):
			continue
		}
		fields = append(fields, f)
	}
	return &comparer{fields: fields, groupsField: groupsField, groupsValue: groupsValue}
}

func isCore(f string) bool {
	switch f {
	case mapping.FieldExternalID, mapping.FieldUserName, mapping.FieldEmail,
		mapping.FieldFirstName, mapping.FieldLastName, mapping.FieldActive:
		return true
	}
	return false
}

// usesReference reports a source that resolves another identity
// (externalIdOf(...)): reconciliation maps without store look-ups, so such
// a field is not compared.
func usesReference(src mapping.Source) bool {
	for _, s := range src {
		if strings.HasPrefix(strings.TrimSpace(s), "externalIdOf(") {
			return true
		}
	}
	return false
}

// desired hashes the learner the target should have and says which core
// fields it fills.
func (c *comparer) desired(l connector.Learner, groups []string) (uint64, uint8) {
	var mask uint8
	for _, f := range []struct {
		bit uint8
		v   string
	}{{coreExternalID, l.ExternalID}, {coreUserName, l.UserName}, {coreEmail, l.Email}, {coreFirstName, l.FirstName}, {coreLastName, l.LastName}} {
		if f.v != "" {
			mask |= f.bit
		}
	}
	return c.hash(l, mask, c.groupsValue(groups)), mask
}

// actual hashes a learner as the target answered it, over the same fields
// as the desired one.
func (c *comparer) actual(l connector.Learner, mask uint8) uint64 {
	return c.hash(l, mask, l.Fields[c.groupsField])
}

func (c *comparer) hash(l connector.Learner, mask uint8, groups string) uint64 {
	h := fnv.New64a()
	put := func(name, v string) {
		_, _ = h.Write([]byte(name))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(v))
		_, _ = h.Write([]byte{1})
	}
	// Usernames, emails and external ids compare case-insensitively, as
	// the targets and the worker's matching do.
	if mask&coreExternalID != 0 {
		put("externalId", strings.ToLower(l.ExternalID))
	}
	if mask&coreUserName != 0 {
		put("userName", strings.ToLower(l.UserName))
	}
	if mask&coreEmail != 0 {
		put("email", strings.ToLower(l.Email))
	}
	if mask&coreFirstName != 0 {
		put("firstName", l.FirstName)
	}
	if mask&coreLastName != 0 {
		put("lastName", l.LastName)
	}
	for _, f := range c.fields {
		put(f, l.Fields[f])
	}
	if c.groupsField != "" {
		put("groups", groups)
	}
	return h.Sum64()
}

// key hashes an id or a matching key. Folded keys (userName, email, …)
// are lower-cased first. The hash is stable across processes, so marks
// saved in a checkpoint mean the same thing after a resume.
func key(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func foldKey(s string) uint64 { return key(strings.ToLower(strings.TrimSpace(s))) }
