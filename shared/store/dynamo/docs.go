package dynamo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Limits on documents. A sort key holds at most 1 KiB; bounding the whole
// key keeps the id within it (and both stores accept the same keys).
const (
	maxDocValue = 64 << 10
	maxDocKey   = 1024

	docPrefix = "DOC#"
	attrValue = "value"
)

func docPK(kind string) string { return docPrefix + kind }

// splitDocKey splits "<kind>/<id>" (both non-empty; the id may hold
// further slashes).
func splitDocKey(key string) (kind, id string, err error) {
	kind, id, ok := strings.Cut(key, "/")
	if !ok || kind == "" || id == "" {
		return "", "", fmt.Errorf("doc key %q: want <kind>/<id>", key)
	}
	if len(key) > maxDocKey {
		return "", "", fmt.Errorf("doc key of %d bytes: longer than %d", len(key), maxDocKey)
	}
	return kind, id, nil
}

// expiresAt is the TTL attribute for an expiry: epoch seconds, rounded up
// so that a document never goes before it was asked to.
func expiresAt(t time.Time) int64 {
	sec := t.Unix()
	if t.After(time.Unix(sec, 0)) {
		sec++
	}
	return sec
}

// docFromItem decodes a doc item; ok is false when it has expired by now.
func docFromItem(item map[string]types.AttributeValue, now time.Time) (d *store.Doc, ok bool, err error) {
	d = &store.Doc{Key: strings.TrimPrefix(strAttr(item, AttrPK), docPrefix) + "/" + strAttr(item, AttrSK)}
	if v, isB := item[attrValue].(*types.AttributeValueMemberB); isB {
		d.Value = v.Value
	}
	v, isN := item[attrVersion].(*types.AttributeValueMemberN)
	if !isN {
		return nil, false, fmt.Errorf("doc %q: no version", d.Key)
	}
	if d.Version, err = strconv.ParseInt(v.Value, 10, 64); err != nil {
		return nil, false, fmt.Errorf("doc %q: version: %w", d.Key, err)
	}
	if e, isN := item[AttrTTL].(*types.AttributeValueMemberN); isN {
		sec, err := strconv.ParseInt(e.Value, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("doc %q: %s: %w", d.Key, AttrTTL, err)
		}
		d.Expires = time.Unix(sec, 0).UTC()
		if sec <= now.Unix() {
			return d, false, nil
		}
	}
	return d, true, nil
}

// GetDoc implements store.Docs (strongly consistent). Documents past their
// expiry are absent even before TTL removes them.
func (s *Store) GetDoc(ctx context.Context, docKey string) (*store.Doc, error) {
	kind, id, err := splitDocKey(docKey)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get doc: %w", err)
	}
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key(docPK(kind), id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get doc %q: %w", docKey, err)
	}
	if res.Item == nil {
		return nil, fmt.Errorf("store/dynamo: get doc: %w", notFound("doc", docKey))
	}
	d, live, err := docFromItem(res.Item, s.clock())
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get doc: %w", err)
	}
	if !live {
		return nil, fmt.Errorf("store/dynamo: get doc: %w", notFound("doc", docKey))
	}
	return d, nil
}

