package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/store"
)

// api is the part of *dynamodb.Client the store uses.
type api interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store is a store.Store on one DynamoDB table (see the package doc).
type Store struct {
	db    api
	table string
	now   func() time.Time
}

var _ store.Store = (*Store)(nil)

// New returns a store on table, which must have the schema CreateTable
// makes.
func New(client *dynamodb.Client, table string) *Store {
	return &Store{db: client, table: table, now: time.Now}
}

// Close does nothing: the client belongs to the caller.
func (s *Store) Close() error { return nil }

const (
	defaultLimit = 100
	// maxTxItems is DynamoDB's limit on items in one TransactWriteItems.
	maxTxItems = 100
	// maxAttempts bounds retries of transaction conflicts and of membership
	// chunks whose fresh reads went stale.
	maxAttempts = 10
	// timeKey is RFC 3339 with a fixed nine-digit fraction: string order
	// is time order (UTC only).
	timeKey = "2006-01-02T15:04:05.000000000Z"
	mainSK  = "A"

	listUsers  = "USERS"
	listGroups = "GROUPS"
	pendingPK  = "PENDING"

	attrKind         = "kind"
	attrID           = "id"
	attrVersion      = "version"
	attrDeleted      = "deleted"
	attrModified     = "modified"
	attrPendingSince = "pendingSince"
	attrSynced       = "syncedVersion"
)

func userPK(id string) string        { return "USER#" + id }
func groupPK(id string) string       { return "GROUP#" + id }
func userNamePK(name string) string  { return "USERNAME#" + store.FoldUserName(name) }
func groupNamePK(name string) string { return "GROUPNAME#" + store.FoldUserName(name) }
func memberSK(uid string) string     { return "MEMBER#" + uid }
func memberOfSK(gid string) string   { return "MEMBEROF#" + gid }
func linkSK(target string) string    { return "LINK#" + target }
func targetPK(target string) string  { return "TARGET#" + target }
func extPK(ext string) string        { return "EXT#" + ext }

func fmtTime(t time.Time) string { return t.UTC().Format(timeKey) }

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func (s *Store) clock() time.Time { return s.now().UTC() }

