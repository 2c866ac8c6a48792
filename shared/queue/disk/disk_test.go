package disk

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/queuetest"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queuetest.Options) queue.Queue {
		q, err := Open(filepath.Join(t.TempDir(), "queue.db"), Options{
			VisibilityTimeout: opts.VisibilityTimeout,
			MaxReceives:       opts.MaxReceives,
		})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

// clock is a manual clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func open(t *testing.T, path string, opts Options) *Queue {
	t.Helper()
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func mustReceive(t *testing.T, q *Queue, max int) []queue.Message {
	t.Helper()
	msgs, err := q.Receive(t.Context(), max, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func intents(msgs []queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%s/%d/r%d", m.IdentityID, m.Version, m.Receives)
	}
	return out
}

func TestReopenKeepsPendingAndInFlight(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "q.db")
	clk := newClock()
	opts := Options{VisibilityTimeout: time.Minute, MaxReceives: 3, Now: clk.Now}

	q := open(t, path, opts)
	if err := q.Enqueue(ctx,
		queue.Intent{IdentityID: "x", Version: 1, Reason: "scim.create"},
		queue.Intent{IdentityID: "x", Version: 2},
		queue.Intent{IdentityID: "y", Version: 1},
		queue.Intent{IdentityID: "z", Version: 1},
	); err != nil {
		t.Fatal(err)
	}
	held := mustReceive(t, q, 3) // x/1 in flight across the restart, z/1 retried with a delay
	if got := intents(held); fmt.Sprint(got) != "[x/1/r1 y/1/r1 z/1/r1]" {
		t.Fatalf("first receive = %v", got)
	}
	if err := q.Retry(ctx, held[2].Handle, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ctx, held[1].Handle); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil { // or the process died
		t.Fatal(err)
	}

	// Whoever received x/1 is gone: it is delivered again at once, not
	// after its visibility timeout; z/1 keeps its delay.
	q = open(t, path, opts)
	got := mustReceive(t, q, 10)
	if fmt.Sprint(intents(got)) != "[x/1/r2]" || got[0].Reason != "scim.create" || !got[0].Sent.Equal(held[0].Sent) {
		t.Fatalf("after reopen = %v %+v, want x/1 again at once", intents(got), got)
	}
	if err := q.Retry(ctx, held[0].Handle, 0); !errors.Is(err, queue.ErrUnknownHandle) {
		t.Fatalf("Retry(handle of the earlier delivery) = %v, want ErrUnknownHandle", err)
	}
	if err := q.Ack(ctx, got[0].Handle); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Deduplication and Retry delays survive a restart.
	q = open(t, path, opts)
	if err := q.Enqueue(ctx, queue.Intent{IdentityID: "x", Version: 1}); err != nil {
		t.Fatal(err)
	}
	x2 := mustReceive(t, q, 10)
	if got := intents(x2); fmt.Sprint(got) != "[x/2/r1]" {
		t.Fatalf("after the second reopen = %v, want x/2 only (x/1 deduplicated, z/1 delayed)", got)
	}
	if err := q.Ack(ctx, x2[0].Handle); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Minute)
	if got := intents(mustReceive(t, q, 10)); fmt.Sprint(got) != "[z/1/r2]" {
		t.Fatalf("after the delay = %v, want z/1", got)
	}
}

