// Package queue carries sync intents from the places that accept changes
// (SCIM, Event Hooks, reconciliation) to the workers that write to targets.
//
// An intent says only "identity X is at version V"; workers always sync the
// latest desired state from the store, so duplicates, retries and
// out-of-order delivery are harmless. Implementations: queue/disk (embedded,
// on disk, for local runs) and queue/sqs (Amazon SQS FIFO; the message
// group is the identity, or identity#target for a targeted intent, so one
// target's retries never hold up another's; deduplication id = identity,
// version, target, force). Producers enqueue through FanOut, which turns
// an intent into one per target. Both pass queuetest.Run.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnknownHandle is returned by Ack/Retry for a handle that is no longer
// valid (already acknowledged, or its visibility expired and it was
// redelivered).
var ErrUnknownHandle = errors.New("queue: unknown or expired receipt handle")

// Intent asks for one identity to be synced to its targets.
type Intent struct {
	IdentityID string `json:"identityId"`
	Version    int64  `json:"version"`
	// Target restricts the sync to one target; empty means all.
	Target string `json:"target,omitempty"`
	// Force asks the worker to re-push even if the link says this version
	// is synced: reconciliation found the target drifted.
	Force bool `json:"force,omitempty"`
	// Reason says why, for the audit trail: "scim.create", "hook.user.lifecycle.deactivate", "sweeper", ...
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Retries counts the deliveries spent by earlier copies of this
	// intent. A worker whose message is about to run out of receives on a
	// retryable failure acknowledges it and enqueues a fresh copy with
	// Retries raised (see worker.Requeue), so only permanent failures
	// reach the dead-letter queue; the count keeps the backoff growing
	// and gives the copy its own deduplication id.
	Retries int `json:"retries,omitempty"`
	// Since is when the first copy was enqueued (zero: this message's
	// Sent); a worker gives up on a retryable failure older than its
	// retry period.
	Since time.Time `json:"since,omitzero"`
}

// DedupKey is the text an intent is deduplicated by: identity, version,
// target and force (length-prefixed, so no two collide by
// concatenation), and the copy number when it is a re-enqueued copy.
// Reason, RequestID and Since do not count: the same intent sent twice
// for two reasons is one intent.
func (in Intent) DedupKey() string {
	k := fmt.Sprintf("%d:%s|%d|%s|%t", len(in.IdentityID), in.IdentityID, in.Version, in.Target, in.Force)
	if in.Retries > 0 {
		k += fmt.Sprintf("|r%d", in.Retries)
	}
	return k
}

// Message is a received intent.
type Message struct {
	Intent
	// Handle acknowledges or retries this delivery.
	Handle string
	// Receives counts deliveries, this one included.
	Receives int
	// Sent is when the intent was first enqueued.
	Sent time.Time
	// Reason is why a dead-lettered message was parked (DeadLetters only;
	// empty when it went there by exhausting its receives).
	ParkReason string
}

// Enqueuer is what producers need.
type Enqueuer interface {
	Enqueue(ctx context.Context, intents ...Intent) error
}

// Queue is the whole contract, for workers and tests.
type Queue interface {
	Enqueuer
	// Receive waits up to wait for at most max messages. A received message
	// is invisible to other receivers until it is acknowledged, retried, or
	// its visibility timeout passes; messages of one identity are delivered
	// in order and never two at once.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Ack removes a processed message.
	Ack(ctx context.Context, handle string) error
	// Retry makes the message visible again after delay. After the
	// configured maximum receives it moves to the dead-letter queue.
	Retry(ctx context.Context, handle string, delay time.Duration) error
	// Park moves the message to the dead-letter queue at once, recording
	// reason (a permanent failure such as a target's validation error must
	// not be retried until MaxReceives). The reason travels with the
	// message (an SQS message attribute "reason") and DeadLetters returns
	// it in Message.ParkReason.
	Park(ctx context.Context, handle, reason string) error
	// DeadLetters lists what is parked in the dead-letter queue (at most max).
	DeadLetters(ctx context.Context, max int) ([]Message, error)
	Close() error
}