func limitOr(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// ---- attribute values ----

func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func avN(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func avB(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: avS(pk), AttrSK: avS(sk)}
}

func strAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// keys are the key attributes every item has, and the GSI keys some have.
type keys struct {
	PK     string `dynamodbav:"PK"`
	SK     string `dynamodbav:"SK"`
	Kind   string `dynamodbav:"kind"`
	GSI1PK string `dynamodbav:"GSI1PK,omitempty"`
	GSI1SK string `dynamodbav:"GSI1SK,omitempty"`
	GSI2PK string `dynamodbav:"GSI2PK,omitempty"`
	GSI2SK string `dynamodbav:"GSI2SK,omitempty"`
	GSI3PK string `dynamodbav:"GSI3PK,omitempty"`
	GSI3SK string `dynamodbav:"GSI3SK,omitempty"`
}

type identityItem struct {
	keys
	ID           string `dynamodbav:"id"`
	UserName     string `dynamodbav:"userName"`
	ExternalID   string `dynamodbav:"externalId,omitempty"`
	Active       bool   `dynamodbav:"active"`
	Deleted      bool   `dynamodbav:"deleted"`
	Resource     []byte `dynamodbav:"resource,omitempty"` // binary: kept byte-for-byte
	Version      int64  `dynamodbav:"version"`
	Created      string `dynamodbav:"created"`
	Modified     string `dynamodbav:"modified"`
	PendingSince string `dynamodbav:"pendingSince,omitempty"`
}

// newIdentityItem builds the item for id, pending since the given time
// (none when zero). Tombstones leave the listing index but stay in the
// externalId index, where FindTombstonesByExternalID finds them.
func newIdentityItem(id *store.Identity, pendingSince time.Time) *identityItem {
	it := &identityItem{
		keys: keys{PK: userPK(id.ID), SK: mainSK, Kind: "identity"},
		ID:   id.ID, UserName: id.UserName, ExternalID: id.ExternalID, Active: id.Active,
		Deleted: id.Deleted, Resource: id.Resource, Version: id.Version,
		Created: fmtTime(id.Created), Modified: fmtTime(id.Modified),
	}
	if !id.Deleted {
		it.GSI1PK, it.GSI1SK = listUsers, id.ID
	}
	if id.ExternalID != "" {
		it.GSI2PK, it.GSI2SK = extPK(id.ExternalID), id.ID
	}
	if !pendingSince.IsZero() {
		it.PendingSince = fmtTime(pendingSince)
		it.GSI3PK, it.GSI3SK = pendingPK, it.PendingSince+"#"+id.ID
	}
	return it
}

func (it *identityItem) identity() (*store.Identity, error) {
	created, err := parseTime(it.Created)
	if err != nil {
		return nil, err
	}
	modified, err := parseTime(it.Modified)
	if err != nil {
		return nil, err
	}
	return &store.Identity{
		ID: it.ID, UserName: it.UserName, ExternalID: it.ExternalID, Active: it.Active,
		Deleted: it.Deleted, Resource: it.Resource, Version: it.Version,
		Created: created, Modified: modified,
	}, nil
}

type groupItem struct {
	keys
	ID          string `dynamodbav:"id"`
	DisplayName string `dynamodbav:"displayName"`
	ExternalID  string `dynamodbav:"externalId,omitempty"`
	Resource    []byte `dynamodbav:"resource,omitempty"`
	Version     int64  `dynamodbav:"version"`
	Created     string `dynamodbav:"created"`
	Modified    string `dynamodbav:"modified"`
}

func newGroupItem(g *store.Group) *groupItem {
	return &groupItem{
		keys: keys{PK: groupPK(g.ID), SK: mainSK, Kind: "group", GSI1PK: listGroups, GSI1SK: g.ID},
		ID:   g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID, Resource: g.Resource,
		Version: g.Version, Created: fmtTime(g.Created), Modified: fmtTime(g.Modified),
	}
}

func (it *groupItem) group() (*store.Group, error) {
	created, err := parseTime(it.Created)
	if err != nil {
		return nil, err
	}
	modified, err := parseTime(it.Modified)
	if err != nil {
		return nil, err
	}
	return &store.Group{ID: it.ID, DisplayName: it.DisplayName, ExternalID: it.ExternalID,
		Resource: it.Resource, Version: it.Version, Created: created, Modified: modified}, nil
}

// nameItem reserves a userName or displayName for an id.
type nameItem struct {
	keys
	ID string `dynamodbav:"id"`
}

type linkItem struct {
	keys
	IdentityID    string   `dynamodbav:"identityId"`
	Target        string   `dynamodbav:"target"`
	LearnerID     string   `dynamodbav:"learnerId"`
	ExternalID    string   `dynamodbav:"externalId"`
	SyncedVersion int64    `dynamodbav:"syncedVersion"`
	Hash          string   `dynamodbav:"hash"`
	Applied       []string `dynamodbav:"applied,omitempty"`
	Updated       string   `dynamodbav:"updated"`
}

type auditItem struct {
	keys
	IdentityID    string `dynamodbav:"identityId"`
	Time          string `dynamodbav:"time"`
	Target        string `dynamodbav:"target,omitempty"`
	Actor         string `dynamodbav:"actor,omitempty"`
	Action        string `dynamodbav:"action,omitempty"`
	Detail        string `dynamodbav:"detail,omitempty"`
	SourceVersion int64  `dynamodbav:"sourceVersion,omitempty"`
	Reason        string `dynamodbav:"reason,omitempty"`
	RequestID     string `dynamodbav:"requestId,omitempty"`
	Result        string `dynamodbav:"result,omitempty"`
	ExpiresAt     int64  `dynamodbav:"expiresAt"`
}

type pendingItem struct {
	ID           string `dynamodbav:"id"`
	Version      int64  `dynamodbav:"version"`
	PendingSince string `dynamodbav:"pendingSince"`
}

func marshal(v any) (map[string]types.AttributeValue, error) {
	m, err := attributevalue.MarshalMap(v)
	if err != nil {
		return nil, fmt.Errorf("encode item: %w", err)
	}
	return m, nil
}

// ---- low-level operations ----

// errNoItem is returned by getItem for a missing item; callers turn it
// into the right store error.
var errNoItem = errors.New("no such item")

func (s *Store) getItem(ctx context.Context, pk, sk string, out any) error {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key(pk, sk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("get %s/%s: %w", pk, sk, err)
	}
	if res.Item == nil {
		return errNoItem
	}
	if err := attributevalue.UnmarshalMap(res.Item, out); err != nil {
		return fmt.Errorf("decode %s/%s: %w", pk, sk, err)
	}
	return nil
}

// getIdentity returns the identity item or nil when there is none.
func (s *Store) getIdentity(ctx context.Context, id string) (*identityItem, error) {
	var it identityItem
	err := s.getItem(ctx, userPK(id), mainSK, &it)
	if errors.Is(err, errNoItem) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &it, nil
}

func (s *Store) getGroup(ctx context.Context, id string) (*groupItem, error) {
	var it groupItem
	err := s.getItem(ctx, groupPK(id), mainSK, &it)
	if errors.Is(err, errNoItem) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// queryAll runs a query page after page until max items (0: all).
func (s *Store) queryAll(ctx context.Context, in *dynamodb.QueryInput, max int) ([]map[string]types.AttributeValue, error) {
	in.TableName = aws.String(s.table)
	var out []map[string]types.AttributeValue
	for {
		if max > 0 {
			in.Limit = aws.Int32(int32(max - len(out)))
		}
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		out = append(out, res.Items...)
		if len(res.LastEvaluatedKey) == 0 || (max > 0 && len(out) >= max) {
			return out, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// queryPartition reads the items of one partition whose sort key starts
// with prefix, strongly consistent.
func (s *Store) queryPartition(ctx context.Context, pk, prefix string) ([]map[string]types.AttributeValue, error) {
	return s.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :p)"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#sk": AttrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(pk), ":p": avS(prefix)},
		ConsistentRead:            aws.Bool(true),
	}, 0)
}

// batchGet reads items by key, strongly consistent, in any order.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	for chunk := range slices.Chunk(keys, 100) {
		req := map[string]types.KeysAndAttributes{s.table: {Keys: chunk, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("batch get: %w", err)
			}
			out = append(out, res.Responses[s.table]...)
			req = res.UnprocessedKeys
			if attempt >= maxAttempts && len(req) > 0 {
				return nil, errors.New("batch get: unprocessed keys after retries")
			}
		}
	}
	return out, nil
}

