package scimout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// ManagedPrefix starts the externalId of every group the connector
// creates; SetGroups only removes learners from such groups and from
// Config.ManagedGroups.
const ManagedPrefix = "learnerlink:"

// maxMembersPerPatch bounds the members one PATCH adds or removes (as
// awslabs/ssosync does against AWS IAM Identity Center).
const maxMembersPerPatch = 100

// groupRef is a target group we resolved.
type groupRef struct {
	id, name string
	managed  bool
}

// groupMeta is what we know of a group id seen in a user's groups.
type groupMeta struct {
	managed bool
}

func groupPath(id string) string { return "/Groups/" + url.PathEscape(id) }

// setGroups makes learnerID a member of exactly groups among the groups
// learnerlink manages: it joins each named group (created, with externalId
// "learnerlink:<name>", if missing) and leaves the managed groups it is no
// longer named in. Membership is read from the user's "groups" attribute;
// a server that omits it is taken to mean "no groups", and then only
// Config.ManagedGroups are left, blindly.
func (c *Connector) setGroups(ctx context.Context, learnerID string, groups []string) error {
	const op = "scimout.groups"
	if err := c.groupsOK(op); err != nil {
		return err
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	want := map[string]string{} // folded → as given
	for _, g := range groups {
		if g = strings.TrimSpace(g); g != "" {
			if _, dup := want[fold(g)]; !dup {
				want[fold(g)] = g
			}
		}
	}
	res, err := c.getUser(ctx, op, learnerID)
	if err != nil {
		return err
	}
	current, listed := userGroups(res)

	keep := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, err := c.ensureGroup(ctx, op, want[k])
		if err != nil {
			return err
		}
		keep[g.id] = true
		if _, member := current[g.id]; member {
			continue
		}
		if err := c.changeMembers(ctx, op, caps, g, []string{learnerID}, nil); err != nil {
			return err
		}
	}
	if listed {
		for _, id := range slices.Sorted(maps.Keys(current)) {
			if keep[id] {
				continue
			}
			managed, name, err := c.isManaged(ctx, op, id, current[id])
			if err != nil {
				return err
			}
			if managed {
				if err := c.changeMembers(ctx, op, caps, groupRef{id: id, name: name, managed: true}, nil, []string{learnerID}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(c.managed)) {
		if _, wanted := want[name]; wanted {
			continue
		}
		g, ok, err := c.findGroup(ctx, op, name)
		if err != nil {
			return err
		}
		if ok && !keep[g.id] {
			if err := c.changeMembers(ctx, op, caps, g, nil, []string{learnerID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddMembers adds learners to the named group (created if missing),
// PATCHing at most 100 members per request.
func (c *Connector) AddMembers(ctx context.Context, group string, learnerIDs []string) error {
	const op = "scimout.groups"
	if err := c.groupsOK(op); err != nil {
		return err
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	g, err := c.ensureGroup(ctx, op, group)
	if err != nil {
		return err
	}
	return c.changeMembers(ctx, op, caps, g, learnerIDs, nil)
}

// RemoveMembers removes learners from the named group (nothing to do if
// it does not exist), at most 100 per request.
func (c *Connector) RemoveMembers(ctx context.Context, group string, learnerIDs []string) error {
	const op = "scimout.groups"
	if err := c.groupsOK(op); err != nil {
		return err
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	g, ok, err := c.findGroup(ctx, op, group)
	if err != nil || !ok {
		return err
	}
	return c.changeMembers(ctx, op, caps, g, nil, learnerIDs)
}

func (c *Connector) groupsOK(op string) error {
	if !c.cfg.Profile.GroupsSupported {
		return &connector.Error{Op: op, Err: fmt.Errorf("profile %s does not support groups", c.cfg.Profile.Name)}
	}
	return nil
}

// userGroups reads a user's "groups" (id → display); listed is false when
// the attribute is absent.
func userGroups(res map[string]any) (map[string]string, bool) {
	v, listed := getFold(res, "groups")
	out := map[string]string{}
	arr, _ := v.([]any)
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		id, _ := getFold(m, "value")
		d, _ := getFold(m, "display")
		ids, _ := id.(string)
		ds, _ := d.(string)
		if ids != "" {
			out[ids] = ds
		}
	}
	return out, listed
}

// ensureGroup finds the group by displayName or creates it.
func (c *Connector) ensureGroup(ctx context.Context, op, name string) (groupRef, error) {
	for attempt := 0; ; attempt++ {
		g, ok, err := c.findGroup(ctx, op, name)
		if err != nil || ok {
			return g, err
		}
		body := map[string]any{"schemas": []string{URNGroup}, "displayName": name, "externalId": ManagedPrefix + name}
		var out map[string]any
		_, err = c.do(ctx, call{op: op, method: http.MethodPost, path: "/Groups", body: body, secrets: []string{name}}, &out)
		var ce *connector.Error
		if errors.As(err, &ce) && ce.Conflict && attempt == 0 {
			continue // created concurrently: find it
		}
		if err != nil {
			return groupRef{}, err
		}
		g = groupRef{id: idOf(out), name: name, managed: true}
		if g.id == "" {
			return groupRef{}, &connector.Error{Op: op, Err: errors.New("created group has no id")}
		}
		c.log.LogAttrs(ctx, slog.LevelInfo, "scimout: created group", slog.String("profile", c.cfg.Profile.Name), slog.String("group_id", g.id))
		c.cacheGroup(g)
		return g, nil
	}
}

// findGroup looks a group up by displayName (cached).
func (c *Connector) findGroup(ctx context.Context, op, name string) (groupRef, bool, error) {
	c.mu.Lock()
	g, ok := c.groups[fold(name)]
	c.mu.Unlock()
	if ok {
		return g, true, nil
	}
	var lr listResponse
	if _, err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/Groups", secrets: []string{name}, query: [][2]string{
		{"filter", eqFilter("displayName", name)}, {"excludedAttributes", "members"},
	}}, &lr); err != nil {
		return groupRef{}, false, err
	}
	var hits []groupRef
	for _, r := range lr.Resources {
		d, _ := getFold(r, "displayName")
		ds, _ := d.(string)
		if !strings.EqualFold(ds, name) {
			continue // a server that ignored the filter
		}
		ext, _ := getFold(r, "externalId")
		es, _ := ext.(string)
		hits = append(hits, groupRef{id: idOf(r), name: ds, managed: strings.HasPrefix(es, ManagedPrefix) || c.managed[fold(ds)]})
	}
	switch len(hits) {
	case 0:
		return groupRef{}, false, nil
	case 1:
		c.cacheGroup(hits[0])
		return hits[0], true, nil
	}
	return groupRef{}, false, &connector.Error{Op: op, Conflict: true, Err: fmt.Errorf("%d groups share one displayName", len(hits))}
}

// isManaged says whether learnerlink may remove members from group id.
func (c *Connector) isManaged(ctx context.Context, op, id, display string) (bool, string, error) {
	if display != "" && c.managed[fold(display)] {
		return true, display, nil
	}
	c.mu.Lock()
	meta, ok := c.groupIDs[id]
	c.mu.Unlock()
	if ok {
		return meta.managed, display, nil
	}
	var res map[string]any
	_, err := c.do(ctx, call{op: op, method: http.MethodGet, path: groupPath(id), query: [][2]string{{"excludedAttributes", "members"}}}, &res)
	if connector.IsNotFound(err) {
		return false, display, nil
	}
	if err != nil {
		return false, display, err
	}
	ext, _ := getFold(res, "externalId")
	es, _ := ext.(string)
	d, _ := getFold(res, "displayName")
	ds, _ := d.(string)
	managed := strings.HasPrefix(es, ManagedPrefix) || c.managed[fold(ds)]
	c.mu.Lock()
	if len(c.groupIDs) >= maxGroupCache {
		clear(c.groupIDs)
	}
	c.groupIDs[id] = groupMeta{managed: managed}
	c.mu.Unlock()
	return managed, ds, nil
}

func (c *Connector) cacheGroup(g groupRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.groups) >= maxGroupCache {
		clear(c.groups)
	}
	c.groups[fold(g.name)] = g
	if len(c.groupIDs) >= maxGroupCache {
		clear(c.groupIDs)
	}
	c.groupIDs[g.id] = groupMeta{managed: g.managed}
}

func (c *Connector) forgetGroup(g groupRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, fold(g.name))
	delete(c.groupIDs, g.id)
}

// changeMembers adds and removes members of g: PATCH in chunks of at most
// 100 when supported, else one read-modify-PUT. A 404 (the cached group
// was deleted) forgets it and, for adds, resolves the name once more.
func (c *Connector) changeMembers(ctx context.Context, op string, caps capabilities, g groupRef, add, remove []string) error {
	for attempt := 0; ; attempt++ {
		var err error
		if caps.patch {
			err = c.patchMembers(ctx, op, g.id, add, remove)
		} else {
			err = c.putMembers(ctx, op, caps, g.id, add, remove)
		}
		if !connector.IsNotFound(err) || attempt > 0 {
			return err
		}
		c.forgetGroup(g)
		if len(add) == 0 {
			return nil // the group is gone: nobody is in it
		}
		if g, err = c.ensureGroup(ctx, op, g.name); err != nil {
			return err
		}
	}
}

func (c *Connector) patchMembers(ctx context.Context, op, groupID string, add, remove []string) error {
	for chunk := range slices.Chunk(add, maxMembersPerPatch) {
		vals := make([]map[string]string, len(chunk))
		for i, id := range chunk {
			vals[i] = map[string]string{"value": id}
		}
		body := newPatch([]patchOp{{Op: "add", Path: "members", Value: vals}})
		if _, err := c.do(ctx, call{op: op, method: http.MethodPatch, path: groupPath(groupID), body: body, ignoreBody: true}, nil); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(remove, maxMembersPerPatch) {
		ops := make([]patchOp, len(chunk))
		for i, id := range chunk {
			ops[i] = patchOp{Op: "remove", Path: "members[value eq " + quote(id) + "]"}
		}
		if _, err := c.do(ctx, call{op: op, method: http.MethodPatch, path: groupPath(groupID), body: newPatch(ops), ignoreBody: true}, nil); err != nil {
			return err
		}
	}
	return nil
}

// putMembers is the fallback for servers without PATCH: read the group,
// change its member list, PUT it back (If-Match when ETags are supported,
// re-applied once on 412).
func (c *Connector) putMembers(ctx context.Context, op string, caps capabilities, groupID string, add, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		var res map[string]any
		resp, err := c.do(ctx, call{op: op, method: http.MethodGet, path: groupPath(groupID)}, &res)
		if err != nil {
			return err
		}
		version := versionOf(res, resp.header)
		v, _ := getFold(res, "members")
		arr, _ := v.([]any)
		drop := map[string]bool{}
		for _, id := range remove {
			drop[id] = true
		}
		have := map[string]bool{}
		members := make([]any, 0, len(arr)+len(add))
		for _, e := range arr {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			idv, _ := getFold(m, "value")
			id, _ := idv.(string)
			if id == "" || drop[id] || have[id] {
				continue
			}
			have[id] = true
			members = append(members, map[string]any{"value": id})
		}
		for _, id := range add {
			if !have[id] && !drop[id] {
				have[id] = true
				members = append(members, map[string]any{"value": id})
			}
		}
		body := map[string]any{"schemas": []string{URNGroup}, "id": groupID, "members": members}
		for _, k := range []string{"displayName", "externalId"} {
			if v, ok := getFold(res, k); ok {
				body[k] = v
			}
		}
		cl := call{op: op, method: http.MethodPut, path: groupPath(groupID), body: body, ignoreBody: true}
		if caps.etag {
			cl.ifMatch = version
		}
		resp, err = c.do(ctx, cl, nil)
		if err == nil || resp == nil || resp.status != http.StatusPreconditionFailed || attempt > 0 {
			return err
		}
	}
}
