package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// What became of an event, for the delivery's log line.
const (
	resApplied   = "applied"   // desired state changed
	resUnchanged = "unchanged" // handled; it was already so
	resDuplicate = "duplicate" // uuid seen before
	resIgnored   = "ignored"   // not ours, unknown user, unhandled type…
)

// lookup is a cached Directory answer.
type lookup struct {
	u    *okta.User
	full bool
}

// batch is one delivery being applied.
type batch struct {
	h           *handler
	dirDeadline time.Time         // end of the Directory budget
	users       map[string]lookup // Directory answers by Okta id
	intents     []queue.Intent
}

// handle applies one event unless its uuid was seen, then records it.
func (b *batch) handle(ctx context.Context, ev *event) (string, error) {
	log := b.h.log.With("event_uuid", ev.UUID, "event_type", ev.EventType)
	key := seenKind + "/" + ev.UUID
	switch _, err := b.h.st.GetDoc(ctx, key); {
	case err == nil:
		log.DebugContext(ctx, "hooks: duplicate delivery of an event; skipped")
		return resDuplicate, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("event %s: seen check: %w", ev.UUID, err)
	}
	res, err := b.apply(ctx, ev, log)
	if err != nil {
		return "", fmt.Errorf("event %s (%s): %w", ev.UUID, ev.EventType, err)
	}
	doc := &store.Doc{Key: key, Value: []byte(ev.EventType), Expires: b.h.cfg.Now().Add(b.h.cfg.DedupTTL)}
	if err := b.h.st.PutDoc(ctx, doc, 0); err != nil && !errors.Is(err, store.ErrVersionConflict) {
		// Applied but not recorded: a redelivery re-applies it, harmlessly.
		log.WarnContext(ctx, "hooks: could not record the event as seen", "error", err.Error())
	}
	return res, nil
}

func (b *batch) apply(ctx context.Context, ev *event, log *slog.Logger) (string, error) {
	if !ev.succeeded() {
		log.DebugContext(ctx, "hooks: event outcome is not SUCCESS; ignored")
		return resIgnored, nil
	}
	switch ev.EventType {
	case "user.lifecycle.create", "user.lifecycle.activate":
		return b.upsertUser(ctx, ev, log)
	case "user.lifecycle.deactivate", "user.lifecycle.suspend":
		return b.setActive(ctx, ev, log, false)
	case "user.lifecycle.unsuspend", "user.lifecycle.reactivate":
		return b.setActive(ctx, ev, log, true)
	case "user.lifecycle.delete.initiated":
		return b.deleteUser(ctx, ev, log)
	case "user.account.update_profile":
		return b.refreshProfile(ctx, ev, log)
	case "group.user_membership.add", "group.user_membership.remove":
		return b.groupMembership(ctx, ev, log, ev.EventType == "group.user_membership.add")
	case "group.profile.update":
		return b.groupProfile(ctx, ev, log)
	case "application.user_membership.add", "application.user_membership.remove":
		return b.appMembership(ctx, ev, log, ev.EventType == "application.user_membership.add")
	case "user.account.privilege.grant", "user.account.privilege.revoke":
		return b.privilege(ctx, ev, log, ev.EventType == "user.account.privilege.grant")
	}
	log.DebugContext(ctx, "hooks: event type not handled; ignored")
	return resIgnored, nil
}

// identities finds the live identities of the event's User target.
func (b *batch) identities(ctx context.Context, ev *event, log *slog.Logger) (target, []*store.Identity, error) {
	t, ok := ev.targetOf("User")
	if !ok {
		log.InfoContext(ctx, "hooks: event names no User target; ignored")
		return t, nil, nil
	}
	ids, err := b.h.st.FindIdentitiesByExternalID(ctx, t.ID)
	if err != nil {
		return t, nil, fmt.Errorf("find identities: %w", err)
	}
	if len(ids) == 0 {
		log.DebugContext(ctx, "hooks: no identity for this Okta user; ignored (SCIM or reconciliation will create it)", "okta_user", t.ID)
	}
	return t, ids, nil
}

