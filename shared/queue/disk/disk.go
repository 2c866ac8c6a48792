// Package disk is an embedded, durable queue.Queue for the local runner: one
// bbolt file, pure Go, with the delivery semantics of an SQS FIFO queue —
// message group = IdentityID+"#"+Target (IdentityID alone for an untargeted
// intent; see groupKey), one message of a group in flight at a time,
// visibility timeouts, a deduplication window, dead-lettering after
// MaxReceives or on Park.
//
// The whole queue is also held in memory (a local runner's queue is small).
// Every change is applied in memory and appended to an ordered log that one
// committer goroutine writes to the file, many changes per transaction (group
// commit: an fsync costs milliseconds, and concurrent workers share it). An
// operation returns only once its change is on disk.
//
// A message in flight when the queue was closed or its process died is
// delivered again as soon as the file is reopened, not after its
// visibility timeout: only one process can have the file open, so whoever
// received it is gone. A message delayed by Retry keeps its delay.
//
// Differences from SQS, all on the safe side: a Receive returns at most one
// message per identity; a message whose last permitted delivery is retried
// moves to the dead-letter queue at once rather than on the next receive;
// a stale or unknown handle is always reported as queue.ErrUnknownHandle.
package disk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/queue"
)

// ErrClosed is returned by every operation after Close.
var ErrClosed = errors.New("disk queue: closed")

// maxDelay caps Retry delays, as SQS caps visibility at 12 hours.
const maxDelay = 12 * time.Hour

// Options tune the queue; zero values mean the defaults.
type Options struct {
	// VisibilityTimeout hides a received message from other receivers
	// (default 30s).
	VisibilityTimeout time.Duration
	// MaxReceives is how many deliveries a message gets before it moves to
	// the dead-letter queue (default 5).
	MaxReceives int
	// DedupWindow is how long an IdentityID+Version+Target is remembered to
	// drop duplicates (default 5m, like SQS).
	DedupWindow time.Duration
	// Now is the clock for visibility and deduplication (default time.Now).
	// Long-poll waits always use real time.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.MaxReceives <= 0 {
		o.MaxReceives = 5
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// record is one message.
type record struct {
	seq        uint64
	intent     queue.Intent
	sent       time.Time
	receives   int
	visibleAt  time.Time
	parkReason string
	inFlight   bool // received, not yet retried (Ack and Park remove it)
}

func (r *record) message() queue.Message {
	return queue.Message{
		Intent:     r.intent,
		Handle:     strconv.FormatUint(r.seq, 10) + "." + strconv.Itoa(r.receives),
		Receives:   r.receives,
		Sent:       r.sent,
		ParkReason: r.parkReason,
	}
}

type dedupEntry struct {
	key     string
	expires time.Time
}

// Queue is the disk-backed queue. It is safe for concurrent use.
type Queue struct {
	opts Options
	db   *bolt.DB

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced on every change, to wake long polls
	msgs    map[uint64]*record
	groups  map[string][]uint64 // groupKey -> pending seqs in enqueue order
	dedup   map[string]time.Time
	// dedupOrder holds the dedup entries by expiry, oldest first, for pruning.
	dedupOrder []dedupEntry
	seq        uint64 // last sequence number handed out

	// Group commit (see commit.go).
	log     []op
	logGen  uint64 // generation of the last change appended to log
	doneGen uint64 // every change up to this generation is on disk
	failed  error  // a commit failed: memory is ahead of the file, stop
	flushed chan struct{}
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

var _ queue.Queue = (*Queue)(nil)

// Open opens (creating if needed) the queue file at path. Only one Queue may
// have the file open at a time; a second Open fails after a second.
func Open(path string, opts Options) (*Queue, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("disk queue: open %s: %w", path, err)
	}
	q := &Queue{
		opts:    opts.withDefaults(),
		db:      db,
		changed: make(chan struct{}),
		msgs:    map[uint64]*record{},
		groups:  map[string][]uint64{},
		dedup:   map[string]time.Time{},
		flushed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("disk queue: load %s: %w", path, err)
	}
	go q.commitLoop()
	return q, nil
}

func dedupKey(in queue.Intent) string { return in.DedupKey() }

// usableLocked says whether operations may proceed.
func (q *Queue) usableLocked() error {
	if q.closed {
		return ErrClosed
	}
	return q.failed
}

// notifyLocked wakes every long poll so it re-examines the queue.
func (q *Queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Enqueue stores the intents durably, dropping ones enqueued within the
// deduplication window. One call is one transaction: all or none.
func (q *Queue) Enqueue(ctx context.Context, intents ...queue.Intent) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk queue: enqueue: %w", err)
	}
	for i, in := range intents {
		if in.IdentityID == "" {
			return fmt.Errorf("disk queue: enqueue: intent %d has no IdentityID", i)
		}
	}
	if len(intents) == 0 {
		return nil
	}
	q.mu.Lock()
	if err := q.usableLocked(); err != nil {
		q.mu.Unlock()
		return err
	}
	now := q.opts.Now()
	var ops []op
	for len(q.dedupOrder) > 0 && !now.Before(q.dedupOrder[0].expires) {
		key := q.dedupOrder[0].key
		delete(q.dedup, key)
		ops = append(ops, delDedup(key))
		q.dedupOrder = q.dedupOrder[1:]
	}
	expires := now.Add(q.opts.DedupWindow)
	added := false
	for _, in := range intents {
		key := dedupKey(in)
		if _, dup := q.dedup[key]; dup {
			continue
		}
		q.dedup[key] = expires
		q.dedupOrder = append(q.dedupOrder, dedupEntry{key, expires})
		q.seq++
		r := &record{seq: q.seq, intent: in, sent: now, visibleAt: now}
		q.msgs[r.seq] = r
		q.groups[groupKey(in)] = append(q.groups[groupKey(in)], r.seq)
		ops = append(ops, putDedup(key, expires), putPending(r))
		added = true
	}
	gen := q.appendLocked(ops)
	if added {
		q.notifyLocked()
	}
	q.mu.Unlock()
	if err := q.durable(gen); err != nil {
		return fmt.Errorf("disk queue: enqueue: %w", err)
	}
	return nil
}

