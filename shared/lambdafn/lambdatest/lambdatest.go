// Package lambdatest sets up what a deployed function runs against, on
// the real DynamoDB Local and SQS emulator (see package testenv): a fresh
// store table, a fresh queue pair, and the function's environment.
package lambdatest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/queue/sqs"
	"github.com/learnerlink/learnerlink/shared/testenv"
)

// Stack is a uniquely named store table and queue pair (queue and DLQ) on
// the shared test servers; the test deletes them (only them) when it ends.
type Stack struct {
	DDB              *dynamodb.Client
	SQS              *awssqs.Client
	Table            string
	QueueURL, DLQURL string
}

// New creates the table (dynamo.CreateTable) and the queues
// (sqs.CreateQueues), named prefix and a random suffix.
func New(t *testing.T, prefix string) *Stack {
	t.Helper()
	s := &Stack{DDB: testenv.DynamoClient(t), SQS: testenv.SQSClient(t)}
	s.Table = testenv.StoreTable(t, s.DDB, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	s.QueueURL, s.DLQURL, err = sqs.CreateQueues(ctx, s.SQS, s.Table, sqs.CreateOptions{})
	if err != nil {
		t.Fatalf("create queues: %v", err)
	}
	t.Cleanup(func() {
		for _, u := range []string{s.QueueURL, s.DLQURL} {
			_, _ = s.SQS.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	return s
}

// Setenv sets the environment the deployed function sees: testenv's AWS
// variables, LEARNERLINK_TABLE, LEARNERLINK_QUEUE_URL and
// LEARNERLINK_DLQ_URL for this stack, and extra (which wins).
func (s *Stack) Setenv(t *testing.T, extra map[string]string) {
	t.Helper()
	env := map[string]string{
		"LEARNERLINK_TABLE":     s.Table,
		"LEARNERLINK_QUEUE_URL": s.QueueURL,
		"LEARNERLINK_DLQ_URL":   s.DLQURL,
	}
	for k, v := range extra {
		env[k] = v
	}
	testenv.LambdaEnv(t, env)
}
