// Package queuetest is the conformance suite every queue.Queue
// implementation must pass (queue/disk against a temp file, queue/sqs
// against a real SQS-compatible server).
//
// Timing: SQS visibility and delays are whole seconds, so the suite uses 1 s
// delays and polls with generous deadlines. It asserts only lower bounds on
// elapsed time ("not before the delay"), plus one "returned before the long
// wait ran out" check that has a 15 s margin.
//
// Contract clarification the suite enforces: "never two at once" holds
// across Receive calls — while any message of an identity is held by a
// consumer, no other Receive returns a message of that identity. Within ONE
// Receive result several messages of one identity may appear (real SQS FIFO
// returns as many messages of a group as it can in one batch), and then they
// appear in order; a consumer must handle them sequentially.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
)

// Options configure the queue under test; newQueue must honour both.
type Options struct {
	VisibilityTimeout time.Duration
	MaxReceives       int
}

// Quirk declares a documented, implementation-specific deviation the suite
// accepts. Without quirks the suite is strict.
type Quirk int

const (
	// AckUnknownHandleMayBeNil: Ack with a handle that is stale (already
	// acknowledged, or superseded by a redelivery) or malformed may return
	// nil instead of queue.ErrUnknownHandle. SQS DeleteMessage succeeds for
	// old handles ("the request succeeds, but the message might not be
	// deleted"). The suite still checks such an Ack does not remove the
	// current delivery. Retry must always report ErrUnknownHandle.
	AckUnknownHandleMayBeNil Quirk = iota + 1
)

// NewQueueFunc builds a fresh, empty queue for one test. The suite closes it;
// the function should register cleanup of anything else it creates.
type NewQueueFunc func(t *testing.T, opts Options) queue.Queue

const (
	// slack absorbs clock granularity (SQS timestamps are milliseconds)
	// when checking that something did NOT happen before a delay.
	slack = 100 * time.Millisecond
	// poll is the long-poll wait used while waiting for an expected message.
	poll = time.Second
	// patience bounds how long a test waits for something that must happen.
	patience = 30 * time.Second
	// defaultVisibility is long enough that nothing expires by accident.
	defaultVisibility = 30 * time.Second
)

type suite struct {
	newQueue NewQueueFunc
	quirks   []Quirk
}

