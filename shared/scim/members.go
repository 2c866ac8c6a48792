package scim

import (
	"context"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/store"
)

// memberSet accumulates a PATCH's membership changes as adds and removes
// relative to the stored members. The member list is loaded only when an
// operation needs it (replace, remove-all, a filter other than
// `value eq "id"`): Okta's add and `members[value eq "…"]` removes never
// read a large group.
type memberSet struct {
	load    func(ctx context.Context) ([]store.Member, error)
	ctx     context.Context
	orig    map[string]store.Member // nil until loaded
	add     []string
	added   map[string]bool
	removed map[string]bool
	// base is for $ref in filter evaluation.
	base      string
	caseExact func(path string) bool
}

func newMemberSet(ctx context.Context, rt *resourceType, base string, load func(context.Context) ([]store.Member, error)) *memberSet {
	return &memberSet{ctx: ctx, base: base, caseExact: rt.caseExact, load: load, added: map[string]bool{}, removed: map[string]bool{}}
}

func (ms *memberSet) ensureLoaded() error {
	if ms.orig != nil {
		return nil
	}
	members, err := ms.load(ms.ctx)
	if err != nil {
		return err
	}
	ms.orig = make(map[string]store.Member, len(members))
	for _, m := range members {
		ms.orig[m.UserID] = m
	}
	return nil
}

func (ms *memberSet) addID(id string) {
	delete(ms.removed, id)
	if !ms.added[id] {
		ms.added[id] = true
		ms.add = append(ms.add, id)
	}
}

func (ms *memberSet) removeID(id string) {
	if ms.added[id] {
		delete(ms.added, id)
		ms.add = slices.DeleteFunc(ms.add, func(s string) bool { return s == id })
	}
	ms.removed[id] = true
}

// current lists the members after the operations so far; needs ensureLoaded.
func (ms *memberSet) current() []store.Member {
	var out []store.Member
	for _, id := range sortedKeys(ms.orig) {
		if !ms.removed[id] {
			out = append(out, ms.orig[id])
		}
	}
	for _, id := range ms.add {
		if _, ok := ms.orig[id]; !ok {
			out = append(out, store.Member{UserID: id})
		}
	}
	return out
}

func (ms *memberSet) removeAll() error {
	if err := ms.ensureLoaded(); err != nil {
		return err
	}
	for _, m := range ms.current() {
		ms.removeID(m.UserID)
	}
	return nil
}

// diff returns the adds and removes for store.UpdateGroup. Once loaded it
// leaves out adds of present members and removes of absent ones, so a
// no-op PATCH can skip the write.
func (ms *memberSet) diff() (add, remove []string) {
	for _, id := range ms.add {
		if _, ok := ms.orig[id]; ms.orig == nil || !ok {
			add = append(add, id)
		}
	}
	for _, id := range sortedKeys(ms.removed) {
		if _, ok := ms.orig[id]; keyOK(id) && (ms.orig == nil || ok) {
			remove = append(remove, id)
		}
	}
	return add, remove
}

// apply carries out one operation on "members".
func (ms *memberSet) apply(op string, t target, v any, hasValue bool) error {
	if t.sub != nil {
		return badRequest(errInvalidPath, "members can only be added or removed whole")
	}
	switch {
	case op == "remove" && t.filter != nil:
		if name, val, ok := t.filter.Equality(); ok && strings.TrimPrefix(name, "members.") == "value" {
			ms.removeID(val)
			return nil
		}
		if err := ms.ensureLoaded(); err != nil {
			return err
		}
		for _, m := range ms.current() {
			if t.filter.Matches(ms.view(m), ms.caseExact) {
				ms.removeID(m.UserID)
			}
		}
		return nil
	case t.filter != nil:
		return badRequest(errInvalidPath, "members cannot be %sd through a value filter; use add or remove", op)
	case op == "remove" && (!hasValue || v == nil):
		return ms.removeAll()
	}
	ids, err := memberIDs(v)
	if err != nil {
		return err
	}
	switch op {
	case "remove":
		// Entra: {"op":"Remove","path":"members","value":[{"value":"id"}]}.
		for _, id := range ids {
			ms.removeID(id)
		}
		return nil
	case "replace":
		if err := ms.removeAll(); err != nil {
			return err
		}
	}
	for _, id := range ids {
		ms.addID(id)
	}
	return nil
}

func (ms *memberSet) view(m store.Member) map[string]any {
	v := map[string]any{"value": m.UserID, "type": "User", "$ref": ms.base + "/Users/" + m.UserID}
	if m.UserDisplay != "" {
		v["display"] = m.UserDisplay
	}
	return v
}

// memberIDs validates a members value: an array of (or one) {"value": id}
// objects; only User members are supported.
func memberIDs(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		arr = []any{v}
	}
	ids := make([]string, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, badRequest(errInvalidValue, "members[%d] must be an object with a value", i)
		}
		raw, _ := lookupFold(m, "value")
		id, ok := raw.(string)
		if !ok || id == "" {
			return nil, badRequest(errInvalidValue, "members[%d].value must be a non-empty string", i)
		}
		if !keyOK(id) {
			return nil, badRequest(errInvalidValue, "members[%d].value is not a user id", i)
		}
		if typ, ok := lookupFold(m, "type"); ok && typ != nil {
			if s, _ := typ.(string); !strings.EqualFold(s, "User") {
				return nil, badRequest(errInvalidValue, "members[%d].type: only User members are supported", i)
			}
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