// backoff sleeps a jittered, exponentially growing delay before attempt.
func backoff(ctx context.Context, attempt int) error {
	ceiling := min(10*time.Millisecond<<min(attempt, 6), 500*time.Millisecond)
	d := time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// canceled is a transaction refused because of conditions: failed(i) says
// whether item i's condition failed.
type canceled struct {
	codes []string
	err   error
}

func (c *canceled) Error() string { return c.err.Error() }
func (c *canceled) Unwrap() error { return c.err }
func (c *canceled) failed(i int) bool {
	return i < len(c.codes) && c.codes[i] == "ConditionalCheckFailed"
}

// conflicted says whether err is a clash with a concurrent transaction,
// worth retrying as is.
func conflicted(err error) bool {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		retry := false
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed", "ValidationError", "ItemCollectionSizeLimitExceeded":
				return false
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded":
				retry = true
			}
		}
		return retry
	}
	var tc *types.TransactionConflictException
	return errors.As(err, &tc)
}

// retry runs op again on transaction conflicts, a bounded number of times.
func retry(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || !conflicted(err) || attempt+1 >= maxAttempts {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// transact writes items atomically, retrying conflicts. A refusal on
// conditions comes back as *canceled.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	err := retry(ctx, func() error {
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		return err
	})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && !conflicted(err) {
		c := &canceled{err: err}
		for _, r := range tce.CancellationReasons {
			c.codes = append(c.codes, aws.ToString(r.Code))
		}
		return c
	}
	if err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	return nil
}

func isCondFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func (s *Store) put(item map[string]types.AttributeValue, cond string, names map[string]string, values map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(s.table), Item: item, ConditionExpression: optional(cond),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	}}
}

func (s *Store) del(k map[string]types.AttributeValue, cond string, names map[string]string, values map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{
		TableName: aws.String(s.table), Key: k, ConditionExpression: optional(cond),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	}}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

