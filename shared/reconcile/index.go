package reconcile

import (
	"context"
	"fmt"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Identity flags.
const (
	fLive       uint16 = 1 << iota // a live identity; else a link left by a deleted one
	fActive                        // the IdP says active
	fWantActive                    // the mapped learner is active
	fMapped                        // mapping succeeded: want and mask are valid
	fLinked                        // the link names a learner
	fIgnored                       // an admin chose to ignore it (review list)
	fInReview                      // an open review entry waits for a human
	fStable                        // unchanged since the run started
)

// ident is what reconciliation keeps of one identity: a few words, never
// the record.
type ident struct {
	id      string
	version int64
	learner uint64 // key(link.LearnerID) when fLinked
	want    uint64 // comparer hash of the desired learner when fMapped
	mask    uint8  // core fields the desired learner fills
	flags   uint16
}

func (e *ident) has(f uint16) bool { return e.flags&f == f }

// index is the store side of the comparison, rebuilt at the start of every
// invocation (store reads are cheap next to target and directory calls).
// Lookups answer identity positions; a key held by several identities is
// kept in multi.
type index struct {
	idents    []ident
	byLearner map[uint64]int32
	byExt     map[uint64]int32 // folded mapped external id (live)
	byDirID   map[uint64]int32 // folded Identity.ExternalID: the IdP's user id (live)
	byUser    map[uint64]int32 // folded userName (live)
	// adopt holds active identities without a learner, by adoption key.
	adopt map[connector.KeyKind]map[uint64]int32
	multi [][]int32

	links, live, active, unmapped int
}

func (x *index) add(m map[uint64]int32, k uint64, i int32) {
	cur, ok := m[k]
	switch {
	case !ok:
		m[k] = i
	case cur >= 0:
		x.multi = append(x.multi, []int32{cur, i})
		m[k] = -int32(len(x.multi))
	default:
		x.multi[-cur-1] = append(x.multi[-cur-1], i)
	}
}

func (x *index) lookup(m map[uint64]int32, k uint64) []int32 {
	cur, ok := m[k]
	switch {
	case !ok:
		return nil
	case cur >= 0:
		return []int32{cur}
	}
	return x.multi[-cur-1]
}

// buildIndex reads the store: groups (when the groups field is compared),
// links, identities, and the review list of the target.
func (r *runner) buildIndex(ctx context.Context) (*index, error) {
	t := r.d.Target
	reviews, err := r.reviewStatus(ctx)
	if err != nil {
		return nil, err
	}
	memberOf, groupNames, err := r.memberships(ctx)
	if err != nil {
		return nil, err
	}
	// Links first, by identity: position-free, so it works whatever order
	// a store lists them in.
	type linkRef struct {
		learner uint64
		ext     uint64 // folded external id written, 0 when none
		linked  bool
	}
	links := map[uint64]linkRef{}
	err = pages(ctx, func(cursor string) (store.Page[*store.Link], error) {
		return r.d.Store.ListLinks(ctx, t.Name, cursor, r.o.PageSize)
	}, func(l *store.Link) {
		ref := linkRef{learner: foldKey(l.LearnerID), linked: l.LearnerID != ""}
		if l.ExternalID != "" {
			ref.ext = foldKey(l.ExternalID)
		}
		links[key(l.IdentityID)] = ref
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	x := &index{
		byLearner: map[uint64]int32{}, byExt: map[uint64]int32{}, byDirID: map[uint64]int32{}, byUser: map[uint64]int32{},
		adopt: map[connector.KeyKind]map[uint64]int32{}, links: len(links),
	}
	for _, k := range adoptKeys(t) {
		x.adopt[k] = map[uint64]int32{}
	}
	m := t.Mapping
	m.Lookup = nil // references stay raw; fields using them are not compared
	var groups []store.Member
	err = pages(ctx, func(cursor string) (store.Page[*store.Identity], error) {
		return r.d.Store.ListIdentities(ctx, cursor, r.o.PageSize)
	}, func(id *store.Identity) {
		i := int32(len(x.idents))
		e := ident{id: id.ID, version: id.Version, flags: fLive}
		if id.Active && !id.Deleted {
			e.flags |= fActive
			x.active++
		}
		if id.Modified.Before(r.stableSince()) {
			e.flags |= fStable
		}
		hk := key(id.ID)
		if l, ok := links[hk]; ok {
			delete(links, hk)
			if l.linked {
				e.flags |= fLinked
				e.learner = l.learner
				x.add(x.byLearner, l.learner, i)
			}
		}
		switch reviews[id.ID] {
		case review.Ignored:
			e.flags |= fIgnored
		case review.Open:
			e.flags |= fInReview
		}
		groups = groups[:0]
		for _, g := range memberOf[hk] {
			groups = append(groups, store.Member{GroupName: groupNames[g]})
		}
		want, lgroups, err := m.Learner(id, groups)
		if err != nil {
			x.unmapped++
		} else {
			e.flags |= fMapped
			if want.Active {
				e.flags |= fWantActive
			}
			e.want, e.mask = r.cmp.desired(want, lgroups)
			if want.ExternalID != "" {
				x.add(x.byExt, foldKey(want.ExternalID), i)
			}
			if want.Active && !e.has(fLinked) && !e.has(fIgnored) {
				for k, idx := range x.adopt {
					if v := keyValue(want, k); v != "" {
						x.add(idx, foldKey(v), i)
					}
				}
			}
		}
		if id.ExternalID != "" {
			x.add(x.byDirID, foldKey(id.ExternalID), i)
		}
		if id.UserName != "" {
			x.add(x.byUser, foldKey(id.UserName), i)
		}
		x.idents = append(x.idents, e)
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list identities: %w", err)
	}
	x.live = len(x.idents)
	if len(links) == 0 {
		return x, nil
	}
	// What is left are links of deleted identities: their learners must be
	// inactive, unless the person was provisioned again (a live identity
	// carries the same external id): that identity owns the learner, and
	// the worker releases the tombstone's link. A second pass finds their
	// ids.
	err = pages(ctx, func(cursor string) (store.Page[*store.Link], error) {
		return r.d.Store.ListLinks(ctx, t.Name, cursor, r.o.PageSize)
	}, func(l *store.Link) {
		hk := key(l.IdentityID)
		ref, ok := links[hk]
		if !ok || !ref.linked {
			return
		}
		delete(links, hk)
		if ref.ext != 0 && (len(x.lookup(x.byExt, ref.ext)) > 0 || len(x.lookup(x.byDirID, ref.ext)) > 0) {
			return
		}
		i := int32(len(x.idents))
		x.idents = append(x.idents, ident{id: l.IdentityID, learner: ref.learner, flags: fLinked | fMapped | fStable})
		x.add(x.byLearner, ref.learner, i)
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	return x, nil
}

// directoryIndex is what the directory phase of a run over several
// targets needs: identities by the IdP's user id and by userName.
func (r *runner) directoryIndex(ctx context.Context) (*index, error) {
	x := &index{byDirID: map[uint64]int32{}, byUser: map[uint64]int32{}}
	err := pages(ctx, func(cursor string) (store.Page[*store.Identity], error) {
		return r.d.Store.ListIdentities(ctx, cursor, r.o.PageSize)
	}, func(id *store.Identity) {
		i := int32(len(x.idents))
		x.idents = append(x.idents, ident{id: id.ID, version: id.Version, flags: fLive})
		if id.Active && !id.Deleted {
			x.active++
		}
		if id.ExternalID != "" {
			x.add(x.byDirID, foldKey(id.ExternalID), i)
		}
		if id.UserName != "" {
			x.add(x.byUser, foldKey(id.UserName), i)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list identities: %w", err)
	}
	x.live = len(x.idents)
	return x, nil
}

// memberships reads every group's members when groups are compared:
// one call per group instead of one per identity.
func (r *runner) memberships(ctx context.Context) (map[uint64][]uint32, []string, error) {
	if r.cmp.groupsField == "" {
		return nil, nil, nil
	}
	memberOf := map[uint64][]uint32{}
	var names []string
	var gs []*store.Group
	err := pages(ctx, func(cursor string) (store.Page[*store.Group], error) {
		return r.d.Store.ListGroups(ctx, cursor, r.o.PageSize)
	}, func(g *store.Group) { gs = append(gs, g) })
	if err != nil {
		return nil, nil, fmt.Errorf("reconcile: list groups: %w", err)
	}
	for _, g := range gs {
		ms, err := r.d.Store.Members(ctx, g.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("reconcile: members of a group: %w", err)
		}
		gi := uint32(len(names))
		names = append(names, g.DisplayName)
		for _, mb := range ms {
			k := key(mb.UserID)
			memberOf[k] = append(memberOf[k], gi)
		}
	}
	return memberOf, names, nil
}

// reviewStatus reads the target's review list: ignored identities are
// left alone, open ones are waiting for a human.
func (r *runner) reviewStatus(ctx context.Context) (map[string]review.Status, error) {
	out := map[string]review.Status{}
	if r.d.Reviews == nil {
		return out, nil
	}
	es, err := r.d.Reviews.List(ctx, r.d.Target.Name)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read the review list: %w", err)
	}
	for _, e := range es {
		out[e.IdentityID] = e.Status
	}
	return out, nil
}

// adoptKeys are the target's adoption keys other than the external id
// (always tried first, through byExt), in order.
func adoptKeys(t worker.Target) []connector.KeyKind {
	var out []connector.KeyKind
	for _, k := range t.AdoptBy {
		if knownKey(k) && !containsKind(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func containsKind(ks []connector.KeyKind, k connector.KeyKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func knownKey(k connector.KeyKind) bool {
	switch k {
	case connector.KeyUserName, connector.KeyEmail, connector.KeyEmployeeNumber:
		return true
	}
	return false
}

// keyValue is the learner's value for an adoption key, as the worker
// looks it up.
func keyValue(l connector.Learner, k connector.KeyKind) string {
	switch k {
	case connector.KeyExternalID:
		return l.ExternalID
	case connector.KeyUserName:
		return l.UserName
	case connector.KeyEmail:
		return l.Email
	case connector.KeyEmployeeNumber:
		return l.Fields["employeeNumber"]
	}
	return ""
}

// pages walks a store listing to its end.
func pages[T any](ctx context.Context, list func(cursor string) (store.Page[T], error), each func(T)) error {
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := list(cursor)
		if err != nil {
			return err
		}
		for _, it := range p.Items {
			each(it)
		}
		if p.Next == "" {
			return nil
		}
		cursor = p.Next
	}
}
