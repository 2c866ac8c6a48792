package worker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// TestRetryBudget: a retryable failure on a message's last delivery is
// re-enqueued as a fresh copy, never left for the queue to dead-letter;
// only permanent failures and retryable ones older than RetryFor park.
func TestRetryBudget(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	throttled := &connector.Error{Op: "create", Status: 429, Retryable: true, RetryAfter: 3 * time.Second, Err: errors.New("slow down")}
	down := &connector.Error{Op: "create", Status: 500, Retryable: true, Err: errors.New("boom")}
	invalid := &connector.Error{Op: "create", Status: 422, Err: errors.New("bad department")}
	tests := []struct {
		name        string
		err         error
		maxReceives int
		receives    int
		retries     int           // spent by earlier copies
		age         time.Duration // since the first copy
		verdict     worker.Verdict
		delay       time.Duration // exact unless 0
		nextRetries int           // Requeue only
		reason      string
	}{
		{"early delivery retries after Retry-After", throttled, 3, 1, 0, time.Minute, worker.Retry, 3 * time.Second, 0, "429"},
		{"last delivery requeues", throttled, 3, 3, 0, time.Minute, worker.Requeue, 3 * time.Second, 3, "429"},
		{"copy of a copy counts every delivery", down, 3, 3, 6, time.Hour, worker.Requeue, 0, 9, "500"},
		{"redelivered past the budget (a crash) requeues too", down, 3, 5, 0, time.Minute, worker.Requeue, 0, 5, "500"},
		{"no budget configured: plain retry", down, 0, 50, 0, time.Minute, worker.Retry, 0, 0, "500"},
		{"retryable for longer than RetryFor parks", down, 3, 2, 30, 25 * time.Hour, worker.Park, 0, 0, "still failing after 24h0m0s"},
		{"permanent parks at once", invalid, 3, 1, 0, time.Second, worker.Park, 0, 0, "bad department"},
		{"permanent on the last delivery parks, not requeues", invalid, 3, 3, 0, time.Second, worker.Park, 0, 0, "bad department"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hooks{create: func(context.Context, connector.Learner) (string, error) { return "", tc.err }}
			f := newFixture(t, options{
				wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h },
				cfg:  worker.Config{MaxReceives: tc.maxReceives, Now: func() time.Time { return now }},
			})
			in := f.create(jane())
			in.Retries = tc.retries
			m := msg(in, "h1")
			m.Receives = tc.receives
			m.Sent = now.Add(-time.Second) // this copy is fresh; Since carries the age
			in.Since = now.Add(-tc.age)
			m.Intent.Since = in.Since
			o := f.w.Process(f.ctx, []queue.Message{m})[0]
			if o.Verdict != tc.verdict {
				t.Fatalf("verdict %v, want %v (reason %q)", o.Verdict, tc.verdict, o.Reason)
			}
			if !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("reason %q, want it to mention %q", o.Reason, tc.reason)
			}
			if tc.delay != 0 && o.Delay != tc.delay {
				t.Errorf("delay %v, want %v", o.Delay, tc.delay)
			}
			if tc.verdict != worker.Requeue {
				if o.Next != nil {
					t.Errorf("Next = %+v on a %v", o.Next, o.Verdict)
				}
				return
			}
			if o.Next == nil {
				t.Fatal("Requeue without a copy")
			}
			want := in
			want.Retries, want.Since = tc.nextRetries, in.Since
			if *o.Next != want {
				t.Errorf("copy = %+v\nwant   %+v", *o.Next, want)
			}
			if o.Next.DedupKey() == in.DedupKey() {
				t.Error("the copy shares the original's deduplication key: the queue would drop it")
			}
		})
	}
}

