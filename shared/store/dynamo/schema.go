package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's key schema, for template.yaml. Every key attribute is a
// string (S). Billing is PAY_PER_REQUEST; TTL is enabled on AttrTTL.
const (
	AttrPK = "PK" // table partition key
	AttrSK = "SK" // table sort key

	// IndexList lists live identities ("USERS"), groups ("GROUPS") and one
	// target's links ("TARGET#<target>") in id order. Projection ALL.
	IndexList  = "GSI1"
	AttrListPK = "GSI1PK"
	AttrListSK = "GSI1SK"

	// IndexExternalID finds identities, tombstones included, by externalId
	// ("EXT#<externalId>", sort key id). Projection ALL.
	IndexExternalID  = "GSI2"
	AttrExternalIDPK = "GSI2PK"
	AttrExternalIDSK = "GSI2SK"

	// IndexPending is the sparse pending index ("PENDING", sort key
	// "<since>#<id>"). Projection INCLUDE id, version, pendingSince.
	IndexPending  = "GSI3"
	AttrPendingPK = "GSI3PK"
	AttrPendingSK = "GSI3SK"

	// AttrTTL holds an audit record's or a doc's expiry (epoch seconds).
	AttrTTL = "expiresAt"
)

// auditRetention is how long audit records live before TTL removes them.
const auditRetention = 400 * 24 * time.Hour

func createTableInput(table string) *dynamodb.CreateTableInput {
	str := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	keys := func(pk, sk string) []types.KeySchemaElement {
		return []types.KeySchemaElement{
			{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(sk), KeyType: types.KeyTypeRange},
		}
	}
	all := &types.Projection{ProjectionType: types.ProjectionTypeAll}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			str(AttrPK), str(AttrSK), str(AttrListPK), str(AttrListSK),
			str(AttrExternalIDPK), str(AttrExternalIDSK), str(AttrPendingPK), str(AttrPendingSK),
		},
		KeySchema: keys(AttrPK, AttrSK),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{IndexName: aws.String(IndexList), KeySchema: keys(AttrListPK, AttrListSK), Projection: all},
			{IndexName: aws.String(IndexExternalID), KeySchema: keys(AttrExternalIDPK, AttrExternalIDSK), Projection: all},
			{IndexName: aws.String(IndexPending), KeySchema: keys(AttrPendingPK, AttrPendingSK), Projection: &types.Projection{
				ProjectionType:   types.ProjectionTypeInclude,
				NonKeyAttributes: []string{attrID, attrVersion, attrPendingSince},
			}},
		},
	}
}

// CreateTable creates the table and its indexes, waits until they are
// ACTIVE and enables TTL on AttrTTL. A table that already exists is
// accepted (and waited for), so a local runner can call it on every start.
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	_, err := client.CreateTable(ctx, createTableInput(table))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("store/dynamo: create table %s: %w", table, err)
	}
	if err := waitActive(ctx, client, table); err != nil {
		return err
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(AttrTTL), Enabled: aws.Bool(true),
		},
	})
	// Enabling TTL twice is refused with a ValidationException; the state
	// is then already what we want.
	if err != nil && !ttlAlreadyOn(ctx, client, table) {
		return fmt.Errorf("store/dynamo: enable TTL on %s: %w", table, err)
	}
	return nil
}

func ttlAlreadyOn(ctx context.Context, client *dynamodb.Client, table string) bool {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || out.TimeToLiveDescription == nil {
		return false
	}
	d := out.TimeToLiveDescription
	return aws.ToString(d.AttributeName) == AttrTTL &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling)
}

// waitActive polls until the table and all its indexes are ACTIVE. The
// SDK's TableExists waiter does not look at the indexes.
func waitActive(ctx context.Context, client *dynamodb.Client, table string) error {
	delay := 200 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("store/dynamo: describe table %s: %w", table, err)
		}
		if tableActive(out.Table) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store/dynamo: waiting for table %s: %w", table, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func tableActive(t *types.TableDescription) bool {
	if t == nil || t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range t.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}