// Run runs the conformance suite. Subtests run in parallel, each with its
// own queue.
func Run(t *testing.T, newQueue NewQueueFunc, quirks ...Quirk) {
	s := suite{newQueue: newQueue, quirks: quirks}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"EnqueueReceiveAck", s.testEnqueueReceiveAck},
		{"EnqueueNothing", s.testEnqueueNothing},
		{"EnqueueInvalid", s.testEnqueueInvalid},
		{"BatchEnqueue", s.testBatchEnqueue},
		{"FIFOPerIdentity", s.testFIFOPerIdentity},
		{"Deduplication", s.testDeduplication},
		{"RequeuedCopy", s.testRequeuedCopy},
		{"RetryAndHandles", s.testRetryAndHandles},
		{"VisibilityTimeout", s.testVisibilityTimeout},
		{"DeadLetterAfterRetries", func(t *testing.T) { s.testDeadLetter(t, true) }},
		{"DeadLetterAfterTimeouts", func(t *testing.T) { s.testDeadLetter(t, false) }},
		{"Park", s.testPark},
		{"DeadLettersEmpty", s.testDeadLettersEmpty},
		{"LongPollReturnsEarly", s.testLongPollEarly},
		{"LongPollEmpty", s.testLongPollEmpty},
		{"ContextCanceled", s.testContextCanceled},
		{"ConcurrentConsumers", s.testConcurrentConsumers},
		{"Close", s.testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

func (s suite) has(q Quirk) bool { return slices.Contains(s.quirks, q) }

func (s suite) open(t *testing.T, opts Options) queue.Queue {
	t.Helper()
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = defaultVisibility
	}
	if opts.MaxReceives == 0 {
		opts.MaxReceives = 5
	}
	q := s.newQueue(t, opts)
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

// checkAckUnknown checks an Ack that must not succeed.
func (s suite) checkAckUnknown(ctx context.Context, t *testing.T, q queue.Queue, handle, what string) {
	t.Helper()
	err := q.Ack(ctx, handle)
	if err == nil && s.has(AckUnknownHandleMayBeNil) {
		return
	}
	if !errors.Is(err, queue.ErrUnknownHandle) {
		t.Errorf("Ack(%s) = %v, want ErrUnknownHandle", what, err)
	}
}

func checkRetryUnknown(ctx context.Context, t *testing.T, q queue.Queue, handle, what string) {
	t.Helper()
	if err := q.Retry(ctx, handle, 0); !errors.Is(err, queue.ErrUnknownHandle) {
		t.Errorf("Retry(%s) = %v, want ErrUnknownHandle", what, err)
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func enqueue(ctx context.Context, t *testing.T, q queue.Queue, intents ...queue.Intent) {
	t.Helper()
	if err := q.Enqueue(ctx, intents...); err != nil {
		t.Fatalf("Enqueue(%d intents): %v", len(intents), err)
	}
}

// receive polls until at least one message arrives.
func receive(ctx context.Context, t *testing.T, q queue.Queue, max int) []queue.Message {
	t.Helper()
	for {
		msgs, err := q.Receive(ctx, max, poll)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > max {
			t.Fatalf("Receive(max=%d) returned %d messages", max, len(msgs))
		}
		if len(msgs) > 0 {
			return msgs
		}
	}
}

// receiveOne polls for exactly one message.
func receiveOne(ctx context.Context, t *testing.T, q queue.Queue) queue.Message {
	t.Helper()
	return receive(ctx, t, q, 1)[0]
}

func ack(ctx context.Context, t *testing.T, q queue.Queue, m queue.Message) {
	t.Helper()
	if err := q.Ack(ctx, m.Handle); err != nil {
		t.Fatalf("Ack(%s v%d): %v", m.IdentityID, m.Version, err)
	}
}

// expectNothing checks that one full long poll returns nothing.
func expectNothing(ctx context.Context, t *testing.T, q queue.Queue, why string) {
	t.Helper()
	msgs, err := q.Receive(ctx, 10, poll)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) > 0 {
		t.Fatalf("%s: got %s, want nothing", why, describe(msgs))
	}
}

func describe(msgs []queue.Message) string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%s/v%d/%q(r%d)", m.IdentityID, m.Version, m.Target, m.Receives)
	}
	return fmt.Sprint(out)
}

func checkSent(t *testing.T, m queue.Message) {
	t.Helper()
	// Real SQS stamps with its own clock: a sanity bound, not a precise one.
	if m.Sent.IsZero() || time.Since(m.Sent).Abs() > 5*time.Minute {
		t.Errorf("Sent = %v, want about now", m.Sent)
	}
}

func (s suite) testEnqueueReceiveAck(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	in := queue.Intent{IdentityID: "00u1ab2cd3EF4gh5", Version: 7, Target: "absorb", Reason: "scim.create", RequestID: "req-1"}
	enqueue(ctx, t, q, in)

	m := receiveOne(ctx, t, q)
	if m.Intent != in {
		t.Errorf("Intent = %+v, want %+v", m.Intent, in)
	}
	if m.Receives != 1 {
		t.Errorf("Receives = %d, want 1", m.Receives)
	}
	if m.Handle == "" {
		t.Error("Handle is empty")
	}
	checkSent(t, m)
	ack(ctx, t, q, m)

	// If the Ack had not removed it, the identity would stay blocked and the
	// next version could never arrive.
	next := in
	next.Version = 8
	enqueue(ctx, t, q, next)
	if got := receiveOne(ctx, t, q); got.Intent != next {
		t.Fatalf("after Ack got %+v, want %+v", got.Intent, next)
	}
}

func (s suite) testEnqueueNothing(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	if err := q.Enqueue(ctx); err != nil {
		t.Fatalf("Enqueue() = %v, want nil", err)
	}
}

