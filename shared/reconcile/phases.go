package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/store"
)

// directoryPhase streams the directory's assignments, marking the
// identities it assigns and reporting (or creating) the ones we lack.
func (r *runner) directoryPhase(ctx context.Context) (bool, error) {
	for {
		if r.stop() {
			return true, nil
		}
		users, next, err := r.d.Directory.AppUsers(ctx, r.cp.Cursor)
		if err != nil {
			return false, fmt.Errorf("reconcile: list directory users: %w", err)
		}
		r.pages++
		eff := newEffects()
		for _, u := range users {
			if err := r.dirUser(ctx, eff, u); err != nil {
				return false, err
			}
		}
		if err := r.commit(ctx, eff); err != nil {
			return false, err
		}
		r.cp.Cursor = next
		if next == "" {
			r.cp.Phase, r.cp.Cursor = phaseLearners, ""
			return false, nil
		}
	}
}

func (r *runner) dirUser(ctx context.Context, eff *effects, u DirUser) error {
	eff.t.DirUsers++
	if !u.Active {
		return nil // deactivated or unassigned: its identity stays unmarked
	}
	eff.t.DirActive++
	idx := r.x.lookup(r.x.byDirID, foldKey(u.ID))
	if len(idx) == 0 && u.Login != "" {
		idx = r.x.lookup(r.x.byUser, foldKey(u.Login))
	}
	for _, i := range idx {
		eff.marks[key(r.x.idents[i].id)] |= mAssigned
	}
	if len(idx) > 0 || u.ID == "" {
		return nil
	}
	eff.t.add(Unknown, u.ID, r.o.Samples)
	if !r.o.CreateIdentities || r.o.DryRun || !u.Provision || u.Login == "" {
		return nil
	}
	id, err := r.createIdentity(ctx, u)
	switch {
	case errors.Is(err, store.ErrUserNameTaken) || errors.Is(err, store.ErrExists):
		// Created meanwhile (Okta's own push): nothing to do.
		eff.t.Failed++
		r.log.InfoContext(ctx, "reconcile: directory user appeared meanwhile; not created", "directory_user", u.ID)
		return nil
	case err != nil:
		return fmt.Errorf("reconcile: create identity from the directory: %w", err)
	}
	eff.t.Created++
	eff.marks[key(id.ID)] |= mAssigned | mHandled
	eff.intents = append(eff.intents, r.intent(id.ID, id.Version, Unknown))
	return nil
}

