package dynamo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/store"
)

// itemsPerMember is what one membership change costs in a transaction:
// the member item, the member-of item and the identity's version bump.
const itemsPerMember = 3

// memberState is what a membership change needs to know about one identity.
type memberState struct {
	live    bool  // a live identity exists
	version int64 // its version, when live
	present bool  // it is a member of the group
}

// readStates reads, strongly consistent, each identity and its membership
// item in group gid.
func (s *Store) readStates(ctx context.Context, gid string, uids []string) (map[string]memberState, error) {
	ks := make([]map[string]types.AttributeValue, 0, 2*len(uids))
	for _, uid := range uids {
		ks = append(ks, key(userPK(uid), mainSK), key(groupPK(gid), memberSK(uid)))
	}
	items, err := s.batchGet(ctx, ks)
	if err != nil {
		return nil, err
	}
	states := make(map[string]memberState, len(uids))
	for _, item := range items {
		pk, sk := strAttr(item, AttrPK), strAttr(item, AttrSK)
		switch {
		case sk == mainSK && strings.HasPrefix(pk, userPK("")):
			var it identityItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				return nil, fmt.Errorf("decode identity: %w", err)
			}
			st := states[it.ID]
			st.live, st.version = !it.Deleted, it.Version
			states[it.ID] = st
		case pk == groupPK(gid) && strings.HasPrefix(sk, memberSK("")):
			uid := strings.TrimPrefix(sk, memberSK(""))
			st := states[uid]
			st.present = true
			states[uid] = st
		}
	}
	return states, nil
}

// membershipWrite is a change of one group's members, with the group's own
// write riding in the first transaction.
type membershipWrite struct {
	gid   string
	final map[string]bool // uid → whether it ends up a member
	// touch are members whose membership stays but whose state changes
	// (the group is renamed): bumped if still live members, one item each.
	touch map[string]bool
	at    time.Time // the group write's time: the identities' Modified
	// first holds what the first transaction must carry (the group's own
	// write, or a rename marker's step); firstRefusal explains a failed
	// condition on first[i].
	first        []types.TransactWriteItem
	firstRefusal func(ctx context.Context, i int) error
	// guard makes later chunks check that the group still exists, so a
	// concurrent DeleteGroup cannot leave stray memberships.
	guard bool
}

// apply writes the change in chunks of at most maxTxItems items and
// returns the identities it bumped, in ID order. states holds a fresh read
// of every uid in w.final; a chunk whose reads went stale is read again and
// retried. In the first chunk an identity that is no longer live is a
// *MissingMembersError (nothing has been written); later it is skipped.
func (s *Store) apply(ctx context.Context, w *membershipWrite, states map[string]memberState) ([]store.Changed, error) {
	var todo []string
	for uid, want := range w.final {
		if states[uid].present != want {
			todo = append(todo, uid)
		}
	}
	todo = append(todo, slices.Collect(maps.Keys(w.touch))...)
	slices.Sort(todo)
	var changed []store.Changed
	for n := 0; n == 0 || len(todo) > 0; n++ {
		room := maxTxItems - len(w.first)
		if n > 0 {
			room = maxTxItems
			if w.guard {
				room--
			}
		}
		take := 0
		for take < len(todo) && room >= w.cost(todo[take]) {
			room -= w.cost(todo[take])
			take++
		}
		chunk := todo[:take]
		todo = todo[take:]
		c, err := s.applyChunk(ctx, w, chunk, n == 0, states)
		if err != nil {
			if n > 0 {
				return nil, fmt.Errorf("group %q: membership change partly applied: %w", w.gid, err)
			}
			return nil, err
		}
		changed = append(changed, c...)
	}
	slices.SortFunc(changed, func(a, b store.Changed) int { return strings.Compare(a.ID, b.ID) })
	return changed, nil
}

// cost is how many transaction items uid's change takes.
func (w *membershipWrite) cost(uid string) int {
	if w.touch[uid] {
		return 1
	}
	return itemsPerMember
}

