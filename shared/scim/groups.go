package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/learnerlink/learnerlink/shared/store"
)

func (h *handler) getGroup(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	proj := parseProjection(h.groups, r.URL.Query())
	g, err := h.loadGroup(r.Context(), id)
	if err != nil {
		return err
	}
	if notModified(r, g.Version) {
		w.Header().Set("ETag", etag(g.Version))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return h.respondGroup(w, r, http.StatusOK, g, proj)
}

// respondGroup renders g, loading members only when they are returned
// (Okta reads groups with excludedAttributes=members).
func (h *handler) respondGroup(w http.ResponseWriter, r *http.Request, status int, g *store.Group, proj projection) error {
	res, err := h.renderGroup(r.Context(), g, h.baseURL(r), proj.wants(h.groups, "members"))
	if err != nil {
		return err
	}
	writeResource(w, status, proj.apply(h.groups, res), g.Version)
	return nil
}

func (h *handler) loadGroup(ctx context.Context, id string) (*store.Group, error) {
	if !keyOK(id) {
		return nil, notFound("Group not found")
	}
	g, err := h.st.GetGroup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("Group %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get group: %w", err)
	}
	return g, nil
}

func (h *handler) renderGroup(ctx context.Context, g *store.Group, base string, withMembers bool) (map[string]any, error) {
	res, err := decodeResource(g.Resource)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", g.ID, err)
	}
	res["id"] = g.ID
	if withMembers {
		ms, err := h.st.Members(ctx, g.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) { // deleted meanwhile: no members
			return nil, fmt.Errorf("members of %s: %w", g.ID, err)
		}
		if len(ms) > 0 {
			members := make([]any, len(ms))
			for i, m := range ms {
				e := map[string]any{"value": m.UserID, "$ref": base + "/Users/" + m.UserID, "type": "User"}
				if m.UserDisplay != "" {
					e["display"] = m.UserDisplay
				}
				members[i] = e
			}
			res["members"] = members
		}
	}
	res["meta"] = meta("Group", base+"/Groups/"+g.ID, g.Created, g.Modified, g.Version)
	return res, nil
}

// groupFromBody validates a POST/PUT body: the group's resource (without
// members) and its member ids.
func (h *handler) groupFromBody(w http.ResponseWriter, r *http.Request) (map[string]any, []string, error) {
	body, err := h.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	if err := requireSchema(body, URNGroup); err != nil {
		return nil, nil, err
	}
	raw, _ := lookupFold(body, "members")
	if _, ok := raw.(map[string]any); ok {
		return nil, nil, badRequest(errInvalidValue, "members must be an array")
	}
	ids, err := memberIDs(raw)
	if err != nil {
		return nil, nil, err
	}
	res, err := h.groups.normalize(body)
	if err != nil {
		return nil, nil, err
	}
	delete(res, "members")
	return res, ids, h.groups.checkRequired(res)
}

func fillGroup(g *store.Group, res map[string]any) error {
	res["id"] = g.ID
	g.DisplayName, _ = res["displayName"].(string)
	g.ExternalID, _ = res["externalId"].(string)
	raw, err := encodeResource(res)
	if err != nil {
		return err
	}
	g.Resource = raw
	return nil
}

