package mapping

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Learner projects the identity and its groups onto a target learner (ID
// left empty) and the sorted target group names. It fails when the config
// is invalid, the resource is not JSON, a lookup fails, or the learner would
// have no externalId or userName; none of these heal by retrying except a
// failed lookup.
func (c Config) Learner(id *store.Identity, groups []store.Member) (connector.Learner, []string, error) {
	doc, err := Resource(id)
	if err != nil {
		return connector.Learner{}, nil, err
	}
	fields := slices.Sorted(maps.Keys(c.Fields))
	vals := make(map[string]string, len(fields))
	for _, f := range fields {
		v, err := c.value(c.Fields[f], doc, true)
		if err != nil {
			return connector.Learner{}, nil, fmt.Errorf("mapping: identity %s: field %s: %w", id.ID, f, err)
		}
		vals[f] = v
	}
	l := connector.Learner{
		ExternalID: vals[FieldExternalID],
		UserName:   vals[FieldUserName],
		Email:      vals[FieldEmail],
		FirstName:  vals[FieldFirstName],
		LastName:   vals[FieldLastName],
		Fields:     map[string]string{},
	}
	if a := vals[FieldActive]; a != "" {
		on, err := strconv.ParseBool(a)
		if err != nil {
			return connector.Learner{}, nil, fmt.Errorf("mapping: identity %s: field active: value is not a boolean", id.ID)
		}
		l.Active = on && !id.Deleted
	}
	for _, f := range fields {
		if !isCore(f) {
			l.Fields[f] = vals[f]
		}
	}
	if c.PassCustomAttributes {
		if ext, ok := get(doc, CustomURN).(map[string]any); ok {
			for k, v := range ext {
				if s, ok := scalar(v); ok && validFieldName(k) && !isCore(k) {
					if _, configured := c.Fields[k]; !configured {
						l.Fields[k] = s
					}
				}
			}
		}
	}
	switch {
	case l.ExternalID == "":
		return connector.Learner{}, nil, fmt.Errorf("mapping: identity %s: externalId maps to nothing", id.ID)
	case l.UserName == "":
		return connector.Learner{}, nil, fmt.Errorf("mapping: identity %s: userName maps to nothing", id.ID)
	}
	return l, c.Groups.apply(groups), nil
}

// value evaluates a fallback chain. resolve is false while evaluating a
// referenced identity's externalId, so references never recurse.
func (c Config) value(src Source, doc map[string]any, resolve bool) (string, error) {
	if unmapped(src) {
		return "", nil
	}
	for _, s := range src {
		e, err := parseExpr(s)
		if err != nil {
			return "", err
		}
		if e.lit {
			if e.literal != "" {
				return e.literal, nil
			}
			continue
		}
		vs := Select(doc, e.path)
		if len(vs) == 0 {
			continue
		}
		if !e.ref {
			return vs[0], nil
		}
		if !resolve {
			return "", errors.New("externalIdOf inside a referenced identity's externalId")
		}
		return c.externalIDOf(vs[0])
	}
	return "", nil
}

func (c Config) externalIDOf(ref string) (string, error) {
	if c.Lookup == nil {
		return ref, nil
	}
	other, err := c.Lookup(ref)
	if errors.Is(err, store.ErrNotFound) {
		return ref, nil
	}
	if err != nil {
		return "", fmt.Errorf("look up referenced identity: %w", err)
	}
	doc, err := Resource(other)
	if err != nil {
		return "", err
	}
	v, err := c.value(c.Fields[FieldExternalID], doc, false)
	if err != nil || v == "" {
		return ref, err
	}
	return v, nil
}

func (g GroupMap) apply(members []store.Member) []string {
	rename := make(map[string]string, len(g.Map))
	for k, v := range g.Map {
		rename[strings.ToLower(k)] = v
	}
	var out []string
	for _, m := range members {
		if m.GroupName == "" {
			continue
		}
		name, mapped := rename[strings.ToLower(m.GroupName)]
		if !mapped {
			if g.OnlyMapped {
				continue
			}
			name = m.GroupName
		}
		if name != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Hash is a stable digest of what would be pushed for a learner: its
// attributes (not its target ID, so it is the same before and after create)
// and its group set (order and duplicates ignored). Hex sha256 of canonical
// JSON; encoding/json sorts map keys.
func Hash(l connector.Learner, groups []string) string {
	gs := slices.Clone(groups)
	slices.Sort(gs)
	gs = slices.Compact(gs)
	if gs == nil {
		gs = []string{}
	}
	fields := l.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	// Strings, bools and string maps always marshal.
	b, _ := json.Marshal(map[string]any{
		"externalId": l.ExternalID,
		"userName":   l.UserName,
		"email":      l.Email,
		"firstName":  l.FirstName,
		"lastName":   l.LastName,
		"active":     l.Active,
		"fields":     fields,
		"groups":     gs,
	})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// IdentityFinder is the part of store.Identities that StoreLookup uses.
type IdentityFinder interface {
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error)
}

// StoreLookup resolves a reference as our identity id, else as the IdP's id
// (externalId, when exactly one live identity has it), else as a userName
// (Okta's managerId is often the manager's login). None, or an ambiguous
// externalId, is an error wrapping store.ErrNotFound. ctx bounds every
// lookup, so build one per sync.
func StoreLookup(ctx context.Context, s IdentityFinder) IdentityLookup {
	return func(ref string) (*store.Identity, error) {
		id, err := s.GetIdentity(ctx, ref)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return id, err
		}
		ids, err := s.FindIdentitiesByExternalID(ctx, ref)
		if err != nil {
			return nil, err
		}
		if len(ids) == 1 {
			return ids[0], nil
		}
		if len(ids) > 1 {
			return nil, fmt.Errorf("mapping: %d identities have externalId %q: %w", len(ids), ref, store.ErrNotFound)
		}
		return s.GetIdentityByUserName(ctx, ref)
	}
}
