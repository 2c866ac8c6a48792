package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
)

// Queue is what a polling worker needs (the local runner's loop; in AWS the
// SQS event source polls and the Lambda applies outcomes itself).
type Queue interface {
	Enqueue(ctx context.Context, intents ...queue.Intent) error
	Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error)
	Ack(ctx context.Context, handle string) error
	Retry(ctx context.Context, handle string, delay time.Duration) error
	Park(ctx context.Context, handle, reason string) error
}

// Run polls q with n concurrent consumers until ctx is done. Throughput to
// a target is bounded by the target's limiter, not by n. Each consumer
// holds up to batch messages (0: Config.Parallel) while it syncs them
// Config.Parallel at a time, so n*batch messages can wait on the limiter
// at once: keep n*batch*(target requests per sync)/(target rate) well
// under the queue's visibility timeout, or messages are redelivered while
// still being worked on (harmless, but wasted work and a step towards
// MaxReceives).
func (w *Worker) Run(ctx context.Context, q Queue, n int, batch int) error {
	if n < 1 {
		n = 1
	}
	if batch < 1 {
		// As many as one Process syncs at once: a received message that
		// waits behind others in its batch spends a delivery (and, should
		// the process die meanwhile, a receive) without being worked on.
		batch = w.cfg.Parallel
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msgs, err := q.Receive(ctx, batch, 5*time.Second)
				if err != nil {
					if ctx.Err() == nil {
						w.cfg.Logger.WarnContext(ctx, "queue receive failed", "err", err)
						sleep(ctx, time.Second)
					}
					continue
				}
				if len(msgs) == 0 {
					continue
				}
				w.Apply(ctx, q, w.Process(ctx, msgs))
			}
		}()
	}
	wg.Wait()
	return nil
}

// Apply carries out the outcomes on the queue. A failure here leaves the
// message to its visibility timeout: it is redelivered, never lost.
func (w *Worker) Apply(ctx context.Context, q Queue, outs []Outcome) {
	// Outcomes must be applied even while shutting down, or finished work
	// would be redone after the visibility timeout.
	ctx = context.WithoutCancel(ctx)
	for _, o := range outs {
		var err error
		switch o.Verdict {
		case Ack:
			err = q.Ack(ctx, o.Message.Handle)
		case Retry:
			err = q.Retry(ctx, o.Message.Handle, o.Delay)
		case Park:
			w.cfg.Logger.ErrorContext(ctx, "intent parked in dead-letter queue", "identity", o.Message.IdentityID, "reason", o.Reason)
			err = q.Park(ctx, o.Message.Handle, o.Reason)
		case Requeue:
			w.cfg.Logger.WarnContext(ctx, "intent re-enqueued after its last delivery", "identity", o.Message.IdentityID,
				"target", o.Message.Target, "retries", o.Next.Retries, "reason", o.Reason)
			err = Requeued(ctx, q, o)
		}
		if err != nil && !errors.Is(err, queue.ErrUnknownHandle) {
			w.cfg.Logger.WarnContext(ctx, "queue update failed", "identity", o.Message.IdentityID, "err", err)
		}
	}
}

// Requeued carries out a Requeue outcome on q: enqueue the copy, then
// acknowledge the message. Should the enqueue fail, the message is
// retried instead (the queue may then dead-letter it; the identity is
// still pending, so the sweeper re-queues it). A crash between the two
// steps leaves a duplicate, which syncing the latest state makes harmless.
func Requeued(ctx context.Context, q interface {
	Enqueue(ctx context.Context, intents ...queue.Intent) error
	Ack(ctx context.Context, handle string) error
	Retry(ctx context.Context, handle string, delay time.Duration) error
}, o Outcome) error {
	if o.Next == nil {
		return q.Retry(ctx, o.Message.Handle, o.Delay)
	}
	if err := q.Enqueue(ctx, *o.Next); err != nil {
		if rerr := q.Retry(ctx, o.Message.Handle, o.Delay); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return q.Ack(ctx, o.Message.Handle)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