// groupWriteError maps the store's group-write errors to SCIM answers.
func groupWriteError(err error, op string) error {
	if mm, ok := errors.AsType[*store.MissingMembersError](err); ok {
		return badRequest(errInvalidValue, "members not found: %s", strings.Join(mm.IDs, ", "))
	}
	if errors.Is(err, store.ErrDisplayNameTaken) {
		return errorf(http.StatusConflict, errUniqueness, "displayName is already in use by another Group")
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (h *handler) createGroup(w http.ResponseWriter, r *http.Request) error {
	res, ids, err := h.groupFromBody(w, r)
	if err != nil {
		return err
	}
	now := h.now()
	g := &store.Group{ID: h.cfg.NewID(), Created: now, Modified: now}
	setResourceID(r, g.ID)
	if err := fillGroup(g, res); err != nil {
		return err
	}
	changed, err := h.st.CreateGroup(r.Context(), g, ids)
	switch {
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, errUniqueness, "generated id is already in use; retry")
	case err != nil:
		return groupWriteError(err, "create group")
	}
	if g.Version == 0 {
		g.Version = 1
	}
	h.enqueue(r.Context(), "scim.group.create", changed...)
	w.Header().Set("Location", h.baseURL(r)+"/Groups/"+g.ID)
	return h.respondGroup(w, r, http.StatusCreated, g, parseProjection(h.groups, r.URL.Query()))
}

func (h *handler) replaceGroup(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	res, ids, err := h.groupFromBody(w, r)
	if err != nil {
		return err
	}
	g, err := h.updateGroup(r, id, "scim.group.replace", func(cur *store.Group, ms *memberSet) (map[string]any, error) {
		if err := ms.removeAll(); err != nil {
			return nil, err
		}
		for _, m := range ids {
			ms.addID(m)
		}
		return cloneResource(res), nil
	})
	if err != nil {
		return err
	}
	return h.respondGroup(w, r, http.StatusOK, g, parseProjection(h.groups, r.URL.Query()))
}

func (h *handler) patchGroup(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	ops, err := parsePatch(body)
	if err != nil {
		return err
	}
	g, err := h.updateGroup(r, id, "scim.group.patch", func(cur *store.Group, ms *memberSet) (map[string]any, error) {
		res, err := decodeResource(cur.Resource)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", cur.ID, err)
		}
		p := &patcher{rt: h.groups, res: res, id: cur.ID, members: ms}
		for _, o := range ops {
			if err := p.apply(o); err != nil {
				return nil, err
			}
		}
		out, err := h.groups.normalize(p.res)
		if err != nil {
			return nil, err
		}
		return out, h.groups.checkRequired(out)
	})
	if err != nil {
		return err
	}
	// 204 spares re-reading a possibly large member list (RFC 7644
	// §3.5.2 allows it; Okta and Entra accept it). A client asking for
	// attributes gets the resource.
	q := r.URL.Query()
	if !q.Has("attributes") && !q.Has("excludedAttributes") {
		w.Header().Set("ETag", etag(g.Version))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return h.respondGroup(w, r, http.StatusOK, g, parseProjection(h.groups, q))
}

// updateGroup is updateUser for groups: build edits a fresh memberSet and
// returns the new resource; nothing changed means nothing written.
func (h *handler) updateGroup(r *http.Request, id, reason string, build func(cur *store.Group, ms *memberSet) (map[string]any, error)) (*store.Group, error) {
	ctx := r.Context()
	base := h.baseURL(r)
	for attempt := 0; ; attempt++ {
		cur, err := h.loadGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := checkIfMatch(r, cur.Version); err != nil {
			return nil, err
		}
		ms := newMemberSet(ctx, h.groups, base, func(ctx context.Context) ([]store.Member, error) {
			m, err := h.st.Members(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, notFound("Group %s not found", id)
			}
			if err != nil {
				return nil, fmt.Errorf("members of %s: %w", id, err)
			}
			return m, nil
		})
		res, err := build(cur, ms)
		if err != nil {
			return nil, err
		}
		next := *cur
		if err := fillGroup(&next, res); err != nil {
			return nil, err
		}
		add, remove := ms.diff()
		if len(add) == 0 && len(remove) == 0 && sameResource(cur.Resource, res) {
			return cur, nil
		}
		next.Modified = h.now()
		changed, err := h.st.UpdateGroup(ctx, &next, cur.Version, add, remove)
		switch {
		case errors.Is(err, store.ErrVersionConflict):
			if attempt < conflictRetries {
				continue
			}
			return nil, errConflict("Group")
		case errors.Is(err, store.ErrNotFound) && !isMissingMembers(err):
			return nil, notFound("Group %s not found", id)
		case err != nil:
			return nil, groupWriteError(err, "update group")
		}
		if next.Version <= cur.Version {
			next.Version = cur.Version + 1
		}
		h.enqueue(ctx, reason, changed...)
		return &next, nil
	}
}

func isMissingMembers(err error) bool {
	_, ok := errors.AsType[*store.MissingMembersError](err)
	return ok
}

func (h *handler) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	ctx := r.Context()
	g, err := h.loadGroup(ctx, id)
	if err != nil {
		return err
	}
	// DeleteGroup takes no expected version, so If-Match is checked on the
	// read just before; a write in between is not detected.
	if err := checkIfMatch(r, g.Version); err != nil {
		return err
	}
	changed, err := h.st.DeleteGroup(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("Group %s not found", id)
	case err != nil:
		return fmt.Errorf("delete group: %w", err)
	}
	h.enqueue(ctx, "scim.group.delete", changed...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