// profile asks the Directory for the user within the delivery's budget.
// On a timeout or error it falls back to what the event says (login and
// display name; full is false). A user Okta no longer has is nil.
func (b *batch) profile(ctx context.Context, t target, log *slog.Logger) (*okta.User, bool) {
	fallback := &okta.User{ID: t.ID, Profile: okta.Profile{Login: t.AlternateID, DisplayName: t.DisplayName}}
	if t.AlternateID == "unknown" {
		fallback.Profile.Login = ""
	}
	if b.h.dir == nil {
		return fallback, false
	}
	if l, ok := b.users[t.ID]; ok {
		return l.u, l.full
	}
	left := time.Until(b.dirDeadline)
	if left <= 0 {
		log.WarnContext(ctx, "hooks: directory budget spent; recording what the event says", "okta_user", t.ID)
		return fallback, false
	}
	cctx, cancel := context.WithTimeout(ctx, min(b.h.cfg.DirectoryTimeout, left))
	defer cancel()
	u, err := b.h.dir.GetUser(cctx, t.ID)
	switch {
	case err == nil && u != nil:
		if u.ID == "" {
			u.ID = t.ID
		}
		b.users[t.ID] = lookup{u: u, full: true}
		return u, true
	case errors.Is(err, okta.ErrNotFound):
		b.users[t.ID] = lookup{}
		return nil, false
	}
	log.WarnContext(ctx, "hooks: directory look-up failed; recording what the event says, reconciliation fills the rest",
		"okta_user", t.ID, "error", fmt.Sprint(err))
	b.users[t.ID] = lookup{u: fallback}
	return fallback, false
}

func (b *batch) intent(ev *event, c store.Changed) {
	b.intents = append(b.intents, queue.Intent{IdentityID: c.ID, Version: c.Version, Reason: "hook." + ev.EventType, RequestID: ev.UUID})
}

// combine folds per-identity results: applied wins over unchanged.
func combine(results ...string) string {
	out := resIgnored
	for _, r := range results {
		switch r {
		case resApplied:
			return resApplied
		case resUnchanged:
			out = resUnchanged
		}
	}
	return out
}