// TestFirstCopyAgeComesFromSent: a message without Since is as old as its
// Sent, so the age limit also holds for intents enqueued before Since
// existed.
func TestFirstCopyAgeComesFromSent(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := &hooks{create: func(context.Context, connector.Learner) (string, error) {
		return "", &connector.Error{Op: "create", Status: 503, Retryable: true, Err: errors.New("down")}
	}}
	f := newFixture(t, options{
		wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h },
		cfg:  worker.Config{MaxReceives: 5, RetryFor: time.Hour, Now: func() time.Time { return now }},
	})
	m := msg(f.create(jane()), "h1")
	m.Receives, m.Sent = 1, now.Add(-2*time.Hour)
	if o := f.w.Process(f.ctx, []queue.Message{m})[0]; o.Verdict != worker.Park {
		t.Fatalf("verdict %v, want park", o.Verdict)
	}
}

// TestLongOutageNeverDeadLetters: a target failing many more times than
// the queue's budget allows still converges with an empty dead-letter
// queue, through the real disk queue and Apply.
func TestLongOutageNeverDeadLetters(t *testing.T) {
	const failures = 7 // > 2 × MaxReceives
	var calls atomic.Int32
	h := &hooks{}
	h.create = func(ctx context.Context, l connector.Learner) (string, error) {
		if calls.Add(1) <= failures {
			return "", &connector.Error{Op: "create", Status: 503, Retryable: true, RetryAfter: time.Millisecond, Err: errors.New("down")}
		}
		return h.Connector.Create(ctx, l)
	}
	f := newFixture(t, options{
		wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h },
		cfg:  worker.Config{MaxReceives: 3},
	})
	q, err := disk.Open(filepath.Join(t.TempDir(), "queue.db"), disk.Options{MaxReceives: 3, VisibilityTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	in := f.create(jane())
	if err := q.Enqueue(f.ctx, in); err != nil {
		t.Fatal(err)
	}
	maxRetries := 0
	deadline := time.Now().Add(10 * time.Second)
	for len(f.learners()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not synced after %d calls", calls.Load())
		}
		msgs, err := q.Receive(f.ctx, 10, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			maxRetries = max(maxRetries, m.Retries)
		}
		f.w.Apply(f.ctx, q, f.w.Process(f.ctx, msgs))
	}
	dead, err := q.DeadLetters(f.ctx, 10)
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead letters %+v, %v", dead, err)
	}
	if maxRetries < 3 {
		t.Errorf("no copy was re-enqueued (max Retries %d)", maxRetries)
	}
	if f.pending(in.IdentityID) {
		t.Error("still pending after the sync")
	}
}

// TestRequeuedFallsBackToRetry: when the copy cannot be enqueued the
// message is retried, so it is never lost.
func TestRequeuedFallsBackToRetry(t *testing.T) {
	next := queue.Intent{IdentityID: "i1", Version: 2, Retries: 5}
	tests := []struct {
		name      string
		enqErr    error
		wantCalls string
		wantErr   bool
	}{
		{"copy sent, original acknowledged", nil, "enqueue ack", false},
		{"copy refused, original retried", errors.New("queue down"), "enqueue retry", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &recordingQueue{enqErr: tc.enqErr}
			o := worker.Outcome{Message: queue.Message{Handle: "h"}, Verdict: worker.Requeue, Delay: time.Second, Next: &next}
			err := worker.Requeued(t.Context(), q, o)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if got := strings.Join(q.calls, " "); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if len(q.enqueued) != 1 || q.enqueued[0] != next {
				t.Errorf("enqueued %+v", q.enqueued)
			}
		})
	}
}

type recordingQueue struct {
	enqErr   error
	calls    []string
	enqueued []queue.Intent
}

func (q *recordingQueue) Enqueue(_ context.Context, in ...queue.Intent) error {
	q.calls = append(q.calls, "enqueue")
	q.enqueued = append(q.enqueued, in...)
	return q.enqErr
}

func (q *recordingQueue) Ack(context.Context, string) error {
	q.calls = append(q.calls, "ack")
	return nil
}

func (q *recordingQueue) Retry(context.Context, string, time.Duration) error {
	q.calls = append(q.calls, "retry")
	return nil
}
