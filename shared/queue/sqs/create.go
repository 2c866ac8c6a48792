package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// CreateOptions configure CreateQueues; zero values mean the defaults.
type CreateOptions struct {
	// VisibilityTimeout is the queue's default (default 30s, whole seconds,
	// rounded up). For a Lambda consumer AWS advises at least six times the
	// function timeout.
	VisibilityTimeout time.Duration
	// MaxReceives is the redrive policy's maxReceiveCount (default 5).
	MaxReceives int
	// HighThroughput enables high-throughput FIFO mode (deduplication and
	// throughput limits per message group, i.e. per identity).
	HighThroughput bool
}

// retention is the longest SQS allows (14 days): intents outlive a
// long outage, and dead letters wait for a human.
const retention = 14 * 24 * time.Hour

// createAPI is the part of *sqs.Client CreateQueues uses.
type createAPI interface {
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// CreateQueues creates (or, with identical attributes, finds) the FIFO
// queue "<name>.fifo" and its dead-letter queue "<name>-dlq.fifo", for local
// runs and tests; deployments get them from the SAM template. name may hold
// letters, digits, '-' and '_', at most 71 characters.
func CreateQueues(ctx context.Context, client *sqs.Client, name string, opts CreateOptions) (queueURL, dlqURL string, err error) {
	return createQueues(ctx, client, name, opts)
}

func createQueues(ctx context.Context, c createAPI, name string, opts CreateOptions) (queueURL, dlqURL string, err error) {
	if err := validName(name); err != nil {
		return "", "", fmt.Errorf("sqs queue: create %q: %w", name, err)
	}
	if opts.VisibilityTimeout <= 0 {
		opts.VisibilityTimeout = 30 * time.Second
	}
	if opts.MaxReceives <= 0 {
		opts.MaxReceives = 5
	}
	attrs := func() map[string]string {
		a := map[string]string{
			string(types.QueueAttributeNameFifoQueue):                 "true",
			string(types.QueueAttributeNameContentBasedDeduplication): "false", // we set MessageDeduplicationId
			string(types.QueueAttributeNameMessageRetentionPeriod):    strconv.Itoa(int(retention / time.Second)),
		}
		if opts.HighThroughput {
			a[string(types.QueueAttributeNameDeduplicationScope)] = "messageGroup"
			a[string(types.QueueAttributeNameFifoThroughputLimit)] = "perMessageGroupId"
		}
		return a
	}

	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq.fifo"), Attributes: attrs()})
	if err != nil {
		return "", "", fmt.Errorf("sqs queue: create dead-letter queue: %w", err)
	}
	got, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("sqs queue: dead-letter queue ARN: %w", err)
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": got.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(opts.MaxReceives),
	})
	if err != nil {
		return "", "", fmt.Errorf("sqs queue: redrive policy: %w", err)
	}
	mainAttrs := attrs()
	mainAttrs[string(types.QueueAttributeNameVisibilityTimeout)] = strconv.Itoa(int(seconds(opts.VisibilityTimeout, maxVisibility)))
	mainAttrs[string(types.QueueAttributeNameRedrivePolicy)] = string(redrive)
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: mainAttrs})
	if err != nil {
		return "", "", fmt.Errorf("sqs queue: create queue: %w", err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}

func validName(name string) error {
	if name == "" || len(name)+len("-dlq.fifo") > 80 {
		return fmt.Errorf("name must be 1 to %d characters", 80-len("-dlq.fifo"))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
