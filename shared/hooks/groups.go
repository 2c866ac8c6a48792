package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

// groupIndexKind: "hookgroup/<externalId>" → store group id. The store
// finds groups by id or displayName only; the index finds a group the
// hooks made (or first matched by name) again after it is renamed in Okta.
const groupIndexKind = "hookgroup"

// membership adds or removes members of the group known to Okta as
// extID (named name when created), renaming it to name if canRename and
// Okta renamed it.
func (b *batch) membership(ctx context.Context, ev *event, log *slog.Logger, extID, name string, canRename bool, members []string, add bool) (string, error) {
	g, err := b.resolveGroup(ctx, log, extID, name, add)
	if err != nil || g == nil {
		return resIgnored, err
	}
	return b.updateGroup(ctx, ev, log, g, name, canRename, members, add)
}

// groupProfile handles group.profile.update: a group the hooks know (or
// one of the new name) takes Okta's name. A rename changes every member's
// desired state: the store bumps them all and each gets an intent, as for
// a rename pushed over SCIM. Unknown groups are not created.
func (b *batch) groupProfile(ctx context.Context, ev *event, log *slog.Logger) (string, error) {
	gt, ok := ev.targetOf("UserGroup")
	if !ok || gt.DisplayName == "" {
		log.InfoContext(ctx, "hooks: event names no UserGroup target with a name; ignored")
		return resIgnored, nil
	}
	g, err := b.resolveGroup(ctx, log, gt.ID, gt.DisplayName, false)
	if err != nil || g == nil {
		return resIgnored, err
	}
	return b.updateGroup(ctx, ev, log, g, gt.DisplayName, true, nil, false)
}

// updateGroup applies a membership change and/or a rename to g, re-reading
// it on a concurrent change, and records an intent per changed identity.
func (b *batch) updateGroup(ctx context.Context, ev *event, log *slog.Logger, g *store.Group, name string, canRename bool, members []string, add bool) (string, error) {
	rename := canRename && g.DisplayName != name
	for attempt := 0; ; attempt++ {
		next := *g
		if rename {
			if err := renameGroup(&next, name); err != nil {
				return "", err
			}
		}
		var addIDs, removeIDs []string
		if add {
			addIDs = members
		} else {
			removeIDs = members
		}
		changed, err := b.h.st.UpdateGroup(ctx, &next, g.Version, addIDs, removeIDs)
		if mm, ok := errors.AsType[*store.MissingMembersError](err); ok && attempt < conflictRetries {
			// Deleted meanwhile: apply to the others.
			members = slices.DeleteFunc(members, func(id string) bool { return slices.Contains(mm.IDs, id) })
			if len(members) == 0 {
				return resIgnored, nil
			}
			continue
		}
		switch {
		case errors.Is(err, store.ErrVersionConflict) && attempt < conflictRetries:
			if g, err = b.h.st.GetGroup(ctx, g.ID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return resIgnored, nil
				}
				return "", fmt.Errorf("re-read group: %w", err)
			}
			rename = rename && g.DisplayName != name
			continue
		case errors.Is(err, store.ErrDisplayNameTaken) && rename:
			log.WarnContext(ctx, "hooks: the group's new name is taken by another group; keeping the old name", "group", g.ID)
			rename = false
			continue
		case errors.Is(err, store.ErrNotFound):
			return resIgnored, nil
		case err != nil:
			return "", fmt.Errorf("update group %s: %w", g.ID, err)
		}
		for _, c := range changed {
			b.intent(ev, c)
		}
		if len(changed) == 0 && !rename {
			return resUnchanged, nil
		}
		log.InfoContext(ctx, "hooks: group changed", "group", g.ID, "renamed", rename, "add", add, "identities", len(changed))
		return resApplied, nil
	}
}

// resolveGroup finds the group for extID (index, then displayName) or,
// if create, creates it. nil means there is none.
func (b *batch) resolveGroup(ctx context.Context, log *slog.Logger, extID, name string, create bool) (*store.Group, error) {
	idxKey := groupIndexKind + "/" + extID
	var idxVersion int64
	switch d, err := b.h.st.GetDoc(ctx, idxKey); {
	case err == nil:
		idxVersion = d.Version
		g, err := b.h.st.GetGroup(ctx, string(d.Value))
		if err == nil {
			return g, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get group: %w", err)
		}
		// The group was deleted (e.g. by Okta's Push Groups): look again.
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("group index: %w", err)
	}
	for attempt := 0; ; attempt++ {
		g, err := b.h.st.GetGroupByDisplayName(ctx, name)
		if err == nil {
			b.index(ctx, log, idxKey, g.ID, idxVersion)
			return g, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get group by name: %w", err)
		}
		if !create {
			return nil, nil
		}
		now := b.h.cfg.Now().UTC()
		g = &store.Group{ID: b.h.cfg.NewID(), DisplayName: name, ExternalID: extID, Created: now, Modified: now}
		raw, err := encodeResource(map[string]any{"schemas": []any{scim.URNGroup}, "id": g.ID, "displayName": name, "externalId": extID})
		if err != nil {
			return nil, err
		}
		g.Resource = raw
		_, err = b.h.st.CreateGroup(ctx, g, nil)
		switch {
		case (errors.Is(err, store.ErrDisplayNameTaken) || errors.Is(err, store.ErrExists)) && attempt < conflictRetries:
			continue // created concurrently (or an id clash): look again
		case err != nil:
			return nil, fmt.Errorf("create group: %w", err)
		}
		if g.Version == 0 {
			g.Version = 1
		}
		log.InfoContext(ctx, "hooks: group created", "group", g.ID)
		b.index(ctx, log, idxKey, g.ID, idxVersion)
		return g, nil
	}
}

func (b *batch) index(ctx context.Context, log *slog.Logger, key, groupID string, version int64) {
	err := b.h.st.PutDoc(ctx, &store.Doc{Key: key, Value: []byte(groupID)}, version)
	if err != nil && !errors.Is(err, store.ErrVersionConflict) {
		log.WarnContext(ctx, "hooks: could not index the group", "group", groupID, "error", err.Error())
	}
}

// renameGroup sets the displayName in the group and its stored resource.
func renameGroup(g *store.Group, name string) error {
	res, err := decodeResource(g.Resource)
	if err != nil {
		return fmt.Errorf("group %s: %w", g.ID, err)
	}
	res["displayName"] = name
	g.DisplayName = name
	if g.Resource, err = encodeResource(res); err != nil {
		return err
	}
	return nil
}