const (
	condAbsent  = "attribute_not_exists(PK)"
	condPresent = "attribute_exists(PK)"
	// condLiveAt: the identity is live and at :v.
	condLiveAt = "#v = :v AND #d = :f"
	condOwner  = "#id = :id"
)

func liveAt(v int64) (map[string]string, map[string]types.AttributeValue) {
	return map[string]string{"#v": attrVersion, "#d": attrDeleted},
		map[string]types.AttributeValue{":v": avN(v), ":f": avB(false)}
}

func ownedBy(id string) (map[string]string, map[string]types.AttributeValue) {
	return map[string]string{"#id": attrID}, map[string]types.AttributeValue{":id": avS(id)}
}

func versionAt(v int64) (map[string]string, map[string]types.AttributeValue) {
	return map[string]string{"#v": attrVersion}, map[string]types.AttributeValue{":v": avN(v)}
}

func (s *Store) nameItem(pk, id, kind string) (map[string]types.AttributeValue, error) {
	return marshal(&nameItem{keys: keys{PK: pk, SK: mainSK, Kind: kind}, ID: id})
}

func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound) }

func conflict(kind, id string, want, have int64) error {
	return fmt.Errorf("%s %q at version %d, expected %d: %w", kind, id, have, want, store.ErrVersionConflict)
}

// identityRefusal explains why a write conditioned on the identity being
// live at version expected was refused, by reading it again.
func (s *Store) identityRefusal(ctx context.Context, id string, expected int64) error {
	it, err := s.getIdentity(ctx, id)
	if err != nil {
		return err
	}
	if it == nil || it.Deleted {
		return notFound("identity", id)
	}
	return conflict("identity", id, expected, it.Version)
}

func (s *Store) groupRefusal(ctx context.Context, id string, expected int64) error {
	it, err := s.getGroup(ctx, id)
	if err != nil {
		return err
	}
	if it == nil {
		return notFound("group", id)
	}
	return conflict("group", id, expected, it.Version)
}

// ---- identities ----

// CreateIdentity implements store.Identities. An ID held by a tombstone is
// taken too (ErrExists), so an identity's versions never restart.
func (s *Store) CreateIdentity(ctx context.Context, id *store.Identity) error {
	if id.ID == "" || id.UserName == "" {
		return errors.New("store/dynamo: create identity: empty id or userName")
	}
	now := s.clock()
	rec := *id
	rec.Deleted, rec.Version, rec.Created, rec.Modified = false, 1, now, now
	item, err := marshal(newIdentityItem(&rec, now))
	if err != nil {
		return fmt.Errorf("store/dynamo: create identity: %w", err)
	}
	name, err := s.nameItem(userNamePK(id.UserName), id.ID, "userName")
	if err != nil {
		return fmt.Errorf("store/dynamo: create identity: %w", err)
	}
	err = s.transact(ctx, []types.TransactWriteItem{
		s.put(item, condAbsent, nil, nil),
		s.put(name, condAbsent, nil, nil),
	})
	var c *canceled
	switch {
	case errors.As(err, &c) && c.failed(0):
		return fmt.Errorf("store/dynamo: create identity %q: %w", id.ID, store.ErrExists)
	case errors.As(err, &c) && c.failed(1):
		return fmt.Errorf("store/dynamo: create identity %q: %w", id.ID, store.ErrUserNameTaken)
	case err != nil:
		return fmt.Errorf("store/dynamo: create identity: %w", err)
	}
	id.Deleted, id.Version, id.Created, id.Modified = false, 1, now, now
	return nil
}

// GetIdentity implements store.Identities.
func (s *Store) GetIdentity(ctx context.Context, id string) (*store.Identity, error) {
	it, err := s.getIdentity(ctx, id)
	if err == nil && it == nil {
		err = notFound("identity", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get identity: %w", err)
	}
	out, err := it.identity()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get identity: %w", err)
	}
	return out, nil
}