// createIdentity stores a SCIM User built from the directory profile, as
// Okta's push would have.
func (r *runner) createIdentity(ctx context.Context, u DirUser) (*store.Identity, error) {
	id := newUUID()
	res := map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"id":         id,
		"externalId": u.ID,
		"userName":   u.Login,
		"active":     true,
	}
	name := map[string]any{}
	if u.FirstName != "" {
		name["givenName"] = u.FirstName
	}
	if u.LastName != "" {
		name["familyName"] = u.LastName
	}
	if len(name) > 0 {
		res["name"] = name
	}
	if u.DisplayName != "" {
		res["displayName"] = u.DisplayName
	}
	if u.Email != "" {
		res["emails"] = []map[string]any{{"value": u.Email, "type": "work", "primary": true}}
	}
	if u.Title != "" {
		res["title"] = u.Title
	}
	ent := map[string]any{}
	for k, v := range map[string]string{"department": u.Department, "employeeNumber": u.EmployeeNumber,
		"costCenter": u.CostCenter, "division": u.Division, "organization": u.Organization} {
		if v != "" {
			ent[k] = v
		}
	}
	if u.ManagerID != "" {
		ent["manager"] = map[string]any{"value": u.ManagerID}
	}
	if len(ent) > 0 {
		res[mapping.EnterpriseURN] = ent
		res["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User", mapping.EnterpriseURN}
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	now := r.now()
	ident := &store.Identity{ID: id, UserName: u.Login, ExternalID: u.ID, Active: true, Resource: raw, Created: now, Modified: now}
	if err := r.d.Store.CreateIdentity(ctx, ident); err != nil {
		return nil, err
	}
	if ident.Version == 0 {
		ident.Version = 1
	}
	r.audit(ctx, ident.ID, ident.Version, "identity.create", "assigned in the directory but unknown here; created from the directory profile", nil)
	return ident, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// learnersPhase streams the target's learners and decides each against
// the index.
func (r *runner) learnersPhase(ctx context.Context) (bool, error) {
	for {
		if r.stop() {
			return true, nil
		}
		ls, next, err := r.lister.List(ctx, r.cp.Cursor)
		if err != nil {
			return false, fmt.Errorf("reconcile: list learners: %w", err)
		}
		r.pages++
		eff := newEffects()
		for i := range ls {
			r.learner(eff, &ls[i])
		}
		if err := r.commit(ctx, eff); err != nil {
			return false, err
		}
		r.cp.Cursor = next
		if next == "" {
			r.cp.Phase, r.cp.Cursor = phaseFinalize, ""
			return false, nil
		}
	}
}

func (r *runner) learner(eff *effects, l *connector.Learner) {
	eff.t.Learners++
	if l.Active {
		eff.t.ActiveLearners++
	}
	if idx := r.x.lookup(r.x.byLearner, foldKey(l.ID)); len(idx) > 0 {
		// A learner a live identity claims is that identity's: a deleted
		// one's link to it is stale (deleted, then provisioned again) and
		// must never switch it off.
		live := slices.ContainsFunc(idx, func(i int32) bool { return r.x.idents[i].has(fLive) })
		for _, i := range idx {
			if e := &r.x.idents[i]; e.has(fLive) || !live {
				r.linked(eff, e, l)
			}
		}
		return
	}
	if l.ExternalID != "" {
		if idx := r.x.lookup(r.x.byExt, foldKey(l.ExternalID)); len(idx) > 0 {
			r.byExternalID(eff, idx, l)
			return
		}
	}
	r.unlinked(eff, l)
}

// linked judges the learner an identity's link names.
func (r *runner) linked(eff *effects, e *ident, l *connector.Learner) {
	h := key(e.id)
	eff.marks[h] |= mSeen
	if e.has(fIgnored) || !e.has(fMapped) {
		return
	}
	if !e.has(fWantActive) {
		if l.Active {
			eff.marks[h] |= mDeact // decided at the end, under the guard
		}
		return
	}
	if !l.Active || r.cmp.actual(*l, e.mask) != e.want {
		r.drift(eff, Mismatch, e)
	}
}

// byExternalID judges an unlinked learner carrying an identity's external
// id: the worker adopts it by that id.
func (r *runner) byExternalID(eff *effects, idx []int32, l *connector.Learner) {
	var free []int32
	for _, i := range idx {
		if !r.x.idents[i].has(fLinked) {
			free = append(free, i)
		}
	}
	switch {
	case len(free) == 0:
		// Its identity has another learner: a duplicate, left alone.
		if l.Active {
			eff.t.add(Orphan, l.ID, r.o.Samples)
		}
		return
	case len(free) > 1:
		reason := fmt.Sprintf("a learner's external id is carried by %d identities", len(free))
		for _, i := range free {
			r.park(eff, &r.x.idents[i], reason, []string{l.ID})
		}
		return
	}
	e := &r.x.idents[free[0]]
	h := key(e.id)
	eff.marks[h] |= mSeen
	switch {
	case e.has(fIgnored) || !e.has(fMapped):
	case !e.has(fWantActive):
		if l.Active {
			eff.marks[h] |= mDeact
		}
	default:
		eff.claims = append(eff.claims, claimOp{h: h, rank: 0, key: string(connector.KeyExternalID), learner: l.ID})
	}
}

// unlinked tries the adoption keys in order; the first that matches
// decides, as in the worker.
func (r *runner) unlinked(eff *effects, l *connector.Learner) {
	for rank, k := range r.keys {
		v := keyValue(*l, k)
		if v == "" {
			continue
		}
		idx := r.x.lookup(r.x.adopt[k], foldKey(v))
		if len(idx) == 0 {
			continue
		}
		if len(idx) > 1 {
			reason := fmt.Sprintf("a learner matches %d identities by %s", len(idx), k)
			for _, i := range idx {
				r.park(eff, &r.x.idents[i], reason, []string{l.ID})
			}
			return
		}
		e := &r.x.idents[idx[0]]
		if l.ExternalID != "" {
			// Its external id matched no identity: it belongs to someone
			// else, or to another system. The worker would refuse it too.
			r.park(eff, e, fmt.Sprintf("a learner matches by %s but carries another external id", k), []string{l.ID})
			return
		}
		eff.claims = append(eff.claims, claimOp{h: key(e.id), rank: uint8(rank + 1), key: string(k), learner: l.ID})
		return
	}
	if l.Active {
		eff.t.add(Orphan, l.ID, r.o.Samples)
	}
}
