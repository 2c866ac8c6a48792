// Package sweeper re-queues identities whose desired state has been
// pending for longer than a threshold. Every store write marks the identity
// pending in the same atomic write, and only a worker that synced that
// exact version clears the mark, so the pending index is a durable outbox:
// whatever happened to the intent (a crash between store write and
// enqueue, an SQS outage, a purged queue), the sweeper puts it back.
// Re-queued intents are harmless duplicates if the original is still
// in flight, because workers sync the latest state and skip what is done.
package sweeper

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Pending is the part of the store the sweeper reads.
type Pending interface {
	ListPending(ctx context.Context, olderThan time.Time, limit int) ([]store.Pending, error)
}

// Sweeper re-queues stale pending identities.
type Sweeper struct {
	St        Pending
	Q         queue.Enqueuer
	Threshold time.Duration // how long an identity may stay pending; default 15 min; above the queue's normal drain time
	Batch     int           // identities per pass; default 500
	Now       func() time.Time
	Logger    *slog.Logger
}

// Sweep does one pass and returns how many intents it queued.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	threshold, batch, now, log := s.Threshold, s.Batch, s.Now, s.Logger
	if threshold <= 0 {
		threshold = 15 * time.Minute
	}
	if batch <= 0 {
		batch = 500
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pend, err := s.St.ListPending(ctx, now().Add(-threshold), batch)
	if err != nil {
		return 0, fmt.Errorf("sweeper: list pending: %w", err)
	}
	if len(pend) == 0 {
		return 0, nil
	}
	intents := make([]queue.Intent, 0, len(pend))
	for _, p := range pend {
		intents = append(intents, queue.Intent{IdentityID: p.ID, Version: p.Version, Reason: "sweeper"})
	}
	if err := s.Q.Enqueue(ctx, intents...); err != nil {
		return 0, fmt.Errorf("sweeper: enqueue: %w", err)
	}
	log.InfoContext(ctx, "re-queued pending identities", "count", len(intents))
	return len(intents), nil
}

// Run sweeps every interval until ctx is done (the local runner; in AWS a
// schedule invokes Sweep).
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.WarnContext(ctx, "sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