// upsertUser handles create/activate: an unknown user is created from the
// Directory's profile (without a Directory it is left to SCIM); known
// ones are made active and their profile refreshed.
func (b *batch) upsertUser(ctx context.Context, ev *event, log *slog.Logger) (string, error) {
	t, ids, err := b.identities(ctx, ev, log)
	if err != nil || t.ID == "" {
		return resIgnored, err
	}
	if len(ids) == 0 {
		if b.h.dir == nil {
			return resIgnored, nil
		}
		_, res, err := b.create(ctx, ev, t, log)
		return res, err
	}
	var u *okta.User
	full := false
	if b.h.dir != nil {
		u, full = b.profile(ctx, t, log)
	}
	var results []string
	for _, id := range ids {
		r, err := b.update(ctx, ev, id, log, func(res map[string]any, keepUserName bool) {
			res["active"] = true
			if u != nil {
				applyProfile(res, u.Profile, !full, keepUserName)
			}
		})
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	return combine(results...), nil
}

// create stores a new identity for the target user.
func (b *batch) create(ctx context.Context, ev *event, t target, log *slog.Logger) (*store.Identity, string, error) {
	u, full := b.profile(ctx, t, log)
	if u == nil {
		log.InfoContext(ctx, "hooks: Okta no longer has this user; not created", "okta_user", t.ID)
		return nil, resIgnored, nil
	}
	if u.Profile.Login == "" {
		log.WarnContext(ctx, "hooks: no login known for this user; not created (reconciliation will)", "okta_user", t.ID)
		return nil, resIgnored, nil
	}
	res := newResource(u, !full)
	for attempt := 0; ; attempt++ {
		now := b.h.cfg.Now().UTC()
		ident := &store.Identity{ID: b.h.cfg.NewID(), Created: now, Modified: now}
		if err := fill(ident, res); err != nil {
			return nil, "", err
		}
		err := b.h.st.CreateIdentity(ctx, ident)
		switch {
		case errors.Is(err, store.ErrExists) && attempt < conflictRetries:
			continue // generated id taken: draw another
		case errors.Is(err, store.ErrUserNameTaken):
			log.WarnContext(ctx, "hooks: another identity already has this user's userName; not created", "okta_user", t.ID)
			return nil, resIgnored, nil
		case err != nil:
			return nil, "", fmt.Errorf("create identity: %w", err)
		}
		if ident.Version == 0 {
			ident.Version = 1
		}
		log.InfoContext(ctx, "hooks: identity created", "identity", ident.ID, "okta_user", t.ID, "full_profile", full)
		b.intent(ev, store.Changed{ID: ident.ID, Version: ident.Version})
		return ident, resApplied, nil
	}
}

// update runs read → mutate → conditional write on one identity,
// re-reading on a concurrent change. A mutation that changes nothing
// writes nothing. If the new userName belongs to another identity the
// rest is still applied (keepUserName).
func (b *batch) update(ctx context.Context, ev *event, cur *store.Identity, log *slog.Logger, mutate func(res map[string]any, keepUserName bool)) (string, error) {
	keepUserName := false
	for attempt := 0; ; attempt++ {
		if cur.Deleted {
			return resIgnored, nil
		}
		res, err := decodeResource(cur.Resource)
		if err != nil {
			return "", fmt.Errorf("identity %s: %w", cur.ID, err)
		}
		before, err := encodeResource(res)
		if err != nil {
			return "", err
		}
		mutate(res, keepUserName)
		next := *cur
		if err := fill(&next, res); err != nil {
			return "", err
		}
		if bytes.Equal(before, next.Resource) {
			return resUnchanged, nil
		}
		next.Modified = b.h.cfg.Now().UTC()
		err = b.h.st.UpdateIdentity(ctx, &next, cur.Version)
		switch {
		case errors.Is(err, store.ErrVersionConflict) && attempt < conflictRetries:
			if cur, err = b.h.st.GetIdentity(ctx, cur.ID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return resIgnored, nil
				}
				return "", fmt.Errorf("re-read identity: %w", err)
			}
			continue
		case errors.Is(err, store.ErrUserNameTaken) && !keepUserName:
			log.WarnContext(ctx, "hooks: the new login is another identity's userName; keeping the old one", "identity", cur.ID)
			keepUserName = true
			continue
		case errors.Is(err, store.ErrNotFound):
			return resIgnored, nil
		case err != nil:
			return "", fmt.Errorf("update identity %s: %w", cur.ID, err)
		}
		if next.Version <= cur.Version {
			next.Version = cur.Version + 1
		}
		log.InfoContext(ctx, "hooks: identity updated", "identity", cur.ID)
		b.intent(ev, store.Changed{ID: next.ID, Version: next.Version})
		return resApplied, nil
	}
}

func (b *batch) setActive(ctx context.Context, ev *event, log *slog.Logger, active bool) (string, error) {
	_, ids, err := b.identities(ctx, ev, log)
	if err != nil {
		return "", err
	}
	return b.setActiveOn(ctx, ev, ids, log, active)
}

func (b *batch) setActiveOn(ctx context.Context, ev *event, ids []*store.Identity, log *slog.Logger, active bool) (string, error) {
	var results []string
	for _, id := range ids {
		r, err := b.update(ctx, ev, id, log, func(res map[string]any, _ bool) { res["active"] = active })
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	return combine(results...), nil
}

// deleteUser tombstones the identities (the learner is deactivated, not
// deleted, by the worker).
func (b *batch) deleteUser(ctx context.Context, ev *event, log *slog.Logger) (string, error) {
	_, ids, err := b.identities(ctx, ev, log)
	if err != nil {
		return "", err
	}
	var results []string
	for _, cur := range ids {
		r := resIgnored
		for attempt := 0; ; attempt++ {
			tomb, err := b.h.st.DeleteIdentity(ctx, cur.ID, cur.Version)
			if errors.Is(err, store.ErrVersionConflict) && attempt < conflictRetries {
				if cur, err = b.h.st.GetIdentity(ctx, cur.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
					return "", fmt.Errorf("re-read identity: %w", err)
				}
				if err != nil || cur.Deleted {
					break
				}
				continue
			}
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("delete identity %s: %w", cur.ID, err)
			}
			v := cur.Version + 1
			if tomb != nil && tomb.Version > cur.Version {
				v = tomb.Version
			}
			log.InfoContext(ctx, "hooks: identity deleted (tombstone)", "identity", cur.ID)
			b.intent(ev, store.Changed{ID: cur.ID, Version: v})
			r = resApplied
			break
		}
		results = append(results, r)
	}
	return combine(results...), nil
}

