package lambdafn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/sqs"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/sweeper"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// SCIMHandler serves the SCIM API to API Gateway HTTP API (payload 2.0).
type SCIMHandler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// SCIM builds the SCIM function's handler.
func SCIM(ctx context.Context, getenv func(string) string) (SCIMHandler, error) {
	d, err := load(ctx, getenv)
	if err != nil {
		return nil, err
	}
	if d.settings.SCIMToken == "" {
		return nil, fmt.Errorf("lambdafn: no SCIM token (scimToken in the secret)")
	}
	h, err := scim.NewHandler(d.store, d.fan, scim.Config{Token: d.settings.SCIMToken, Logger: d.log})
	if err != nil {
		return nil, err
	}
	return httpadapter.NewV2(h).ProxyWithContext, nil
}

// WorkerHandler consumes an SQS batch (ReportBatchItemFailures).
type WorkerHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Worker builds the worker function's handler. The rate limit and the
// target's API token are shared through the table by every concurrent
// worker, so the aggregate rate holds however many run.
func Worker(ctx context.Context, getenv func(string) string) (WorkerHandler, error) {
	d, err := load(ctx, getenv)
	if err != nil {
		return nil, err
	}
	tgts, reviews, err := d.targets(getenv)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(d.store, tgts, worker.Config{Logger: d.log, OnConflict: reviews.Park,
		MaxReceives: d.settings.MaxReceives, RetryFor: d.settings.RetryFor})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		return consume(ctx, w, d.queue, d.log, ev), nil
	}, nil
}

// consume processes an SQS batch. Acked messages are left for Lambda to
// delete; retried ones get their visibility set to the delay and are
// reported as failures; parked ones are copied to the DLQ with the reason
// and deleted here.
func consume(ctx context.Context, w *worker.Worker, q *sqs.Queue, log *slog.Logger, ev events.SQSEvent) events.SQSEventResponse {
	var resp events.SQSEventResponse
	msgs := make([]queue.Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		m, err := sqs.ParseSQSEventMessage(r)
		if err != nil {
			// An unreadable body can never succeed: let SQS's redrive park
			// it after maxReceiveCount; report it so it is not deleted.
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			continue
		}
		m.Handle = r.MessageId + "\n" + m.Handle
		msgs = append(msgs, m)
	}
	for _, o := range w.Process(ctx, msgs) {
		id, handle := splitID(o.Message.Handle)
		fail := false
		switch o.Verdict {
		case worker.Retry:
			_ = q.Retry(ctx, handle, o.Delay) // best effort: else the visibility timeout applies
			fail = true
		case worker.Park:
			if err := q.Park(ctx, handle, o.Reason); err != nil {
				fail = true // stays in the queue; redrive parks it eventually
			}
		case worker.Requeue:
			// A fresh copy replaces a message on its last delivery, so a
			// long outage never dead-letters retryable work; Lambda then
			// deletes the original. If the copy cannot be sent, the
			// original retries (and may be redriven; the identity stays
			// pending for the sweeper).
			log.WarnContext(ctx, "intent re-enqueued after its last delivery", "identity", o.Message.IdentityID,
				"target", o.Message.Target, "retries", o.Next.Retries, "reason", o.Reason)
			if err := q.Enqueue(ctx, *o.Next); err != nil {
				_ = q.Retry(ctx, handle, o.Delay)
				fail = true
			}
		}
		if fail {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
	}
	return resp
}

func splitID(h string) (id, handle string) {
	for i := 0; i < len(h); i++ {
		if h[i] == '\n' {
			return h[:i], h[i+1:]
		}
	}
	return "", h
}

// SweeperHandler runs one sweep on a schedule.
type SweeperHandler func(context.Context, events.EventBridgeEvent) error

// Sweeper builds the sweeper function's handler.
func Sweeper(ctx context.Context, getenv func(string) string) (SweeperHandler, error) {
	d, err := load(ctx, getenv)
	if err != nil {
		return nil, err
	}
	sw := &sweeper.Sweeper{St: d.store, Q: d.fan, Threshold: d.settings.PendingThreshold, Logger: d.log}
	// One pass a run: what it re-queues stays pending until a worker syncs
	// it, so looping would only re-queue the same identities again.
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		_, err := sw.Sweep(ctx)
		return err
	}, nil
}