// PutDoc implements store.Docs with one conditional PutItem. Expires is
// kept to the second, rounded up, and written back into d.
func (s *Store) PutDoc(ctx context.Context, d *store.Doc, expectedVersion int64) error {
	kind, id, err := splitDocKey(d.Key)
	if err != nil {
		return fmt.Errorf("store/dynamo: put doc: %w", err)
	}
	if len(d.Value) > maxDocValue {
		return fmt.Errorf("store/dynamo: put doc %q: value of %d bytes: larger than %d", d.Key, len(d.Value), maxDocValue)
	}
	if expectedVersion < 0 {
		return fmt.Errorf("store/dynamo: put doc %q: negative expected version %d", d.Key, expectedVersion)
	}
	item := key(docPK(kind), id)
	item[attrKind] = avS("doc")
	if len(d.Value) > 0 {
		// Omitted when empty: the SDK cannot send a nil binary value.
		item[attrValue] = &types.AttributeValueMemberB{Value: d.Value}
	}
	item[attrVersion] = avN(expectedVersion + 1)
	var expires time.Time
	if !d.Expires.IsZero() {
		sec := expiresAt(d.Expires)
		item[AttrTTL] = avN(sec)
		expires = time.Unix(sec, 0).UTC()
	}
	// An expired document counts as absent, whether or not TTL has removed
	// it yet.
	names := map[string]string{"#pk": AttrPK, "#exp": AttrTTL}
	values := map[string]types.AttributeValue{":now": avN(s.clock().Unix())}
	cond := "attribute_not_exists(#pk) OR #exp <= :now"
	if expectedVersion > 0 {
		cond = "#v = :v AND (attribute_not_exists(#exp) OR #exp > :now)"
		delete(names, "#pk")
		names["#v"], values[":v"] = attrVersion, avN(expectedVersion)
	}
	err = retry(ctx, func() error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String(cond),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
		})
		return err
	})
	if isCondFailed(err) {
		err = fmt.Errorf("doc %q not live at version %d: %w", d.Key, expectedVersion, store.ErrVersionConflict)
	}
	if err != nil {
		return fmt.Errorf("store/dynamo: put doc: %w", err)
	}
	d.Version, d.Expires = expectedVersion+1, expires
	return nil
}

// DeleteDoc implements store.Docs.
func (s *Store) DeleteDoc(ctx context.Context, docKey string) error {
	kind, id, err := splitDocKey(docKey)
	if err != nil {
		return fmt.Errorf("store/dynamo: delete doc: %w", err)
	}
	err = retry(ctx, func() error {
		_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key(docPK(kind), id)})
		return err
	})
	if err != nil {
		return fmt.Errorf("store/dynamo: delete doc %q: %w", docKey, err)
	}
	return nil
}

// ListDocs implements store.Docs: a strongly consistent Query of the kind's
// partition, expired documents filtered out. The cursor is the last key of
// the previous page; Next is set only when a live document follows.
func (s *Store) ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error) {
	if kind == "" || strings.Contains(kind, "/") {
		return store.Page[*store.Doc]{}, fmt.Errorf("store/dynamo: list docs: bad kind %q", kind)
	}
	limit = limitOr(limit)
	now := s.clock()
	in := &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk"),
		FilterExpression:          aws.String("attribute_not_exists(#exp) OR #exp > :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#exp": AttrTTL},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(docPK(kind)), ":now": avN(now.Unix())},
		ConsistentRead:            aws.Bool(true),
	}
	if cursor != "" {
		after, ok := strings.CutPrefix(cursor, kind+"/")
		if !ok || after == "" {
			return store.Page[*store.Doc]{}, fmt.Errorf("store/dynamo: list docs: cursor %q is not a %s key", cursor, kind)
		}
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk > :c")
		in.ExpressionAttributeNames["#sk"] = AttrSK
		in.ExpressionAttributeValues[":c"] = avS(after)
	}
	// One more than asked tells whether a next page exists.
	items, err := s.queryAll(ctx, in, limit+1)
	if err != nil {
		return store.Page[*store.Doc]{}, fmt.Errorf("store/dynamo: list docs: %w", err)
	}
	var page store.Page[*store.Doc]
	for _, item := range items {
		d, live, err := docFromItem(item, now)
		if err != nil {
			return store.Page[*store.Doc]{}, fmt.Errorf("store/dynamo: list docs: %w", err)
		}
		if !live {
			continue // the filter, with the same now, has dropped these already
		}
		if len(page.Items) == limit {
			page.Next = page.Items[limit-1].Key
			break
		}
		page.Items = append(page.Items, d)
	}
	return page, nil
}