func (s suite) testEnqueueInvalid(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	valid := queue.Intent{IdentityID: "u1", Version: 1}
	if err := q.Enqueue(ctx, valid, queue.Intent{Version: 1}); err == nil {
		t.Fatal("Enqueue with an empty IdentityID succeeded, want error")
	}
	// Validation happens before anything is sent: the valid sibling must not
	// have been enqueued, so the next thing of u1 is version 2.
	enqueue(ctx, t, q, queue.Intent{IdentityID: "u1", Version: 2})
	if got := receiveOne(ctx, t, q); got.Version != 2 {
		t.Fatalf("got version %d, want 2 (a rejected batch was partly enqueued)", got.Version)
	}
}

func (s suite) testBatchEnqueue(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	const n = 25 // more than one SQS batch of 10
	want := map[queue.Intent]bool{}
	intents := make([]queue.Intent, n)
	for i := range intents {
		intents[i] = queue.Intent{IdentityID: fmt.Sprintf("batch-%02d", i), Version: int64(i + 1), Reason: "test"}
		want[intents[i]] = true
	}
	enqueue(ctx, t, q, intents...)

	tr := newTracker()
	first := true
	for tr.total() < n {
		max := 10
		if first {
			max = 3 // Receive must honour a max below the batch size
			first = false
		}
		msgs := receive(ctx, t, q, max)
		tr.received(msgs)
		for _, m := range msgs {
			if !want[m.Intent] {
				t.Errorf("unexpected %+v", m.Intent)
			}
			tr.acking(m)
			ack(ctx, t, q, m)
		}
	}
	tr.check(t, n)
	expectNothing(ctx, t, q, "after all acked")
}

func (s suite) testFIFOPerIdentity(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	// One id SQS accepts as a group id verbatim, one it cannot (spaces,
	// non-ASCII, '#') so implementations that must map ids are exercised.
	x, y := "00uX1", "ïd with spaces #1"
	for v := int64(1); v <= 3; v++ {
		enqueue(ctx, t, q, queue.Intent{IdentityID: x, Version: v}, queue.Intent{IdentityID: y, Version: v})
	}
	tr := newTracker()

	// Hold the first message of one identity ...
	first := receive(ctx, t, q, 1)
	tr.received(first)
	held := first[0]
	if held.Version != 1 {
		t.Fatalf("first delivery of %s is v%d, want v1", held.IdentityID, held.Version)
	}
	// ... the other identity must still be deliverable meanwhile ...
	other := receive(ctx, t, q, 10)
	tr.received(other)
	for _, m := range other {
		if m.IdentityID == held.IdentityID {
			t.Fatalf("got %s while v%d of it is in flight", describe(other), held.Version)
		}
	}
	// ... and with both identities held, nothing else may come out.
	expectNothing(ctx, t, q, "both identities in flight")

	pending := append([]queue.Message{held}, other...)
	for tr.total() < 6 {
		for _, m := range pending {
			tr.acking(m)
			ack(ctx, t, q, m)
		}
		pending = receive(ctx, t, q, 10)
		tr.received(pending)
	}
	for _, m := range pending {
		tr.acking(m)
		ack(ctx, t, q, m)
	}
	tr.check(t, 6)
}

func (s suite) testDeduplication(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	id := "dedup-user"
	first := queue.Intent{IdentityID: id, Version: 1, Reason: "scim.create"}
	dup := queue.Intent{IdentityID: id, Version: 1, Reason: "hook.user.lifecycle.activate"}
	otherTarget := queue.Intent{IdentityID: id, Version: 1, Target: "absorb"}
	enqueue(ctx, t, q, first, dup)       // duplicate inside one call
	enqueue(ctx, t, q, dup, otherTarget) // and across calls
	marker := queue.Intent{IdentityID: id, Version: 2}
	enqueue(ctx, t, q, marker)

	// Order within a message group makes absence provable: a duplicate
	// would arrive before the marker. otherTarget is in its own group
	// (identity#target), so it may come at any point.
	var got []queue.Intent
	for !slices.Contains(got, marker) || !slices.Contains(got, otherTarget) {
		m := receiveOne(ctx, t, q)
		got = append(got, m.Intent)
		ack(ctx, t, q, m)
	}
	untargeted := slices.DeleteFunc(slices.Clone(got), func(in queue.Intent) bool { return in == otherTarget })
	if want := []queue.Intent{first, marker}; len(got) != 3 || !slices.Equal(untargeted, want) {
		t.Fatalf("delivered %+v, want %+v and %+v once", got, want, otherTarget)
	}

	// Still deduplicated after the first copy was acknowledged (within the
	// window: SQS keeps deduplication ids for 5 minutes).
	marker2 := queue.Intent{IdentityID: id, Version: 3}
	enqueue(ctx, t, q, dup, marker2)
	if m := receiveOne(ctx, t, q); m.Intent != marker2 {
		t.Fatalf("after ack, re-enqueued duplicate was delivered: %+v", m.Intent)
	}
}