// GetIdentityByUserName implements store.Identities.
func (s *Store) GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error) {
	var name nameItem
	err := s.getItem(ctx, userNamePK(userName), mainSK, &name)
	if errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("store/dynamo: get identity by userName: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get identity by userName: %w", err)
	}
	it, err := s.getIdentity(ctx, name.ID)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get identity by userName: %w", err)
	}
	// Between the two reads the identity may have been renamed or deleted.
	if it == nil || it.Deleted || store.FoldUserName(it.UserName) != store.FoldUserName(userName) {
		return nil, fmt.Errorf("store/dynamo: get identity by userName: %w", store.ErrNotFound)
	}
	out, err := it.identity()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get identity by userName: %w", err)
	}
	return out, nil
}

// FindIdentitiesByExternalID implements store.Identities; results are in ID
// order. It reads a GSI, so it is eventually consistent.
func (s *Store) FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error) {
	out, err := s.findByExternalID(ctx, externalID, false)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: find identities by externalId: %w", err)
	}
	return out, nil
}

// FindTombstonesByExternalID implements store.Identities; results are in ID
// order. It reads a GSI, so it is eventually consistent. Tombstones written
// before they stayed in that index are not found.
func (s *Store) FindTombstonesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error) {
	out, err := s.findByExternalID(ctx, externalID, true)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: find tombstones by externalId: %w", err)
	}
	return out, nil
}

// findByExternalID reads the externalId index partition and keeps the
// tombstones (deleted) or the live identities.
func (s *Store) findByExternalID(ctx context.Context, externalID string, deleted bool) ([]*store.Identity, error) {
	if externalID == "" {
		return nil, nil
	}
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(IndexExternalID),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrExternalIDPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(extPK(externalID))},
	}, 0)
	if err != nil {
		return nil, err
	}
	return decodeIdentities(items, deleted)
}

// decodeIdentities decodes identity items, keeping the tombstones when
// deleted is set and the live identities otherwise.
func decodeIdentities(items []map[string]types.AttributeValue, deleted bool) ([]*store.Identity, error) {
	out := make([]*store.Identity, 0, len(items))
	for _, item := range items {
		var it identityItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, fmt.Errorf("decode identity: %w", err)
		}
		if it.Deleted != deleted {
			continue
		}
		id, err := it.identity()
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// UpdateIdentity implements store.Identities. Created is kept from the
// stored identity; Modified is set to now.
func (s *Store) UpdateIdentity(ctx context.Context, id *store.Identity, expectedVersion int64) error {
	if id.UserName == "" {
		return errors.New("store/dynamo: update identity: empty userName")
	}
	cur, err := s.getIdentity(ctx, id.ID)
	if err != nil {
		return fmt.Errorf("store/dynamo: update identity: %w", err)
	}
	if cur == nil || cur.Deleted {
		return fmt.Errorf("store/dynamo: update identity: %w", notFound("identity", id.ID))
	}
	if cur.Version != expectedVersion {
		return fmt.Errorf("store/dynamo: update identity: %w", conflict("identity", id.ID, expectedVersion, cur.Version))
	}
	created, err := parseTime(cur.Created)
	if err != nil {
		return fmt.Errorf("store/dynamo: update identity: %w", err)
	}
	now := s.clock()
	rec := *id
	rec.Deleted, rec.Version, rec.Created, rec.Modified = false, expectedVersion+1, created, now
	item, err := marshal(newIdentityItem(&rec, now))
	if err != nil {
		return fmt.Errorf("store/dynamo: update identity: %w", err)
	}
	names, values := liveAt(expectedVersion)

	if store.FoldUserName(cur.UserName) == store.FoldUserName(id.UserName) {
		err = retry(ctx, func() error {
			_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String(condLiveAt),
				ExpressionAttributeNames: names, ExpressionAttributeValues: values,
			})
			return err
		})
		if isCondFailed(err) {
			err = s.identityRefusal(ctx, id.ID, expectedVersion)
		}
	} else {
		newName, nerr := s.nameItem(userNamePK(id.UserName), id.ID, "userName")
		if nerr != nil {
			return fmt.Errorf("store/dynamo: update identity: %w", nerr)
		}
		on, ov := ownedBy(id.ID)
		err = s.transact(ctx, []types.TransactWriteItem{
			s.put(item, condLiveAt, names, values),
			s.del(key(userNamePK(cur.UserName), mainSK), condOwner, on, ov),
			s.put(newName, condAbsent, nil, nil),
		})
		var c *canceled
		switch {
		case errors.As(err, &c) && (c.failed(0) || c.failed(1)):
			err = s.identityRefusal(ctx, id.ID, expectedVersion)
		case errors.As(err, &c) && c.failed(2):
			err = fmt.Errorf("identity %q: %w", id.ID, store.ErrUserNameTaken)
		}
	}
	if err != nil {
		return fmt.Errorf("store/dynamo: update identity: %w", err)
	}
	id.Deleted, id.Version, id.Created, id.Modified = false, rec.Version, created, now
	return nil
}

