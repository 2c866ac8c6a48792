package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/store"
)

// A rename changes every member's desired state (its groups carry the
// name). When the members' bumps do not fit in the rename's transaction,
// the rename writes a marker item in that transaction; the bumps then go
// in member-id order, each transaction also moving the marker's cursor,
// and the last one deletes it. A writer that dies leaves the marker, and
// FinishGroupWrites (the sweeper) carries on from the cursor.
const (
	markerSK = "BUMP"       // the marker's sort key, in the group's partition
	markerPK = "GROUPBUMPS" // its partition in the sparse GSI3 (sort key <since>#<gid>)
	// markerPage is how many members one marker transaction bumps: all
	// of it but the marker's own item.
	markerPage = maxTxItems - 1
	attrAfter  = "after"
)

// errMarkerGone says the marker was deleted or replaced: the rename is
// finished, or a later rename or the group's deletion took over.
var errMarkerGone = errors.New("rename marker gone")

// markerItem says the members of group gid have to be bumped for its
// version v; those up to after (in id order) are done. Since is when it
// last made progress.
type markerItem struct {
	keys
	ID           string `dynamodbav:"id"`
	Version      int64  `dynamodbav:"version"`
	After        string `dynamodbav:"after,omitempty"`
	PendingSince string `dynamodbav:"pendingSince"`
}

func (s *Store) markerItem(gid string, v int64, after string, since time.Time) (map[string]types.AttributeValue, error) {
	return marshal(&markerItem{
		keys: keys{PK: groupPK(gid), SK: markerSK, Kind: "renameMarker", GSI3PK: markerPK, GSI3SK: fmtTime(since) + "#" + gid},
		ID:   gid, Version: v, After: after, PendingSince: fmtTime(since),
	})
}

// renamePlan decides how a rename of gid reaches the members whose
// membership final leaves as it is. If the changes in final plus one bump
// per such member fit in room transaction items, it returns them (as the
// write's touch set) and adds their states to states: the rename is then
// one transaction. Otherwise it returns nil: the caller writes a marker.
func (s *Store) renamePlan(ctx context.Context, gid string, final map[string]bool, states map[string]memberState, room int) (map[string]bool, error) {
	for uid, want := range final {
		if states[uid].present != want {
			room -= itemsPerMember
		}
	}
	if room < 0 {
		return nil, nil
	}
	// The members are the stayers plus at most len(final) that leave.
	limit := room + len(final) + 1
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :p)"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#sk": AttrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(groupPK(gid)), ":p": avS(memberSK(""))},
		ConsistentRead:            aws.Bool(true),
		ProjectionExpression:      aws.String("#sk"),
	}, limit)
	if err != nil {
		return nil, err
	}
	if len(items) >= limit {
		return nil, nil
	}
	touch := map[string]bool{}
	var stayers []string
	for _, item := range items {
		uid := strings.TrimPrefix(strAttr(item, AttrSK), memberSK(""))
		if want, ok := final[uid]; ok && !(want && states[uid].present) {
			// Leaves (its removal bumps it), or was added since states
			// were read (the write will meet a conflict).
			continue
		}
		touch[uid] = true
		stayers = append(stayers, uid)
	}
	if len(stayers) > room {
		return nil, nil
	}
	if len(stayers) == 0 {
		return touch, nil
	}
	fresh, err := s.readStates(ctx, gid, stayers)
	if err != nil {
		return nil, err
	}
	for _, uid := range stayers {
		states[uid] = fresh[uid]
	}
	return touch, nil
}

