package template_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/store/dynamo"
	"github.com/learnerlink/learnerlink/shared/testenv"
)

// schema is a table's key design in a comparable form.
type schema struct {
	Attrs map[string]string   // attribute -> type
	Key   string              // "PK HASH, SK RANGE"
	GSIs  map[string]gsiShape // index name -> shape
	TTL   string
}

type gsiShape struct {
	Key        string
	Projection string // "ALL" or "INCLUDE a,b,c" (sorted)
}

func keyString(names, kinds []string) string {
	parts := make([]string, len(names))
	for i := range names {
		parts[i] = names[i] + " " + kinds[i]
	}
	return strings.Join(parts, ", ")
}

func projString(kind string, nonKey []string) string {
	if len(nonKey) == 0 {
		return kind
	}
	s := slices.Sorted(slices.Values(nonKey))
	return kind + " " + strings.Join(s, ",")
}

func templateSchema(t *testing.T) schema {
	t.Helper()
	tb, err := loadTemplate(t).cf.GetDynamoDBTableWithName("Table")
	if err != nil {
		t.Fatal(err)
	}
	s := schema{Attrs: map[string]string{}, GSIs: map[string]gsiShape{}}
	for _, a := range tb.AttributeDefinitions {
		s.Attrs[a.AttributeName] = a.AttributeType
	}
	var n, k []string
	for _, e := range tb.KeySchema {
		n, k = append(n, e.AttributeName), append(k, e.KeyType)
	}
	s.Key = keyString(n, k)
	for _, g := range tb.GlobalSecondaryIndexes {
		var n, k []string
		for _, e := range g.KeySchema {
			n, k = append(n, e.AttributeName), append(k, e.KeyType)
		}
		var kind string
		var nonKey []string
		if g.Projection != nil && g.Projection.ProjectionType != nil {
			kind, nonKey = *g.Projection.ProjectionType, g.Projection.NonKeyAttributes
		}
		s.GSIs[g.IndexName] = gsiShape{Key: keyString(n, k), Projection: projString(kind, nonKey)}
	}
	if tb.TimeToLiveSpecification != nil && tb.TimeToLiveSpecification.Enabled && tb.TimeToLiveSpecification.AttributeName != nil {
		s.TTL = *tb.TimeToLiveSpecification.AttributeName
	}
	// Operational settings the store's doc asks for.
	if tb.BillingMode == nil || *tb.BillingMode != "PAY_PER_REQUEST" {
		t.Error("Table: BillingMode must be PAY_PER_REQUEST")
	}
	if tb.PointInTimeRecoverySpecification == nil || tb.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled == nil || !*tb.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled {
		t.Error("Table: point-in-time recovery must be enabled")
	}
	if tb.SSESpecification == nil || !tb.SSESpecification.SSEEnabled {
		t.Error("Table: SSE must be enabled (the target's API token is an item)")
	}
	if tb.AWSCloudFormationDeletionPolicy != "Retain" || tb.AWSCloudFormationUpdateReplacePolicy != "Retain" {
		t.Error("Table: DeletionPolicy and UpdateReplacePolicy must be Retain (desired state and audit log)")
	}
	return s
}

// TestTableMatchesStoreConstants compares the template's table with the
// exported constants of shared/store/dynamo (and its doc.go for the GSI3
// projection, whose attribute names are unexported).
func TestTableMatchesStoreConstants(t *testing.T) {
	got := templateSchema(t)
	want := schema{
		Attrs: map[string]string{},
		Key:   keyString([]string{dynamo.AttrPK, dynamo.AttrSK}, []string{"HASH", "RANGE"}),
		GSIs: map[string]gsiShape{
			dynamo.IndexList:       {Key: keyString([]string{dynamo.AttrListPK, dynamo.AttrListSK}, []string{"HASH", "RANGE"}), Projection: "ALL"},
			dynamo.IndexExternalID: {Key: keyString([]string{dynamo.AttrExternalIDPK, dynamo.AttrExternalIDSK}, []string{"HASH", "RANGE"}), Projection: "ALL"},
			dynamo.IndexPending: {Key: keyString([]string{dynamo.AttrPendingPK, dynamo.AttrPendingSK}, []string{"HASH", "RANGE"}),
				Projection: projString("INCLUDE", []string{"id", "version", "pendingSince"})},
		},
		TTL: dynamo.AttrTTL,
	}
	for _, a := range []string{dynamo.AttrPK, dynamo.AttrSK, dynamo.AttrListPK, dynamo.AttrListSK,
		dynamo.AttrExternalIDPK, dynamo.AttrExternalIDSK, dynamo.AttrPendingPK, dynamo.AttrPendingSK} {
		want.Attrs[a] = "S"
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("template.yaml Table:\n got  %+v\n want %+v", got, want)
	}
}

// TestTableMatchesCreateTable creates the store's own table on DynamoDB
// Local (dynamo.CreateTable, what local runs and tests use) and compares
// what DescribeTable reports with the template: same keys, indexes,
// projections and TTL.
func TestTableMatchesCreateTable(t *testing.T) {
	client := testenv.DynamoClient(t)
	table := testenv.StoreTable(t, client, "learnerlink-template-")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	live := schema{Attrs: map[string]string{}, GSIs: map[string]gsiShape{}}
	for _, a := range d.Table.AttributeDefinitions {
		live.Attrs[aws.ToString(a.AttributeName)] = string(a.AttributeType)
	}
	keys := func(ks []types.KeySchemaElement) string {
		var n, k []string
		for _, e := range ks {
			n, k = append(n, aws.ToString(e.AttributeName)), append(k, string(e.KeyType))
		}
		return keyString(n, k)
	}
	live.Key = keys(d.Table.KeySchema)
	for _, g := range d.Table.GlobalSecondaryIndexes {
		live.GSIs[aws.ToString(g.IndexName)] = gsiShape{Key: keys(g.KeySchema), Projection: projString(string(g.Projection.ProjectionType), g.Projection.NonKeyAttributes)}
	}
	if td := ttl.TimeToLiveDescription; td != nil && (td.TimeToLiveStatus == types.TimeToLiveStatusEnabled || td.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		live.TTL = aws.ToString(td.AttributeName)
	}
	if got := templateSchema(t); !reflect.DeepEqual(got, live) {
		t.Errorf("template.yaml Table differs from dynamo.CreateTable:\n template %s\n store    %s", fmtSchema(got), fmtSchema(live))
	}
}

func fmtSchema(s schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key [%s] ttl %q attrs %v", s.Key, s.TTL, s.Attrs)
	for _, name := range slices.Sorted(maps.Keys(s.GSIs)) {
		fmt.Fprintf(&b, " %s[%s; %s]", name, s.GSIs[name].Key, s.GSIs[name].Projection)
	}
	return b.String()
}
