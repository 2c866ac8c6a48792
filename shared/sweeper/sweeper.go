// Package sweeper re-queues identities whose desired state has been
// pending for longer than a threshold. Every store write marks the identity
// pending in the same atomic write, and only a worker that synced that
// exact version clears the mark, so the pending index is a durable outbox:
// whatever happened to the intent (a crash between store write and
// enqueue, an SQS outage, a purged queue), the sweeper puts it back.
// Re-queued intents are harmless duplicates if the original is still
// in flight, because workers sync the latest state and skip what is done.
//
// It also finishes group writes left half done: a rename of a group too
// large for one atomic write leaves a durable marker until every member is
// bumped, and a marker that made no progress for the threshold is carried
// on here (store.Sync.FinishGroupWrites), its bumped members queued.
package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Pending is the part of the store the sweeper uses.
type Pending interface {
	ListPending(ctx context.Context, olderThan time.Time, limit int) ([]store.Pending, error)
	FinishGroupWrites(ctx context.Context, olderThan time.Time, limit int) ([]store.Changed, error)
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

// Sweep does one pass and returns how many intents it queued. A failure
// to finish group writes does not stop the re-queueing; both are reported.
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
	olderThan := now().Add(-threshold)
	// Finished first: the identities it bumps are pending from now on, so
	// ListPending below does not return them again.
	finished, ferr := s.St.FinishGroupWrites(ctx, olderThan, batch)
	if ferr != nil {
		ferr = fmt.Errorf("sweeper: finish group writes: %w", ferr)
	}
	pend, err := s.St.ListPending(ctx, olderThan, batch)
	if err != nil {
		return 0, errors.Join(ferr, fmt.Errorf("sweeper: list pending: %w", err))
	}
	intents := make([]queue.Intent, 0, len(finished)+len(pend))
	for _, c := range finished {
		intents = append(intents, queue.Intent{IdentityID: c.ID, Version: c.Version, Reason: "sweeper.group"})
	}
	for _, p := range pend {
		intents = append(intents, queue.Intent{IdentityID: p.ID, Version: p.Version, Reason: "sweeper"})
	}
	if len(intents) == 0 {
		return 0, ferr
	}
	if err := s.Q.Enqueue(ctx, intents...); err != nil {
		// What FinishGroupWrites bumped is pending: a later pass re-queues it.
		return 0, errors.Join(ferr, fmt.Errorf("sweeper: enqueue: %w", err))
	}
	if len(finished) > 0 {
		log.InfoContext(ctx, "finished interrupted group writes", "identities", len(finished))
	}
	if len(pend) > 0 {
		log.InfoContext(ctx, "re-queued pending identities", "count", len(pend))
	}
	return len(intents), ferr
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