// testRequeuedCopy: a worker's re-enqueued copy of an intent (Retries
// raised, Since kept) is not a duplicate of the original, carries both
// fields through, and is itself deduplicated.
func (s suite) testRequeuedCopy(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	orig := queue.Intent{IdentityID: "requeue-user", Version: 4, Target: "absorb", Reason: "scim.patch"}
	enqueue(ctx, t, q, orig)
	m := receiveOne(ctx, t, q)
	since := m.Sent.Add(-time.Hour).Truncate(time.Millisecond).UTC()
	cp := orig
	cp.Retries, cp.Since = 5, since
	enqueue(ctx, t, q, cp) // while the original is in flight, as a worker does
	ack(ctx, t, q, m)
	got := receiveOne(ctx, t, q)
	if got.Retries != 5 || !got.Since.Equal(since) || got.IdentityID != orig.IdentityID || got.Version != orig.Version || got.Target != orig.Target {
		t.Fatalf("copy delivered as %+v, want Retries 5 and Since %v", got.Intent, since)
	}
	ack(ctx, t, q, got)
	marker := queue.Intent{IdentityID: orig.IdentityID, Version: 5, Target: orig.Target}
	enqueue(ctx, t, q, cp, marker)
	if m := receiveOne(ctx, t, q); m.Version != marker.Version {
		t.Fatalf("the same copy enqueued again was delivered: %+v", m.Intent)
	}
}

func (s suite) testRetryAndHandles(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	in := queue.Intent{IdentityID: "retry-user", Version: 1, Reason: "scim.replace", RequestID: "r-9"}
	enqueue(ctx, t, q, in)

	m1 := receiveOne(ctx, t, q)
	start := time.Now()
	const delay = time.Second
	if err := q.Retry(ctx, m1.Handle, delay); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	m2 := receiveOne(ctx, t, q)
	if el := time.Since(start); el < delay-slack {
		t.Errorf("redelivered %v after Retry(%v)", el, delay)
	}
	if m2.Intent != in || m2.Receives != 2 || m2.Handle == m1.Handle || !m2.Sent.Equal(m1.Sent) {
		t.Errorf("second delivery = %+v (r%d, sent %v), want same intent, Receives 2, new handle, sent %v",
			m2.Intent, m2.Receives, m2.Sent, m1.Sent)
	}

	// The first handle is stale now; using it must not touch the current
	// delivery.
	s.checkAckUnknown(ctx, t, q, m1.Handle, "superseded handle")
	checkRetryUnknown(ctx, t, q, m1.Handle, "superseded handle")
	s.checkAckUnknown(ctx, t, q, "not-a-handle", "malformed handle")
	checkRetryUnknown(ctx, t, q, "not-a-handle", "malformed handle")

	if err := q.Retry(ctx, m2.Handle, 0); err != nil {
		t.Fatalf("Retry(current handle) after stale Ack: %v (the stale Ack removed it?)", err)
	}
	m3 := receiveOne(ctx, t, q)
	if m3.Intent != in || m3.Receives != 3 {
		t.Fatalf("third delivery = %+v r%d, want same intent, Receives 3", m3.Intent, m3.Receives)
	}
	ack(ctx, t, q, m3)
	s.checkAckUnknown(ctx, t, q, m3.Handle, "acknowledged handle")
	checkRetryUnknown(ctx, t, q, m3.Handle, "acknowledged handle")

	marker := queue.Intent{IdentityID: in.IdentityID, Version: 2}
	enqueue(ctx, t, q, marker)
	if m := receiveOne(ctx, t, q); m.Intent != marker {
		t.Fatalf("got %+v, want only the marker left", m.Intent)
	}
}