// refreshProfile re-reads the Okta profile into the identity's SCIM
// attributes.
func (b *batch) refreshProfile(ctx context.Context, ev *event, log *slog.Logger) (string, error) {
	t, ids, err := b.identities(ctx, ev, log)
	if err != nil || len(ids) == 0 {
		return resIgnored, err
	}
	u, full := b.profile(ctx, t, log)
	if u == nil {
		return resIgnored, nil
	}
	var results []string
	for _, id := range ids {
		r, err := b.update(ctx, ev, id, log, func(res map[string]any, keepUserName bool) {
			applyProfile(res, u.Profile, !full, keepUserName)
		})
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	return combine(results...), nil
}

func identityIDs(ids []*store.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.ID
	}
	return out
}

// groupMembership mirrors an Okta group membership change; the group is
// created (named as in Okta) on first sight.
func (b *batch) groupMembership(ctx context.Context, ev *event, log *slog.Logger, add bool) (string, error) {
	gt, ok := ev.targetOf("UserGroup")
	if !ok {
		log.InfoContext(ctx, "hooks: event names no UserGroup target; ignored")
		return resIgnored, nil
	}
	_, ids, err := b.identities(ctx, ev, log)
	if err != nil || len(ids) == 0 {
		return resIgnored, err
	}
	name := gt.DisplayName
	if name == "" && gt.AlternateID != "unknown" {
		name = gt.AlternateID
	}
	if name == "" {
		name = gt.ID
	}
	return b.membership(ctx, ev, log, gt.ID, name, gt.DisplayName != "", identityIDs(ids), add)
}

// appMembership records an app assignment as membership of the group
// "app:<label>" (externalId "app:<appId>"), so enrollment rules can key on
// it. Assigning learnerlink's own app creates or reactivates the identity;
// unassigning it deactivates the identity.
func (b *batch) appMembership(ctx context.Context, ev *event, log *slog.Logger, add bool) (string, error) {
	at, ok := ev.targetOf("AppInstance")
	if !ok {
		log.InfoContext(ctx, "hooks: event names no AppInstance target; ignored")
		return resIgnored, nil
	}
	t, ids, err := b.identities(ctx, ev, log)
	if err != nil || t.ID == "" {
		return resIgnored, err
	}
	own := b.h.cfg.AppID != "" && at.ID == b.h.cfg.AppID
	var results []string
	if own && add && len(ids) == 0 && b.h.dir != nil {
		ident, r, err := b.create(ctx, ev, t, log)
		if err != nil {
			return "", err
		}
		results = append(results, r)
		if ident != nil {
			ids = []*store.Identity{ident}
		}
	} else if own {
		r, err := b.setActiveOn(ctx, ev, ids, log, add)
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	if len(ids) == 0 {
		return combine(results...), nil
	}
	label := firstNonEmpty(at.DisplayName, at.AlternateID, at.ID)
	r, err := b.membership(ctx, ev, log, "app:"+at.ID, "app:"+label, at.DisplayName != "", identityIDs(ids), add)
	if err != nil {
		return "", err
	}
	return combine(append(results, r)...), nil
}

// privilege records admin roles as groups "privilege:<role>".
func (b *batch) privilege(ctx context.Context, ev *event, log *slog.Logger, grant bool) (string, error) {
	roles := ev.roles()
	if len(roles) == 0 {
		log.InfoContext(ctx, "hooks: privilege event names no role; ignored")
		return resIgnored, nil
	}
	_, ids, err := b.identities(ctx, ev, log)
	if err != nil || len(ids) == 0 {
		return resIgnored, err
	}
	var results []string
	for _, role := range roles {
		r, err := b.membership(ctx, ev, log, "privilege:"+role, "privilege:"+role, false, identityIDs(ids), grant)
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	return combine(results...), nil
}
