package lambdafn

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/sqs"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/testenv"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// down is a target that is unavailable.
type down struct{ connector.Connector }

func (down) Find(context.Context, connector.Key) ([]connector.Learner, error) {
	return nil, &connector.Error{Op: "find", Status: 503, Retryable: true, Err: errors.New("unavailable")}
}

// TestConsumeRequeuesOnLastDelivery: on the last allowed delivery a
// retryable failure is replaced by a fresh copy in the queue (Retries
// raised) and the original is not reported, so Lambda deletes it and SQS
// never redrives good work to the dead-letter queue.
func TestConsumeRequeuesOnLastDelivery(t *testing.T) {
	ctx := t.Context()
	client := testenv.SQSClient(t)
	qURL, dlqURL, err := sqs.CreateQueues(ctx, client, testenv.UniqueName("consume"), sqs.CreateOptions{MaxReceives: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, u := range []string{qURL, dlqURL} {
			_, _ = client.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	q := sqs.New(client, qURL, dlqURL)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lms, err := sandbox.Open("")
	if err != nil {
		t.Fatal(err)
	}
	id := &store.Identity{ID: "i-1", ExternalID: "00u1", UserName: "ann@example.com", Active: true,
		Resource: []byte(`{"userName":"ann@example.com","name":{"givenName":"Ann","familyName":"Lee"},"active":true}`)}
	if err := st.CreateIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(st, []worker.Target{{Name: "absorb", Conn: down{lms}, Mapping: mapping.Default()}},
		worker.Config{MaxReceives: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, queue.Intent{IdentityID: id.ID, Version: id.Version, Target: "absorb"}); err != nil {
		t.Fatal(err)
	}

	receive := func() events.SQSEvent {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			out, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
				QueueUrl: aws.String(qURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 1,
				MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) == 0 {
				continue
			}
			var ev events.SQSEvent
			for _, m := range out.Messages {
				ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId),
					ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body), Attributes: m.Attributes})
			}
			return ev
		}
		t.Fatal("nothing to receive")
		return events.SQSEvent{}
	}

	// First delivery: a plain retry, reported as a failure.
	ev := receive()
	if resp := consume(ctx, w, q, slog.New(slog.DiscardHandler), ev); len(resp.BatchItemFailures) != 1 {
		t.Fatalf("first delivery: %+v, want it reported", resp)
	}
	// Second (last) delivery: requeued, not reported; delete it as Lambda would.
	ev = receive()
	m, err := sqs.ParseSQSEventMessage(ev.Records[0])
	if err != nil || m.Receives != 2 {
		t.Fatalf("second delivery: %+v, %v", m, err)
	}
	if resp := consume(ctx, w, q, slog.New(slog.DiscardHandler), ev); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("last delivery: %+v, want no failures (requeued)", resp)
	}
	if _, err := client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qURL), ReceiptHandle: aws.String(ev.Records[0].ReceiptHandle)}); err != nil {
		t.Fatal(err)
	}
	cp, err := sqs.ParseSQSEventMessage(receive().Records[0])
	if err != nil {
		t.Fatal(err)
	}
	if cp.Retries != 2 || cp.Receives != 1 || cp.Since.IsZero() || cp.IdentityID != id.ID {
		t.Errorf("copy = %+v, want Retries 2, first receive, Since set", cp)
	}
	if dead, err := q.DeadLetters(ctx, 10); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %+v, %v", dead, err)
	}
}
