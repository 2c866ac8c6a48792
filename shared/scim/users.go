package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/learnerlink/learnerlink/shared/store"
)

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	proj := parseProjection(h.users, r.URL.Query())
	ident, err := h.loadUser(r.Context(), id)
	if err != nil {
		return err
	}
	if notModified(r, ident.Version) {
		w.Header().Set("ETag", etag(ident.Version))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return h.respondUser(w, r, http.StatusOK, ident, proj, true)
}

// respondUser renders ident (loading its groups only if they are
// returned) and writes it.
func (h *handler) respondUser(w http.ResponseWriter, r *http.Request, status int, ident *store.Identity, proj projection, mayHaveGroups bool) error {
	res, err := h.renderUser(r.Context(), ident, h.baseURL(r), mayHaveGroups && proj.wants(h.users, "groups"))
	if err != nil {
		return err
	}
	writeResource(w, status, proj.apply(h.users, res), ident.Version)
	return nil
}

// loadUser returns a live identity or a SCIM 404.
func (h *handler) loadUser(ctx context.Context, id string) (*store.Identity, error) {
	if !keyOK(id) {
		return nil, notFound("User not found")
	}
	ident, err := h.st.GetIdentity(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ident.Deleted) {
		return nil, notFound("User %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get identity: %w", err)
	}
	return ident, nil
}

// renderUser builds the SCIM User: stored resource + id + groups + meta.
func (h *handler) renderUser(ctx context.Context, ident *store.Identity, base string, withGroups bool) (map[string]any, error) {
	res, err := decodeResource(ident.Resource)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", ident.ID, err)
	}
	res["id"] = ident.ID
	if withGroups {
		gs, err := h.st.GroupsOf(ctx, ident.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) { // deleted meanwhile: no groups
			return nil, fmt.Errorf("groups of %s: %w", ident.ID, err)
		}
		if len(gs) > 0 {
			groups := make([]any, len(gs))
			for i, g := range gs {
				groups[i] = map[string]any{
					"value":   g.GroupID,
					"display": g.GroupName,
					"$ref":    base + "/Groups/" + g.GroupID,
					"type":    "direct",
				}
			}
			res["groups"] = groups
		}
	}
	res["meta"] = meta("User", base+"/Users/"+ident.ID, ident.Created, ident.Modified, ident.Version)
	return res, nil
}

// userFromBody validates a POST/PUT body into a canonical resource.
func (h *handler) userFromBody(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	body, err := h.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if err := requireSchema(body, URNUser); err != nil {
		return nil, err
	}
	res, err := h.users.normalize(body)
	if err != nil {
		return nil, err
	}
	if _, ok := res["active"]; !ok {
		res["active"] = true
	}
	return res, h.users.checkRequired(res)
}

// fillIdentity copies the indexed fields from res and stores res (with
// its id) as the identity's resource.
func fillIdentity(ident *store.Identity, res map[string]any) error {
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

func (h *handler) createUser(w http.ResponseWriter, r *http.Request) error {
	res, err := h.userFromBody(w, r)
	if err != nil {
		return err
	}
	proj := parseProjection(h.users, r.URL.Query())
	now := h.now()
	ident := &store.Identity{ID: h.cfg.NewID(), Created: now, Modified: now}
	setResourceID(r, ident.ID)
	if err := fillIdentity(ident, res); err != nil {
		return err
	}
	switch err := h.st.CreateIdentity(r.Context(), ident); {
	case errors.Is(err, store.ErrUserNameTaken):
		return errorf(http.StatusConflict, errUniqueness, "userName is already in use by another User")
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, errUniqueness, "generated id is already in use; retry")
	case err != nil:
		return fmt.Errorf("create identity: %w", err)
	}
	if ident.Version == 0 {
		ident.Version = 1
	}
	h.enqueue(r.Context(), "scim.user.create", store.Changed{ID: ident.ID, Version: ident.Version})
	w.Header().Set("Location", h.baseURL(r)+"/Users/"+ident.ID)
	return h.respondUser(w, r, http.StatusCreated, ident, proj, false)
}