func (s *Store) applyChunk(ctx context.Context, w *membershipWrite, chunk []string, first bool, states map[string]memberState) ([]store.Changed, error) {
	for attempt := 0; ; attempt++ {
		var items []types.TransactWriteItem
		if first {
			items = append(items, w.first...)
		} else if w.guard {
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName: aws.String(s.table), Key: key(groupPK(w.gid), mainSK),
				ConditionExpression: aws.String(condPresent),
			}})
		}
		fixed := len(items)
		var bumped []store.Changed
		var missing []string
		for _, uid := range chunk {
			st, want := states[uid], w.final[uid]
			if w.touch[uid] {
				// Left the group or the store meanwhile: whoever did that
				// bumped it after this write's rename.
				if st.live && st.present {
					items = append(items, s.bumpItem(uid, st.version, w.at))
					bumped = append(bumped, store.Changed{ID: uid, Version: st.version + 1})
				}
				continue
			}
			if st.present == want {
				continue
			}
			if want && !st.live {
				missing = append(missing, uid)
				continue
			}
			items = append(items, s.membershipItems(w.gid, uid, want)...)
			if st.live {
				items = append(items, s.bumpItem(uid, st.version, w.at))
				bumped = append(bumped, store.Changed{ID: uid, Version: st.version + 1})
			}
		}
		if first && len(missing) > 0 {
			return nil, &store.MissingMembersError{IDs: missing}
		}
		if len(items) == fixed && (!first || fixed == 0) {
			return nil, nil
		}
		err := s.transact(ctx, items)
		var c *canceled
		if !errors.As(err, &c) {
			return bumped, err
		}
		for i := range fixed {
			if !c.failed(i) {
				continue
			}
			if first {
				return nil, w.firstRefusal(ctx, i)
			}
			return nil, notFound("group", w.gid)
		}
		// A member or identity changed since we read it: read again.
		if attempt+1 >= maxAttempts {
			return nil, fmt.Errorf("group %q: members keep changing: %w", w.gid, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		fresh, err := s.readStates(ctx, w.gid, chunk)
		if err != nil {
			return nil, err
		}
		for _, uid := range chunk {
			states[uid] = fresh[uid]
		}
	}
}

// membershipItems adds or removes both directions of a membership,
// conditioned on the group side being as read.
func (s *Store) membershipItems(gid, uid string, add bool) []types.TransactWriteItem {
	if !add {
		return []types.TransactWriteItem{
			s.del(key(groupPK(gid), memberSK(uid)), condPresent, nil, nil),
			s.del(key(userPK(uid), memberOfSK(gid)), "", nil, nil),
		}
	}
	item := func(pk, sk, kind string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{AttrPK: avS(pk), AttrSK: avS(sk), attrKind: avS(kind)}
	}
	return []types.TransactWriteItem{
		s.put(item(groupPK(gid), memberSK(uid), "member"), condAbsent, nil, nil),
		s.put(item(userPK(uid), memberOfSK(gid), "memberOf"), "", nil, nil),
	}
}

// bumpItem gives a live identity at version v the next version, modified
// and pending since at.
func (s *Store) bumpItem(uid string, v int64, at time.Time) types.TransactWriteItem {
	names, values := liveAt(v)
	names["#m"], names["#ps"], names["#p3"], names["#s3"] = attrModified, attrPendingSince, AttrPendingPK, AttrPendingSK
	values[":nv"], values[":m"], values[":pp"], values[":ps"] = avN(v+1), avS(fmtTime(at)), avS(pendingPK), avS(fmtTime(at)+"#"+uid)
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.table), Key: key(userPK(uid), mainSK),
		UpdateExpression:          aws.String("SET #v = :nv, #m = :m, #ps = :m, #p3 = :pp, #s3 = :ps"),
		ConditionExpression:       aws.String(condLiveAt),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}}
}