// bumpMembers bumps, in id order, the members of gid after the cursor
// after, except those in skip, for the rename to version v whose marker
// it moves along and finally deletes. It stops without error when the
// marker is gone. at is the bumped identities' Modified.
func (s *Store) bumpMembers(ctx context.Context, gid string, v int64, after string, skip map[string]bool, at time.Time) ([]store.Changed, error) {
	var changed []store.Changed
	for {
		// BETWEEN is inclusive: the cursor's own item may come back first.
		items, err := s.queryAll(ctx, &dynamodb.QueryInput{
			KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
			ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#sk": AttrSK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(groupPK(gid)), ":lo": avS(memberSK(after)), ":hi": avS("MEMBER$")},
			ConsistentRead:            aws.Bool(true),
			ProjectionExpression:      aws.String("#sk"),
		}, markerPage+2)
		if err != nil {
			return changed, err
		}
		var page []string
		for _, item := range items {
			if uid := strings.TrimPrefix(strAttr(item, AttrSK), memberSK("")); uid != after {
				page = append(page, uid)
			}
		}
		more := len(page) > markerPage
		if more {
			page = page[:markerPage]
		}
		var todo []string
		for _, uid := range page {
			if !skip[uid] {
				todo = append(todo, uid)
			}
		}
		states, err := s.readStates(ctx, gid, todo)
		if err != nil {
			return changed, err
		}
		w := &membershipWrite{
			gid: gid, touch: map[string]bool{}, at: at,
			first:        []types.TransactWriteItem{s.markerStep(gid, v, page, more)},
			firstRefusal: func(context.Context, int) error { return errMarkerGone },
		}
		for _, uid := range todo {
			w.touch[uid] = true
		}
		c, err := s.applyChunk(ctx, w, todo, true, states)
		if errors.Is(err, errMarkerGone) {
			return changed, nil
		}
		if err != nil {
			return changed, err
		}
		changed = append(changed, c...)
		if !more {
			return changed, nil
		}
		after = page[len(page)-1]
	}
}

// markerStep moves the marker of (gid, v) past page, or deletes it when
// page is the last; either fails if the marker is no longer (gid, v).
func (s *Store) markerStep(gid string, v int64, page []string, more bool) types.TransactWriteItem {
	names, values := versionAt(v)
	if !more {
		return s.del(key(groupPK(gid), markerSK), "#v = :v", names, values)
	}
	now := fmtTime(s.clock())
	names["#a"], names["#ps"], names["#s3"] = attrAfter, attrPendingSince, AttrPendingSK
	values[":a"], values[":ps"], values[":s3"] = avS(page[len(page)-1]), avS(now), avS(now+"#"+gid)
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.table), Key: key(groupPK(gid), markerSK),
		UpdateExpression:          aws.String("SET #a = :a, #ps = :ps, #s3 = :s3"),
		ConditionExpression:       aws.String("#v = :v"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}}
}

// FinishGroupWrites implements store.Sync: it carries on renames whose
// marker has not moved since before olderThan (their writer died or gave
// up), oldest first, at most limit. The marker index is eventually
// consistent; each marker is read again before it is acted on. Returned
// identities are in ID order; an error for one group does not stop the
// others.
func (s *Store) FinishGroupWrites(ctx context.Context, olderThan time.Time, limit int) ([]store.Changed, error) {
	bound := fmtTime(olderThan)
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(IndexPending),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk < :b"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPendingPK, "#sk": AttrPendingSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(markerPK), ":b": avS(bound)},
	}, limitOr(limit))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: finish group writes: %w", err)
	}
	var changed []store.Changed
	var errs []error
	for _, item := range items {
		var p pendingItem
		if err := attributevalue.UnmarshalMap(item, &p); err != nil {
			return changed, fmt.Errorf("store/dynamo: finish group writes: decode: %w", err)
		}
		var m markerItem
		switch err := s.getItem(ctx, groupPK(p.ID), markerSK, &m); {
		case errors.Is(err, errNoItem):
			continue // finished meanwhile
		case err != nil:
			errs = append(errs, err)
			continue
		}
		if m.PendingSince >= bound {
			continue // its writer is making progress
		}
		c, err := s.bumpMembers(ctx, m.ID, m.Version, m.After, nil, s.clock())
		changed = append(changed, c...)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", m.ID, err))
		}
	}
	slices.SortFunc(changed, func(a, b store.Changed) int { return strings.Compare(a.ID, b.ID) })
	if err := errors.Join(errs...); err != nil {
		return changed, fmt.Errorf("store/dynamo: finish group writes: %w", err)
	}
	return changed, nil
}