// Receive returns up to limit visible messages (limit < 1 means 1), at most
// one per identity, oldest first, waiting up to wait for the first one.
func (q *Queue) Receive(ctx context.Context, limit int, wait time.Duration) ([]queue.Message, error) {
	limit = max(limit, 1)
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("disk queue: receive: %w", err)
		}
		msgs, gen, next, changed, err := q.tryReceive(limit)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			if err := q.durable(gen); err != nil {
				return nil, fmt.Errorf("disk queue: receive: %w", err)
			}
			return msgs, nil
		}
		sleep := time.Until(deadline)
		if sleep <= 0 {
			return nil, nil
		}
		// Sleep until something changes, a hidden message becomes visible,
		// or the wait is over — never spin.
		if next > 0 && next < sleep {
			sleep = next
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("disk queue: receive: %w", ctx.Err())
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// tryReceive delivers up to limit messages visible now, returning the
// generation to wait for. When there are none, it returns how long until the
// next hidden head becomes visible (0: none) and the channel that will be
// closed on the next change.
func (q *Queue) tryReceive(limit int) (msgs []queue.Message, gen uint64, next time.Duration, changed <-chan struct{}, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.usableLocked(); err != nil {
		return nil, 0, 0, nil, err
	}
	now := q.opts.Now()
	ops := q.sweepLocked(now)
	var ready []*record
	for _, seqs := range q.groups {
		head := q.msgs[seqs[0]]
		if head.visibleAt.After(now) {
			if d := head.visibleAt.Sub(now); next == 0 || d < next {
				next = d
			}
			continue
		}
		ready = append(ready, head)
	}
	// Oldest first across identities, as a FIFO queue would.
	slices.SortFunc(ready, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
	for _, r := range ready[:min(len(ready), limit)] {
		r.receives++
		r.visibleAt = now.Add(q.opts.VisibilityTimeout)
		r.inFlight = true
		ops = append(ops, putPending(r))
		msgs = append(msgs, r.message())
	}
	if len(ops) > 0 {
		gen = q.appendLocked(ops)
	}
	return msgs, gen, next, q.changed, nil
}

// sweepLocked moves visible heads that used up their deliveries to the
// dead-letter queue (SQS does this on the receive after the last failure).
func (q *Queue) sweepLocked(now time.Time) []op {
	var ops []op
	for _, seqs := range q.groups {
		head := q.msgs[seqs[0]]
		if !head.visibleAt.After(now) && head.receives >= q.opts.MaxReceives {
			ops = append(ops, q.parkLocked(head, "")...)
		}
	}
	return ops
}

// groupKey is an intent's message group, as in queue/sqs: each (identity,
// target) stream is ordered on its own; an untargeted intent is in the
// identity's own group.
func groupKey(in queue.Intent) string {
	if in.Target != "" {
		return in.IdentityID + "#" + in.Target
	}
	return in.IdentityID
}

// removeLocked drops a group head from memory; the identity's next
// message may be deliverable now.
func (q *Queue) removeLocked(r *record) {
	delete(q.msgs, r.seq)
	id := groupKey(r.intent)
	seqs := q.groups[id]
	if i := slices.Index(seqs, r.seq); i >= 0 {
		seqs = slices.Delete(seqs, i, i+1)
	}
	if len(seqs) == 0 {
		delete(q.groups, id)
	} else {
		q.groups[id] = seqs
	}
	q.notifyLocked()
}

// parkLocked moves a group head to the dead-letter queue.
func (q *Queue) parkLocked(r *record, reason string) []op {
	q.removeLocked(r)
	r.parkReason, r.inFlight = reason, false
	return []op{delPending(r.seq), putDead(r)}
}

// lookupLocked resolves a handle ("seq.receives") to the message whose
// current delivery it names. A delivery whose visibility ran out stays
// valid until the message is delivered again.
func (q *Queue) lookupLocked(handle string) (*record, error) {
	seqStr, recvStr, ok := strings.Cut(handle, ".")
	seq, err1 := strconv.ParseUint(seqStr, 10, 64)
	receives, err2 := strconv.Atoi(recvStr)
	if !ok || err1 != nil || err2 != nil {
		return nil, queue.ErrUnknownHandle
	}
	r := q.msgs[seq]
	if r == nil || r.receives == 0 || r.receives != receives {
		return nil, queue.ErrUnknownHandle
	}
	return r, nil
}

// settle runs change for the delivery named by handle and waits until it is
// on disk.
func (q *Queue) settle(ctx context.Context, what, handle string, change func(*record) []op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk queue: %s: %w", what, err)
	}
	q.mu.Lock()
	if err := q.usableLocked(); err != nil {
		q.mu.Unlock()
		return err
	}
	r, err := q.lookupLocked(handle)
	if err != nil {
		q.mu.Unlock()
		return fmt.Errorf("disk queue: %s %q: %w", what, handle, err)
	}
	gen := q.appendLocked(change(r))
	q.mu.Unlock()
	if err := q.durable(gen); err != nil {
		return fmt.Errorf("disk queue: %s: %w", what, err)
	}
	return nil
}

// Ack removes the message of a current delivery.
func (q *Queue) Ack(ctx context.Context, handle string) error {
	return q.settle(ctx, "ack", handle, func(r *record) []op {
		q.removeLocked(r)
		return []op{delPending(r.seq)}
	})
}

// Retry makes the message visible again after delay (clamped to 0..12h). A
// message that already had MaxReceives deliveries moves to the dead-letter
// queue instead.
func (q *Queue) Retry(ctx context.Context, handle string, delay time.Duration) error {
	return q.settle(ctx, "retry", handle, func(r *record) []op {
		if r.receives >= q.opts.MaxReceives {
			return q.parkLocked(r, "")
		}
		r.visibleAt = q.opts.Now().Add(min(max(delay, 0), maxDelay))
		r.inFlight = false
		q.notifyLocked()
		return []op{putPending(r)}
	})
}

// Park moves the message of a current delivery to the dead-letter queue at
// once, recording reason.
func (q *Queue) Park(ctx context.Context, handle, reason string) error {
	return q.settle(ctx, "park", handle, func(r *record) []op {
		return q.parkLocked(r, reason)
	})
}

// DeadLetters lists up to limit parked messages, oldest first, without
// removing them. Their Handle is empty: they cannot be acknowledged.
func (q *Queue) DeadLetters(ctx context.Context, limit int) ([]queue.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("disk queue: dead letters: %w", err)
	}
	q.mu.Lock()
	if err := q.usableLocked(); err != nil {
		q.mu.Unlock()
		return nil, err
	}
	// Park what timed out on its last delivery, so the listing is current,
	// and read only after every change so far is on disk.
	if ops := q.sweepLocked(q.opts.Now()); len(ops) > 0 {
		q.appendLocked(ops)
	}
	gen := q.logGen
	q.mu.Unlock()
	if err := q.durable(gen); err != nil {
		return nil, fmt.Errorf("disk queue: dead letters: %w", err)
	}
	dead, err := q.readDead(limit)
	if err != nil {
		return nil, fmt.Errorf("disk queue: dead letters: %w", err)
	}
	out := make([]queue.Message, len(dead))
	for i, r := range dead {
		out[i] = r.message()
		out[i].Handle = ""
	}
	return out, nil
}

// Close writes what is pending, releases the file and wakes waiting
// receivers (they get ErrClosed). Closing twice is a no-op.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.changed)
	q.mu.Unlock()

	close(q.stop)
	<-q.stopped
	q.mu.Lock()
	failed := q.failed
	q.mu.Unlock()
	if err := errors.Join(failed, q.db.Close()); err != nil {
		return fmt.Errorf("disk queue: close: %w", err)
	}
	return nil
}