func dedupe(ids []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// missingIn lists, in order, the ids to add that name no live identity.
func missingIn(add []string, states map[string]memberState) []string {
	var missing []string
	for _, uid := range dedupe(add) {
		if !states[uid].live {
			missing = append(missing, uid)
		}
	}
	return missing
}

// CreateGroup implements store.Groups. The returned identities are in ID
// order.
func (s *Store) CreateGroup(ctx context.Context, g *store.Group, members []string) ([]store.Changed, error) {
	if g.ID == "" || g.DisplayName == "" {
		return nil, errors.New("store/dynamo: create group: empty id or displayName")
	}
	members = dedupe(members)
	states, err := s.readStates(ctx, g.ID, members)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: create group: %w", err)
	}
	if missing := missingIn(members, states); len(missing) > 0 {
		return nil, fmt.Errorf("store/dynamo: create group: %w", &store.MissingMembersError{IDs: missing})
	}
	now := s.clock()
	rec := *g
	rec.Version, rec.Created, rec.Modified = 1, now, now
	item, err := marshal(newGroupItem(&rec))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: create group: %w", err)
	}
	name, err := s.nameItem(groupNamePK(g.DisplayName), g.ID, "displayName")
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: create group: %w", err)
	}
	w := &membershipWrite{
		gid: g.ID, final: map[string]bool{}, at: now, guard: true,
		first: []types.TransactWriteItem{s.put(item, condAbsent, nil, nil), s.put(name, condAbsent, nil, nil)},
		firstRefusal: func(_ context.Context, i int) error {
			if i == 0 {
				return fmt.Errorf("group %q: %w", g.ID, store.ErrExists)
			}
			return fmt.Errorf("group %q: %w", g.ID, store.ErrDisplayNameTaken)
		},
	}
	for _, uid := range members {
		w.final[uid] = true
	}
	changed, err := s.apply(ctx, w, states)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: create group: %w", err)
	}
	g.Version, g.Created, g.Modified = 1, now, now
	return changed, nil
}

// GetGroup implements store.Groups.
func (s *Store) GetGroup(ctx context.Context, id string) (*store.Group, error) {
	it, err := s.getGroup(ctx, id)
	if err == nil && it == nil {
		err = notFound("group", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get group: %w", err)
	}
	g, err := it.group()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get group: %w", err)
	}
	return g, nil
}

// GetGroupByDisplayName implements store.Groups.
func (s *Store) GetGroupByDisplayName(ctx context.Context, displayName string) (*store.Group, error) {
	var name nameItem
	err := s.getItem(ctx, groupNamePK(displayName), mainSK, &name)
	if errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("store/dynamo: get group by displayName: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get group by displayName: %w", err)
	}
	it, err := s.getGroup(ctx, name.ID)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get group by displayName: %w", err)
	}
	if it == nil || store.FoldUserName(it.DisplayName) != store.FoldUserName(displayName) {
		return nil, fmt.Errorf("store/dynamo: get group by displayName: %w", store.ErrNotFound)
	}
	g, err := it.group()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get group by displayName: %w", err)
	}
	return g, nil
}