func TestDedupWindowExpires(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{DedupWindow: time.Minute, Now: clk.Now})
	in := queue.Intent{IdentityID: "x", Version: 1}
	tests := []struct {
		advance time.Duration
		want    int
	}{
		{0, 1},                            // first copy
		{59 * time.Second, 0},             // inside the window
		{time.Second, 1},                  // window over: accepted again
		{30 * time.Second, 0},             // new window from the second copy
		{30*time.Second + time.Second, 1}, // and that one expires too
	}
	for i, tc := range tests {
		clk.Advance(tc.advance)
		if err := q.Enqueue(ctx, in); err != nil {
			t.Fatal(err)
		}
		got := mustReceive(t, q, 10)
		if len(got) != tc.want {
			t.Fatalf("step %d: received %v, want %d", i, intents(got), tc.want)
		}
		for _, m := range got {
			if err := q.Ack(ctx, m.Handle); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOnePerIdentityPerReceive(t *testing.T) {
	ctx := t.Context()
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	if err := q.Enqueue(ctx,
		queue.Intent{IdentityID: "x", Version: 1},
		queue.Intent{IdentityID: "x", Version: 2},
		queue.Intent{IdentityID: "y", Version: 1},
	); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(intents(mustReceive(t, q, 10))); got != "[x/1/r1 y/1/r1]" {
		t.Fatalf("Receive = %v, want one per identity, oldest first", got)
	}
}

func TestUnknownHandles(t *testing.T) {
	ctx := t.Context()
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	if err := q.Enqueue(ctx, queue.Intent{IdentityID: "x", Version: 1}, queue.Intent{IdentityID: "y", Version: 1}); err != nil {
		t.Fatal(err)
	}
	m := mustReceive(t, q, 1)[0] // x delivered once; y never delivered
	for _, h := range []string{"", "x", "1", "1.", ".1", "1.x", "999.1", "1.2", "2.0", "2.1", "-1.1"} {
		if h == m.Handle {
			continue
		}
		t.Run(h, func(t *testing.T) {
			ops := map[string]func() error{
				"Ack":   func() error { return q.Ack(ctx, h) },
				"Retry": func() error { return q.Retry(ctx, h, 0) },
				"Park":  func() error { return q.Park(ctx, h, "r") },
			}
			for name, op := range ops {
				if err := op(); !errors.Is(err, queue.ErrUnknownHandle) {
					t.Errorf("%s(%q) = %v, want ErrUnknownHandle", name, h, err)
				}
			}
		})
	}
}

func TestRetryOnLastReceiveParksAtOnce(t *testing.T) {
	ctx := t.Context()
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxReceives: 2})
	if err := q.Enqueue(ctx, queue.Intent{IdentityID: "x", Version: 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m := mustReceive(t, q, 1)[0]
		if err := q.Retry(ctx, m.Handle, time.Hour); err != nil {
			t.Fatal(err)
		}
		if m.Receives == 1 {
			// An hour's delay on the first attempt: make it visible again.
			if err := q.Retry(ctx, m.Handle, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	dead, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dead) != 1 || dead[0].Receives != 2 || dead[0].Handle != "" {
		t.Fatalf("DeadLetters = %+v, %v; want x/1 with 2 receives, no handle", dead, err)
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	q, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(ctx, 1, time.Hour)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it start waiting (passes either way)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Receive after Close = %v, want ErrClosed", err)
	}
	ops := map[string]func() error{
		"Enqueue":     func() error { return q.Enqueue(ctx, queue.Intent{IdentityID: "x"}) },
		"Receive":     func() error { _, err := q.Receive(ctx, 1, 0); return err },
		"Ack":         func() error { return q.Ack(ctx, "1.1") },
		"Retry":       func() error { return q.Retry(ctx, "1.1", 0) },
		"Park":        func() error { return q.Park(ctx, "1.1", "") },
		"DeadLetters": func() error { _, err := q.DeadLetters(ctx, 1); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.VisibilityTimeout != 30*time.Second || got.MaxReceives != 5 || got.DedupWindow != 5*time.Minute || got.Now == nil {
		t.Fatalf("defaults = %+v", got)
	}
	kept := Options{VisibilityTimeout: time.Second, MaxReceives: 2, DedupWindow: time.Hour}.withDefaults()
	if kept.VisibilityTimeout != time.Second || kept.MaxReceives != 2 || kept.DedupWindow != time.Hour {
		t.Fatalf("explicit options overridden: %+v", kept)
	}
}

// BenchmarkEnqueueReceiveAck measures one intent's full round trip: three
// durable (fsynced) bbolt transactions.
func BenchmarkEnqueueReceiveAck(b *testing.B) {
	ctx := context.Background()
	q, err := Open(filepath.Join(b.TempDir(), "q.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := q.Enqueue(ctx, queue.Intent{IdentityID: "bench", Version: int64(i)}); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Receive(ctx, 1, time.Second)
		if err != nil || len(msgs) != 1 {
			b.Fatalf("Receive = %d, %v", len(msgs), err)
		}
		if err := q.Ack(ctx, msgs[0].Handle); err != nil {
			b.Fatal(err)
		}
	}
}
