package tokencache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of *dynamodb.Client that Dynamo uses.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Attribute names of the token item. The key attributes are the store's
// single-table keys.
const (
	attrPK         = "PK"
	attrSK         = "SK"
	attrValue      = "token"
	attrExpires    = "tokenExpires" // Unix nanoseconds; absent when unknown. Not "expiresAt": that is the table's TTL attribute (seconds)
	attrGeneration = "generation"   // >= 1
	attrUpdatedAt  = "updatedAt"    // Unix milliseconds, for operators
)

// Dynamo is a Cache shared by every worker through one DynamoDB item,
// PK = "TOKEN#<key>", SK = "A", in the store's single table.
//
// The token value is stored in clear in the item, so the table must have
// server-side encryption (SSE, the DynamoDB default, ideally with a
// customer-managed KMS key) and IAM access limited to the workers. The
// value is never logged and never appears in errors.
type Dynamo struct {
	client DynamoAPI
	table  string
	key    map[string]types.AttributeValue
}

// NewDynamo returns a cache for the token named key (e.g. the target id)
// in table. client is usually a *dynamodb.Client.
func NewDynamo(client DynamoAPI, table, key string) *Dynamo {
	return &Dynamo{
		client: client,
		table:  table,
		key: map[string]types.AttributeValue{
			attrPK: &types.AttributeValueMemberS{Value: "TOKEN#" + key},
			attrSK: &types.AttributeValueMemberS{Value: "A"},
		},
	}
}

// Get returns the stored token, or ErrNoToken (with Generation 0). It reads
// strongly consistently, so a caller that lost a Replace sees the winner's
// token.
func (d *Dynamo) Get(ctx context.Context) (Token, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            d.key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Token{}, fmt.Errorf("tokencache: get: %w", err)
	}
	if len(out.Item) == 0 {
		return Token{}, ErrNoToken
	}
	return decode(out.Item)
}

// Replace stores next as generation prev+1 if the stored generation is
// still prev (0: nothing stored), in one conditional PutItem. Otherwise it
// returns ErrStale together with the token currently stored (when DynamoDB
// returned it), which the caller may use instead of calling Get.
func (d *Dynamo) Replace(ctx context.Context, prev int64, next Token) (Token, error) {
	if err := validate(prev, next); err != nil {
		return Token{}, err
	}
	stored := Token{Value: next.Value, Expires: next.Expires.Round(0), Generation: prev + 1}
	item := map[string]types.AttributeValue{
		attrPK:         d.key[attrPK],
		attrSK:         d.key[attrSK],
		attrValue:      &types.AttributeValueMemberS{Value: stored.Value},
		attrGeneration: num(stored.Generation),
		attrUpdatedAt:  num(time.Now().UnixMilli()),
	}
	if !stored.Expires.IsZero() {
		item[attrExpires] = num(stored.Expires.UnixNano())
		stored.Expires = time.Unix(0, stored.Expires.UnixNano()).UTC()
	}
	in := &dynamodb.PutItemInput{
		TableName:                           aws.String(d.table),
		Item:                                item,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
		in.ExpressionAttributeNames = map[string]string{"#pk": attrPK}
	} else {
		in.ConditionExpression = aws.String("#g = :prev")
		in.ExpressionAttributeNames = map[string]string{"#g": attrGeneration}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": num(prev)}
	}
	_, err := d.client.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return stored, nil
	case errors.As(err, &ccf):
		if len(ccf.Item) == 0 {
			return Token{}, ErrStale
		}
		cur, derr := decode(ccf.Item)
		if derr != nil {
			return Token{}, fmt.Errorf("%w (%w)", ErrStale, derr)
		}
		return cur, ErrStale
	default:
		// The SDK's error never contains the request body, so the token
		// cannot leak through it.
		return Token{}, fmt.Errorf("tokencache: replace generation %d: %w", prev, err)
	}
}

func num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func decode(item map[string]types.AttributeValue) (Token, error) {
	var t Token
	v, ok := item[attrValue].(*types.AttributeValueMemberS)
	if !ok {
		return Token{}, fmt.Errorf("tokencache: item has no %q string", attrValue)
	}
	t.Value = v.Value
	g, err := intAttr(item, attrGeneration)
	if err != nil {
		return Token{}, err
	}
	if g < 1 {
		return Token{}, fmt.Errorf("tokencache: item has generation %d", g)
	}
	t.Generation = g
	if _, ok := item[attrExpires]; ok {
		ns, err := intAttr(item, attrExpires)
		if err != nil {
			return Token{}, err
		}
		t.Expires = time.Unix(0, ns).UTC()
	}
	return t, nil
}

func intAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("tokencache: item has no %q number", name)
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tokencache: item attribute %q: %w", name, err)
	}
	return v, nil
}