// DeleteIdentity implements store.Identities. The groups the identity
// leaves keep their versions: a group's version tracks writes to the group.
// Memberships beyond the first transaction's room are removed in further
// transactions after the tombstone is written.
func (s *Store) DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*store.Identity, error) {
	cur, err := s.getIdentity(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", err)
	}
	if cur == nil || cur.Deleted {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", notFound("identity", id))
	}
	if cur.Version != expectedVersion {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", conflict("identity", id, expectedVersion, cur.Version))
	}
	// Every membership change bumps the version, so the version condition
	// below also guarantees this list is complete.
	memberOf, err := s.queryPartition(ctx, userPK(id), memberOfSK(""))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", err)
	}
	tomb, err := cur.identity()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", err)
	}
	now := s.clock()
	tomb.Deleted, tomb.Version, tomb.Modified = true, expectedVersion+1, now
	item, err := marshal(newIdentityItem(tomb, now))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", err)
	}
	names, values := liveAt(expectedVersion)
	on, ov := ownedBy(id)
	first := []types.TransactWriteItem{
		s.put(item, condLiveAt, names, values),
		s.del(key(userNamePK(cur.UserName), mainSK), condOwner, on, ov),
	}
	var removals []types.TransactWriteItem
	for _, m := range memberOf {
		gid := strings.TrimPrefix(strAttr(m, AttrSK), memberOfSK(""))
		removals = append(removals,
			s.del(key(groupPK(gid), memberSK(id)), "", nil, nil),
			s.del(key(userPK(id), memberOfSK(gid)), "", nil, nil))
	}
	room := min(len(removals), maxTxItems-len(first))
	err = s.transact(ctx, append(first, removals[:room]...))
	var c *canceled
	if errors.As(err, &c) && (c.failed(0) || c.failed(1)) {
		err = s.identityRefusal(ctx, id, expectedVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: delete identity: %w", err)
	}
	for chunk := range slices.Chunk(removals[room:], maxTxItems) {
		if err := s.transact(ctx, chunk); err != nil {
			return nil, fmt.Errorf("store/dynamo: delete identity %q: tombstone written, removing memberships: %w", id, err)
		}
	}
	return tomb, nil
}

// listPage reads one page of the listing index partition pk, after cursor.
func (s *Store) listPage(ctx context.Context, pk, cursor string, limit int) ([]map[string]types.AttributeValue, string, error) {
	limit = limitOr(limit)
	in := &dynamodb.QueryInput{
		IndexName:                 aws.String(IndexList),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrListPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(pk)},
	}
	if cursor != "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk > :c")
		in.ExpressionAttributeNames["#sk"] = AttrListSK
		in.ExpressionAttributeValues[":c"] = avS(cursor)
	}
	// One more than asked tells whether a next page exists.
	items, err := s.queryAll(ctx, in, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, strAttr(items[limit-1], AttrListSK), nil
}