func (s suite) testVisibilityTimeout(t *testing.T) {
	ctx := testContext(t, patience)
	const vt = time.Second
	q := s.open(t, Options{VisibilityTimeout: vt})
	in := queue.Intent{IdentityID: "vt-user", Version: 1}
	enqueue(ctx, t, q, in)

	start := time.Now()
	m1 := receiveOne(ctx, t, q)
	m2 := receiveOne(ctx, t, q) // not acknowledged: comes back
	if el := time.Since(start); el < vt-slack {
		t.Errorf("redelivered %v after receive, visibility timeout %v", el, vt)
	}
	if m2.Intent != in || m2.Receives != 2 {
		t.Errorf("redelivery = %+v r%d, want same intent, Receives 2", m2.Intent, m2.Receives)
	}
	s.checkAckUnknown(ctx, t, q, m1.Handle, "expired handle")
	// Keep it in flight while checking the current handle still works.
	if err := q.Retry(ctx, m2.Handle, 10*time.Second); err != nil {
		t.Fatalf("Retry(current handle): %v", err)
	}
	ack(ctx, t, q, m2)
}

func (s suite) testDeadLetter(t *testing.T, viaRetry bool) {
	ctx := testContext(t, 2*patience)
	const maxReceives = 3
	opts := Options{MaxReceives: maxReceives}
	if !viaRetry {
		opts.VisibilityTimeout = time.Second
	}
	q := s.open(t, opts)
	doomed := []queue.Intent{
		{IdentityID: "dead-1", Version: 4, Reason: "scim.create"},
		{IdentityID: "dead-2", Version: 9, Target: "absorb"},
	}
	enqueue(ctx, t, q, doomed...)

	receives := map[string]int{}
	var sent time.Time
	for receives[doomed[0].IdentityID] < maxReceives || receives[doomed[1].IdentityID] < maxReceives {
		for _, m := range receive(ctx, t, q, 10) {
			receives[m.IdentityID]++
			if m.Receives != receives[m.IdentityID] {
				t.Fatalf("%s: Receives = %d, want %d", m.IdentityID, m.Receives, receives[m.IdentityID])
			}
			if m.Receives > maxReceives {
				t.Fatalf("%s delivered %d times, MaxReceives %d", m.IdentityID, m.Receives, maxReceives)
			}
			if m.IdentityID == doomed[0].IdentityID {
				sent = m.Sent
			}
			if viaRetry {
				if err := q.Retry(ctx, m.Handle, 0); err != nil {
					t.Fatalf("Retry: %v", err)
				}
			}
		}
	}

	// SQS moves a message on the receive after its last failure, so keep
	// receiving (which must not return them) until both are parked.
	var dead []queue.Message
	for {
		var err error
		dead, err = q.DeadLetters(ctx, 10)
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		if len(dead) == len(doomed) {
			break
		}
		if len(dead) > len(doomed) {
			t.Fatalf("DeadLetters = %s, want 2", describe(dead))
		}
		msgs, err := q.Receive(ctx, 10, poll)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > 0 {
			t.Fatalf("delivered again after %d receives: %s", maxReceives, describe(msgs))
		}
	}
	byID := map[string]queue.Message{}
	for _, m := range dead {
		byID[m.IdentityID] = m
	}
	for _, in := range doomed {
		if byID[in.IdentityID].Intent != in {
			t.Errorf("dead letter for %s = %+v, want %+v", in.IdentityID, byID[in.IdentityID].Intent, in)
		}
	}
	if m := byID[doomed[0].IdentityID]; !m.Sent.Equal(sent) {
		t.Errorf("dead letter Sent = %v, want %v", m.Sent, sent)
	}
	for _, m := range dead {
		if m.ParkReason != "" {
			t.Errorf("%s: ParkReason = %q, want empty (exhausted, not parked)", m.IdentityID, m.ParkReason)
		}
	}

	// Listing is a peek: a second listing still shows them, max is honoured.
	one, err := q.DeadLetters(ctx, 1)
	if err != nil || len(one) != 1 {
		t.Fatalf("DeadLetters(1) = %s, %v; want 1 message", describe(one), err)
	}

	// A parked message no longer blocks its identity.
	next := queue.Intent{IdentityID: doomed[0].IdentityID, Version: doomed[0].Version + 1}
	enqueue(ctx, t, q, next)
	if m := receiveOne(ctx, t, q); m.Intent != next {
		t.Fatalf("got %+v, want %+v", m.Intent, next)
	}
}

