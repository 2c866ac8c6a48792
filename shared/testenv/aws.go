package testenv

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/store/dynamo"
)

// Region, AccessKeyID and SecretAccessKey are what the test servers are
// addressed with (the emulators accept any static credentials).
const (
	Region          = "us-east-1"
	AccessKeyID     = "test"
	SecretAccessKey = "test"
)

func credentialsProvider() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")
}

// DynamoClient is a client for the DynamoDB test server (see DynamoDB).
func DynamoClient(t testing.TB) *dynamodb.Client {
	t.Helper()
	return dynamodb.New(dynamodb.Options{Region: Region, Credentials: credentialsProvider(), BaseEndpoint: aws.String(DynamoDB(t))})
}

// SQSClient is a client for the SQS test server (see SQS).
func SQSClient(t testing.TB) *sqs.Client {
	t.Helper()
	return sqs.New(sqs.Options{Region: Region, Credentials: credentialsProvider(), BaseEndpoint: aws.String(SQS(t))})
}

// UniqueName is prefix and 12 random lower-case characters: the servers
// are shared, so everything a test makes there is uniquely named.
func UniqueName(prefix string) string {
	return prefix + strings.ToLower(rand.Text()[:12])
}

// StoreTable creates a uniquely named table the way the store does
// (dynamo.CreateTable) and deletes it (only it) after the test.
func StoreTable(t testing.TB, client *dynamodb.Client, prefix string) string {
	t.Helper()
	table := UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := dynamo.CreateTable(ctx, client, table); err != nil {
		t.Fatalf("CreateTable %s: %v", table, err)
	}
	deleteTableAfter(t, client, table)
	return table
}

// BareTable creates a uniquely named table with only the store's PK/SK
// string keys (no indexes, no TTL) and deletes it (only it) after the test.
func BareTable(t testing.TB, client *dynamodb.Client, prefix string) string {
	t.Helper()
	table := UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(dynamo.AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(dynamo.AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(dynamo.AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(dynamo.AttrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create table %s: %v", table, err)
	}
	deleteTableAfter(t, client, table)
	return table
}

func deleteTableAfter(t testing.TB, client *dynamodb.Client, table string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Logf("DeleteTable %s: %v", table, err)
		}
	})
}

// LambdaEnv sets, for the rest of the test, the AWS environment a deployed
// function would see, pointed at the DynamoDB and SQS test servers with
// the static test credentials; no profile, shared config or instance
// metadata can leak in. extra is set as well (and wins).
func LambdaEnv(t *testing.T, extra map[string]string) {
	t.Helper()
	env := map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":   DynamoDB(t),
		"AWS_ENDPOINT_URL_SQS":        SQS(t),
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	for k, v := range extra {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}