func (s *Store) count(ctx context.Context, pk string) (int, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexList),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrListPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(pk)},
		Select:                    types.SelectCount,
	}
	n := 0
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count: %w", err)
		}
		n += int(res.Count)
		if len(res.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// ListIdentities implements store.Identities. The cursor is the last ID of
// the previous page. Eventually consistent (GSI).
func (s *Store) ListIdentities(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error) {
	items, next, err := s.listPage(ctx, listUsers, cursor, limit)
	if err != nil {
		return store.Page[*store.Identity]{}, fmt.Errorf("store/dynamo: list identities: %w", err)
	}
	ids, err := decodeIdentities(items, false)
	if err != nil {
		return store.Page[*store.Identity]{}, fmt.Errorf("store/dynamo: list identities: %w", err)
	}
	return store.Page[*store.Identity]{Items: ids, Next: next}, nil
}

// CountIdentities implements store.Identities (Query COUNT on the listing
// index; eventually consistent).
func (s *Store) CountIdentities(ctx context.Context) (int, error) {
	n, err := s.count(ctx, listUsers)
	if err != nil {
		return 0, fmt.Errorf("store/dynamo: count identities: %w", err)
	}
	return n, nil
}

// ---- pending ----

// ListPending implements store.Sync, oldest first. Eventually consistent
// (GSI), which suits a sweeper looking for old marks.
func (s *Store) ListPending(ctx context.Context, olderThan time.Time, limit int) ([]store.Pending, error) {
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(IndexPending),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk < :b"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPendingPK, "#sk": AttrPendingSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(pendingPK), ":b": avS(fmtTime(olderThan))},
	}, limitOr(limit))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: list pending: %w", err)
	}
	out := make([]store.Pending, 0, len(items))
	for _, item := range items {
		var p pendingItem
		if err := attributevalue.UnmarshalMap(item, &p); err != nil {
			return nil, fmt.Errorf("store/dynamo: list pending: decode: %w", err)
		}
		since, err := parseTime(p.PendingSince)
		if err != nil {
			return nil, fmt.Errorf("store/dynamo: list pending: %w", err)
		}
		out = append(out, store.Pending{ID: p.ID, Version: p.Version, Since: since})
	}
	return out, nil
}

// ClearPending implements store.Sync: a no-op when the identity has moved
// past version; ErrNotFound when there is no such identity.
func (s *Store) ClearPending(ctx context.Context, id string, version int64) error {
	names, values := versionAt(version)
	names["#ps"], names["#p3"], names["#s3"] = attrPendingSince, AttrPendingPK, AttrPendingSK
	err := retry(ctx, func() error {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(s.table), Key: key(userPK(id), mainSK),
			UpdateExpression:          aws.String("REMOVE #ps, #p3, #s3"),
			ConditionExpression:       aws.String("#v = :v"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		})
		return err
	})
	if isCondFailed(err) {
		it, gerr := s.getIdentity(ctx, id)
		switch {
		case gerr != nil:
			err = gerr
		case it == nil:
			err = notFound("identity", id)
		default:
			err = nil // moved on: the newer version stays pending
		}
	}
	if err != nil {
		return fmt.Errorf("store/dynamo: clear pending: %w", err)
	}
	return nil
}

// ---- links ----

// GetLink implements store.Links.
func (s *Store) GetLink(ctx context.Context, identityID, target string) (*store.Link, error) {
	var it linkItem
	err := s.getItem(ctx, userPK(identityID), linkSK(target), &it)
	if errors.Is(err, errNoItem) {
		err = fmt.Errorf("link %q/%q: %w", identityID, target, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get link: %w", err)
	}
	l, err := it.link()
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: get link: %w", err)
	}
	return l, nil
}

func (it *linkItem) link() (*store.Link, error) {
	updated, err := parseTime(it.Updated)
	if err != nil {
		return nil, err
	}
	return &store.Link{IdentityID: it.IdentityID, Target: it.Target, LearnerID: it.LearnerID,
		ExternalID: it.ExternalID, SyncedVersion: it.SyncedVersion, Hash: it.Hash,
		Applied: it.Applied, Updated: updated}, nil
}

// PutLink implements store.Links. Updated is set to now when zero.
func (s *Store) PutLink(ctx context.Context, l *store.Link) error {
	if l.IdentityID == "" || l.Target == "" {
		return errors.New("store/dynamo: put link: empty identity id or target")
	}
	updated := l.Updated.UTC()
	if l.Updated.IsZero() {
		updated = s.clock()
	}
	item, err := marshal(&linkItem{
		keys:       keys{PK: userPK(l.IdentityID), SK: linkSK(l.Target), Kind: "link", GSI1PK: targetPK(l.Target), GSI1SK: l.IdentityID},
		IdentityID: l.IdentityID, Target: l.Target, LearnerID: l.LearnerID, ExternalID: l.ExternalID,
		SyncedVersion: l.SyncedVersion, Hash: l.Hash, Applied: l.Applied, Updated: fmtTime(updated),
	})
	if err != nil {
		return fmt.Errorf("store/dynamo: put link: %w", err)
	}
	err = retry(ctx, func() error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(s.table), Item: item,
			ConditionExpression:       aws.String("attribute_not_exists(PK) OR #sv <= :sv"),
			ExpressionAttributeNames:  map[string]string{"#sv": attrSynced},
			ExpressionAttributeValues: map[string]types.AttributeValue{":sv": avN(l.SyncedVersion)},
		})
		return err
	})
	if isCondFailed(err) {
		err = fmt.Errorf("link %q/%q newer than %d: %w", l.IdentityID, l.Target, l.SyncedVersion, store.ErrVersionConflict)
	}
	if err != nil {
		return fmt.Errorf("store/dynamo: put link: %w", err)
	}
	l.Updated = updated
	return nil
}