func (s suite) testPark(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	in := queue.Intent{IdentityID: "park-user", Version: 3, Target: "absorb", Reason: "scim.replace", RequestID: "r-3"}
	later := queue.Intent{IdentityID: in.IdentityID, Version: 4}
	enqueue(ctx, t, q, in, later)

	m := receiveOne(ctx, t, q)
	if m.Intent != in {
		t.Fatalf("got %+v, want %+v", m.Intent, in)
	}
	const reason = "absorb: 422 email is invalid"
	if err := q.Park(ctx, m.Handle, reason); err != nil {
		t.Fatalf("Park: %v", err)
	}
	// Parked at once, not retried: the identity's next version comes next.
	if got := receiveOne(ctx, t, q); got.Intent != later {
		t.Fatalf("after Park got %+v, want %+v", got.Intent, later)
	} else {
		ack(ctx, t, q, got)
	}
	if err := q.Park(ctx, m.Handle, reason); !errors.Is(err, queue.ErrUnknownHandle) {
		t.Errorf("Park(parked handle) = %v, want ErrUnknownHandle", err)
	}
	if err := q.Park(ctx, "not-a-handle", reason); !errors.Is(err, queue.ErrUnknownHandle) {
		t.Errorf("Park(malformed handle) = %v, want ErrUnknownHandle", err)
	}
	checkRetryUnknown(ctx, t, q, m.Handle, "parked handle")
	s.checkAckUnknown(ctx, t, q, m.Handle, "parked handle")

	var dead []queue.Message
	for len(dead) == 0 {
		var err error
		if dead, err = q.DeadLetters(ctx, 10); err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
	}
	if len(dead) != 1 {
		t.Fatalf("DeadLetters = %s, want 1", describe(dead))
	}
	if d := dead[0]; d.Intent != in || d.ParkReason != reason || !d.Sent.Equal(m.Sent) {
		t.Errorf("dead letter = %+v reason %q sent %v; want %+v reason %q sent %v",
			d.Intent, d.ParkReason, d.Sent, in, reason, m.Sent)
	}
}

func (s suite) testDeadLettersEmpty(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	enqueue(ctx, t, q, queue.Intent{IdentityID: "alive", Version: 1})
	dead, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dead) != 0 {
		t.Fatalf("DeadLetters = %s, %v; want none", describe(dead), err)
	}
}

func (s suite) testLongPollEarly(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	const wait = 15 * time.Second
	type result struct {
		msgs    []queue.Message
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		msgs, err := q.Receive(ctx, 10, wait)
		done <- result{msgs, err, time.Since(start)}
	}()
	// Give the receiver time to start waiting; if it has not, the test still
	// passes, it just does not exercise the wake-up.
	time.Sleep(300 * time.Millisecond)
	in := queue.Intent{IdentityID: "poll-user", Version: 1}
	enqueue(ctx, t, q, in)
	r := <-done
	if r.err != nil {
		t.Fatalf("Receive: %v", r.err)
	}
	if len(r.msgs) != 1 || r.msgs[0].Intent != in {
		t.Fatalf("Receive = %s, want the enqueued intent", describe(r.msgs))
	}
	// The one upper bound in the suite, with a 15 s margin: a Receive that
	// does not wake on arrival would sit out the whole wait.
	if r.elapsed >= wait {
		t.Errorf("Receive returned after %v, the full wait", r.elapsed)
	}
}

func (s suite) testLongPollEmpty(t *testing.T) {
	ctx := testContext(t, patience)
	q := s.open(t, Options{})
	for _, wait := range []time.Duration{0, time.Second} {
		start := time.Now()
		msgs, err := q.Receive(ctx, 10, wait)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("Receive(wait=%v) on empty queue = %s, %v; want nothing, nil", wait, describe(msgs), err)
		}
		if el := time.Since(start); el < wait-slack {
			t.Errorf("Receive(wait=%v) returned after %v", wait, el)
		}
	}
}