// UpdateGroup implements store.Groups. Adds are applied before removes, so
// an id in both ends up not a member. A rename is atomic when the group's
// write, the membership changes and the other members' bumps fit in one
// transaction; otherwise it leaves a marker (see renamePlan). The returned
// identities are in ID order.
func (s *Store) UpdateGroup(ctx context.Context, g *store.Group, expectedVersion int64, add, remove []string) ([]store.Changed, error) {
	if g.DisplayName == "" {
		return nil, errors.New("store/dynamo: update group: empty displayName")
	}
	cur, err := s.getGroup(ctx, g.ID)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", err)
	}
	if cur == nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", notFound("group", g.ID))
	}
	if cur.Version != expectedVersion {
		return nil, fmt.Errorf("store/dynamo: update group: %w", conflict("group", g.ID, expectedVersion, cur.Version))
	}
	final := map[string]bool{}
	for _, uid := range add {
		final[uid] = true
	}
	for _, uid := range remove {
		final[uid] = false
	}
	states, err := s.readStates(ctx, g.ID, slices.Collect(maps.Keys(final)))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", err)
	}
	if missing := missingIn(add, states); len(missing) > 0 {
		return nil, fmt.Errorf("store/dynamo: update group: %w", &store.MissingMembersError{IDs: missing})
	}
	created, err := parseTime(cur.Created)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", err)
	}
	now := s.clock()
	rec := *g
	rec.Version, rec.Created, rec.Modified = expectedVersion+1, created, now
	item, err := marshal(newGroupItem(&rec))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", err)
	}
	names, values := versionAt(expectedVersion)
	first := []types.TransactWriteItem{s.put(item, "#v = :v", names, values)}
	if store.FoldUserName(cur.DisplayName) != store.FoldUserName(g.DisplayName) {
		name, err := s.nameItem(groupNamePK(g.DisplayName), g.ID, "displayName")
		if err != nil {
			return nil, fmt.Errorf("store/dynamo: update group: %w", err)
		}
		on, ov := ownedBy(g.ID)
		first = append(first,
			s.del(key(groupNamePK(cur.DisplayName), mainSK), condOwner, on, ov),
			s.put(name, condAbsent, nil, nil))
	}
	nameTaken := len(first) - 1 // the new name's item, when there is one
	var touch map[string]bool
	marked := false
	if cur.DisplayName != g.DisplayName {
		// The marker's item is written either way: this rename takes over
		// an unfinished one's (it bumps every member too).
		touch, err = s.renamePlan(ctx, g.ID, final, states, maxTxItems-len(first)-1)
		if err != nil {
			return nil, fmt.Errorf("store/dynamo: update group: %w", err)
		}
		if touch != nil {
			first = append(first, s.del(key(groupPK(g.ID), markerSK), "", nil, nil))
		} else {
			marked = true
			m, err := s.markerItem(g.ID, rec.Version, "", now)
			if err != nil {
				return nil, fmt.Errorf("store/dynamo: update group: %w", err)
			}
			first = append(first, s.put(m, "", nil, nil))
		}
	}
	w := &membershipWrite{
		gid: g.ID, final: final, touch: touch, at: now, guard: true, first: first,
		firstRefusal: func(ctx context.Context, i int) error {
			if i == nameTaken && i > 0 {
				return fmt.Errorf("group %q: %w", g.ID, store.ErrDisplayNameTaken)
			}
			return s.groupRefusal(ctx, g.ID, expectedVersion)
		},
	}
	changed, err := s.apply(ctx, w, states)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: update group: %w", err)
	}
	if marked {
		done := make(map[string]bool, len(changed))
		for _, c := range changed {
			done[c.ID] = true
		}
		more, err := s.bumpMembers(ctx, g.ID, rec.Version, "", done, now)
		if err != nil {
			return nil, fmt.Errorf("store/dynamo: update group %q: renamed, members not all bumped yet (FinishGroupWrites completes them): %w", g.ID, err)
		}
		changed = append(changed, more...)
		slices.SortFunc(changed, func(a, b store.Changed) int { return strings.Compare(a.ID, b.ID) })
	}
	g.Version, g.Created, g.Modified = rec.Version, created, now
	return changed, nil
}

// errGroupMoved says the group changed between reading its members and
// deleting it; DeleteGroup starts over.
var errGroupMoved = errors.New("group changed during delete")

// DeleteGroup implements store.Groups.
func (s *Store) DeleteGroup(ctx context.Context, id string) ([]store.Changed, error) {
	for attempt := 0; ; attempt++ {
		changed, err := s.deleteGroup(ctx, id)
		if !errors.Is(err, errGroupMoved) || attempt+1 >= maxAttempts {
			if err != nil {
				return nil, fmt.Errorf("store/dynamo: delete group: %w", err)
			}
			return changed, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("store/dynamo: delete group: %w", err)
		}
	}
}

func (s *Store) deleteGroup(ctx context.Context, id string) ([]store.Changed, error) {
	cur, err := s.getGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound("group", id)
	}
	// Every membership change bumps the group's version, so the version
	// condition below also guarantees this list is complete.
	items, err := s.queryPartition(ctx, groupPK(id), memberSK(""))
	if err != nil {
		return nil, err
	}
	final := map[string]bool{}
	for _, item := range items {
		final[strings.TrimPrefix(strAttr(item, AttrSK), memberSK(""))] = false
	}
	states, err := s.readStates(ctx, id, slices.Collect(maps.Keys(final)))
	if err != nil {
		return nil, err
	}
	names, values := versionAt(cur.Version)
	on, ov := ownedBy(id)
	w := &membershipWrite{
		gid: id, final: final, at: s.clock(),
		first: []types.TransactWriteItem{
			s.del(key(groupPK(id), mainSK), "#v = :v", names, values),
			s.del(key(groupNamePK(cur.DisplayName), mainSK), condOwner, on, ov),
			// An unfinished rename's marker: this delete bumps every member.
			s.del(key(groupPK(id), markerSK), "", nil, nil),
		},
		firstRefusal: func(context.Context, int) error { return errGroupMoved },
	}
	return s.apply(ctx, w, states)
}