// ListLinks implements store.Links, in IdentityID order; the cursor is the
// last IdentityID of the previous page. Eventually consistent (GSI).
func (s *Store) ListLinks(ctx context.Context, target, cursor string, limit int) (store.Page[*store.Link], error) {
	items, next, err := s.listPage(ctx, targetPK(target), cursor, limit)
	if err != nil {
		return store.Page[*store.Link]{}, fmt.Errorf("store/dynamo: list links: %w", err)
	}
	page := store.Page[*store.Link]{Next: next, Items: make([]*store.Link, 0, len(items))}
	for _, item := range items {
		var it linkItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return store.Page[*store.Link]{}, fmt.Errorf("store/dynamo: list links: decode: %w", err)
		}
		l, err := it.link()
		if err != nil {
			return store.Page[*store.Link]{}, fmt.Errorf("store/dynamo: list links: %w", err)
		}
		page.Items = append(page.Items, l)
	}
	return page, nil
}

// ---- audit ----

// AppendAudit implements store.Audit. A zero Time is set to now. Records
// expire (TTL) auditRetention after their Time.
func (s *Store) AppendAudit(ctx context.Context, r *store.AuditRecord) error {
	t := r.Time.UTC()
	if r.Time.IsZero() {
		t = s.clock()
	}
	// The random suffix keeps records with equal times apart.
	sk := fmt.Sprintf("AUDIT#%s#%016x", fmtTime(t), rand.Uint64())
	item, err := marshal(&auditItem{
		keys:       keys{PK: userPK(r.IdentityID), SK: sk, Kind: "audit"},
		IdentityID: r.IdentityID, Time: fmtTime(t), Target: r.Target, Actor: r.Actor, Action: r.Action,
		Detail: r.Detail, SourceVersion: r.SourceVersion, Reason: r.Reason, RequestID: r.RequestID,
		Result: r.Result, ExpiresAt: t.Add(auditRetention).Unix(),
	})
	if err != nil {
		return fmt.Errorf("store/dynamo: append audit: %w", err)
	}
	err = retry(ctx, func() error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item})
		return err
	})
	if err != nil {
		return fmt.Errorf("store/dynamo: append audit: %w", err)
	}
	r.Time = t
	return nil
}

// ListAudit implements store.Audit, newest first.
func (s *Store) ListAudit(ctx context.Context, identityID string, limit int) ([]store.AuditRecord, error) {
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :p)"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#sk": AttrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(userPK(identityID)), ":p": avS("AUDIT#")},
		ScanIndexForward:          aws.Bool(false),
		ConsistentRead:            aws.Bool(true),
	}, limitOr(limit))
	if err != nil {
		return nil, fmt.Errorf("store/dynamo: list audit: %w", err)
	}
	out := make([]store.AuditRecord, 0, len(items))
	for _, item := range items {
		var it auditItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, fmt.Errorf("store/dynamo: list audit: decode: %w", err)
		}
		t, err := parseTime(it.Time)
		if err != nil {
			return nil, fmt.Errorf("store/dynamo: list audit: %w", err)
		}
		out = append(out, store.AuditRecord{IdentityID: it.IdentityID, Time: t, Target: it.Target,
			Actor: it.Actor, Action: it.Action, Detail: it.Detail, SourceVersion: it.SourceVersion,
			Reason: it.Reason, RequestID: it.RequestID, Result: it.Result})
	}
	return out, nil
}