func (s suite) testContextCanceled(t *testing.T) {
	q := s.open(t, Options{})
	tests := []struct {
		name   string
		cancel func(context.CancelFunc)
		want   error
	}{
		{"before", func(c context.CancelFunc) { c() }, context.Canceled},
		{"during wait", func(c context.CancelFunc) { time.AfterFunc(200*time.Millisecond, c) }, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tc.cancel(cancel)
			msgs, err := q.Receive(ctx, 10, 15*time.Second)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Receive = %s, %v; want %v", describe(msgs), err, tc.want)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := q.Receive(ctx, 10, 15*time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Receive = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("enqueue", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := q.Enqueue(ctx, queue.Intent{IdentityID: "c", Version: 1}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Enqueue = %v, want context.Canceled", err)
		}
	})
}

func (s suite) testConcurrentConsumers(t *testing.T) {
	ctx := testContext(t, 3*patience)
	q := s.open(t, Options{})
	const identities, versions, consumers = 50, 10, 4
	const n = identities * versions
	intents := make([]queue.Intent, 0, n)
	for v := int64(1); v <= versions; v++ {
		for i := range identities {
			intents = append(intents, queue.Intent{IdentityID: fmt.Sprintf("c-%03d", i), Version: v})
		}
	}
	enqueue(ctx, t, q, intents...)

	tr := newTracker()
	errs := make(chan error, consumers)
	var wg sync.WaitGroup
	for range consumers {
		wg.Go(func() {
			for tr.total() < n {
				msgs, err := q.Receive(ctx, 10, poll)
				if err != nil {
					errs <- fmt.Errorf("Receive: %w", err)
					return
				}
				tr.received(msgs)
				for _, m := range msgs {
					// Release before Ack: once acknowledged, the next version
					// may reach another consumer immediately.
					tr.acking(m)
					if err := q.Ack(ctx, m.Handle); err != nil {
						errs <- fmt.Errorf("Ack: %w", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tr.check(t, n)
	expectNothing(ctx, t, q, "after all acknowledged")
}

func (s suite) testClose(t *testing.T) {
	q := s.newQueue(t, Options{VisibilityTimeout: defaultVisibility, MaxReceives: 5})
	ctx := testContext(t, patience)
	enqueue(ctx, t, q, queue.Intent{IdentityID: "close", Version: 1})
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// tracker checks delivery invariants as consumers report what they receive
// and release.
type tracker struct {
	mu         sync.Mutex
	held       map[string]int   // identity -> messages held by consumers
	last       map[string]int64 // identity -> last version delivered
	deliveries map[queue.Intent]int
	n          int
	problems   []string
}

func newTracker() *tracker {
	return &tracker{held: map[string]int{}, last: map[string]int64{}, deliveries: map[queue.Intent]int{}}
}

func (tr *tracker) received(msgs []queue.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	inBatch := map[string]bool{}
	for _, m := range msgs {
		id := m.IdentityID
		if tr.held[id] > 0 && !inBatch[id] {
			tr.problems = append(tr.problems, fmt.Sprintf("%s v%d delivered while another message of it is in flight", id, m.Version))
		}
		if m.Version <= tr.last[id] {
			tr.problems = append(tr.problems, fmt.Sprintf("%s v%d delivered after v%d", id, m.Version, tr.last[id]))
		}
		inBatch[id] = true
		tr.held[id]++
		tr.last[id] = m.Version
		tr.deliveries[m.Intent]++
		tr.n++
	}
}

func (tr *tracker) acking(m queue.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.held[m.IdentityID]--
}

func (tr *tracker) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.n
}

func (tr *tracker) check(t *testing.T, want int) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range tr.problems {
		t.Error(p)
	}
	if len(tr.deliveries) != want || tr.n != want {
		t.Errorf("%d deliveries of %d distinct intents, want %d each", tr.n, len(tr.deliveries), want)
	}
	for in, c := range tr.deliveries {
		if c != 1 {
			t.Errorf("%+v delivered %d times", in, c)
		}
	}
}