// ListGroups implements store.Groups. The cursor is the last ID of the
// previous page. Eventually consistent (GSI).
func (s *Store) ListGroups(ctx context.Context, cursor string, limit int) (store.Page[*store.Group], error) {
	items, next, err := s.listPage(ctx, listGroups, cursor, limit)
	if err != nil {
		return store.Page[*store.Group]{}, fmt.Errorf("store/dynamo: list groups: %w", err)
	}
	page := store.Page[*store.Group]{Next: next, Items: make([]*store.Group, 0, len(items))}
	for _, item := range items {
		var it groupItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return store.Page[*store.Group]{}, fmt.Errorf("store/dynamo: list groups: decode: %w", err)
		}
		g, err := it.group()
		if err != nil {
			return store.Page[*store.Group]{}, fmt.Errorf("store/dynamo: list groups: %w", err)
		}
		page.Items = append(page.Items, g)
	}
	return page, nil
}

// CountGroups implements store.Groups (Query COUNT on the listing index;
// eventually consistent).
func (s *Store) CountGroups(ctx context.Context) (int, error) {
	n, err := s.count(ctx, listGroups)
	if err != nil {
		return 0, fmt.Errorf("store/dynamo: count groups: %w", err)
	}
	return n, nil
}

// Members implements store.Groups: in UserID order, UserDisplay is the
// identity's userName. ErrNotFound for an unknown group.
func (s *Store) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	// One query reads the group item ("A") and its member items.
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(groupPK(groupID))},
		ConsistentRead:            aws.Bool(true),
	}, 0)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: members: %w", err)
	}
	found := false
	var ks []map[string]types.AttributeValue
	for _, item := range items {
		sk := strAttr(item, AttrSK)
		if sk == mainSK {
			found = true
		} else if uid, ok := strings.CutPrefix(sk, memberSK("")); ok {
			ks = append(ks, key(userPK(uid), mainSK))
		}
	}
	if !found {
		return nil, fmt.Errorf("store/dynamo: members: %w", notFound("group", groupID))
	}
	users, err := s.batchGet(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: members: %w", err)
	}
	var out []store.Member
	for _, item := range users {
		var it identityItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, fmt.Errorf("store/dynamo: members: decode: %w", err)
		}
		if !it.Deleted {
			out = append(out, store.Member{GroupID: groupID, UserID: it.ID, UserDisplay: it.UserName})
		}
	}
	slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// GroupsOf implements store.Groups: in GroupID order. ErrNotFound for an
// unknown identity; a tombstone has no groups.
func (s *Store) GroupsOf(ctx context.Context, userID string) ([]store.Member, error) {
	it, err := s.getIdentity(ctx, userID)
	if err == nil && it == nil {
		err = notFound("identity", userID)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: groups of: %w", err)
	}
	items, err := s.queryPartition(ctx, userPK(userID), memberOfSK(""))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: groups of: %w", err)
	}
	ks := make([]map[string]types.AttributeValue, 0, len(items))
	for _, item := range items {
		ks = append(ks, key(groupPK(strings.TrimPrefix(strAttr(item, AttrSK), memberOfSK(""))), mainSK))
	}
	groups, err := s.batchGet(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: groups of: %w", err)
	}
	var out []store.Member
	for _, item := range groups {
		var g groupItem
		if err := attributevalue.UnmarshalMap(item, &g); err != nil {
			return nil, fmt.Errorf("store/dynamo: groups of: decode: %w", err)
		}
		out = append(out, store.Member{GroupID: g.ID, GroupName: g.DisplayName, UserID: userID, UserDisplay: it.UserName})
	}
	slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.GroupID, b.GroupID) })
	return out, nil
}