func (h *handler) replaceUser(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	res, err := h.userFromBody(w, r)
	if err != nil {
		return err
	}
	ident, err := h.updateUser(r, id, "scim.user.replace", func(*store.Identity) (map[string]any, error) {
		return cloneResource(res), nil
	})
	if err != nil {
		return err
	}
	return h.respondUser(w, r, http.StatusOK, ident, parseProjection(h.users, r.URL.Query()), true)
}

func (h *handler) patchUser(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	ops, err := parsePatch(body)
	if err != nil {
		return err
	}
	ident, err := h.updateUser(r, id, "scim.user.patch", func(cur *store.Identity) (map[string]any, error) {
		res, err := decodeResource(cur.Resource)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", cur.ID, err)
		}
		p := &patcher{rt: h.users, res: res, id: cur.ID}
		for _, o := range ops {
			if err := p.apply(o); err != nil {
				return nil, err
			}
		}
		// Re-validate the whole result: it is what gets stored.
		out, err := h.users.normalize(p.res)
		if err != nil {
			return nil, err
		}
		return out, h.users.checkRequired(out)
	})
	if err != nil {
		return err
	}
	return h.respondUser(w, r, http.StatusOK, ident, parseProjection(h.users, r.URL.Query()), true)
}

// updateUser runs read → build → conditional write, re-reading on a
// concurrent change (unless If-Match pins the version, then 412). A build
// that changes nothing writes nothing and queues nothing.
func (h *handler) updateUser(r *http.Request, id, reason string, build func(cur *store.Identity) (map[string]any, error)) (*store.Identity, error) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		cur, err := h.loadUser(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := checkIfMatch(r, cur.Version); err != nil {
			return nil, err
		}
		res, err := build(cur)
		if err != nil {
			return nil, err
		}
		next := *cur
		if err := fillIdentity(&next, res); err != nil {
			return nil, err
		}
		if sameResource(cur.Resource, res) {
			return cur, nil
		}
		next.Modified = h.now()
		err = h.st.UpdateIdentity(ctx, &next, cur.Version)
		switch {
		case errors.Is(err, store.ErrVersionConflict):
			if attempt < conflictRetries {
				continue
			}
			return nil, errConflict("User")
		case errors.Is(err, store.ErrUserNameTaken):
			return nil, errorf(http.StatusConflict, errUniqueness, "userName is already in use by another User")
		case errors.Is(err, store.ErrNotFound):
			return nil, notFound("User %s not found", id)
		case err != nil:
			return nil, fmt.Errorf("update identity: %w", err)
		}
		if next.Version <= cur.Version {
			next.Version = cur.Version + 1
		}
		h.enqueue(ctx, reason, store.Changed{ID: next.ID, Version: next.Version})
		return &next, nil
	}
}

func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		cur, err := h.loadUser(ctx, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, cur.Version); err != nil {
			return err
		}
		tomb, err := h.st.DeleteIdentity(ctx, id, cur.Version)
		switch {
		case errors.Is(err, store.ErrVersionConflict):
			if attempt < conflictRetries {
				continue
			}
			return errConflict("User")
		case errors.Is(err, store.ErrNotFound):
			return notFound("User %s not found", id)
		case err != nil:
			return fmt.Errorf("delete identity: %w", err)
		}
		v := cur.Version + 1
		if tomb != nil && tomb.Version > cur.Version {
			v = tomb.Version
		}
		h.enqueue(ctx, "scim.user.delete", store.Changed{ID: id, Version: v})
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// cloneResource deep-copies a canonical resource so a retried build starts
// from the request's value, not a previous attempt's.
func cloneResource(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneResource(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// sameResource reports whether the stored resource already equals res, so
// a no-op write (Okta re-sending a deactivate) bumps no version.
func sameResource(stored []byte, res map[string]any) bool {
	cur, err := decodeResource(stored)
	return err == nil && reflect.DeepEqual(cur, res)
}
