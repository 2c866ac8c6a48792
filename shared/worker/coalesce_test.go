package worker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

func openQueue(t *testing.T) *disk.Queue {
	t.Helper()
	q, err := disk.Open(filepath.Join(t.TempDir(), "queue.db"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// drain receives and processes until the queue has nothing visible.
func drain(t *testing.T, ctx context.Context, w *worker.Worker, q *disk.Queue) (deliveries int) {
	t.Helper()
	for {
		msgs, err := q.Receive(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return deliveries
		}
		deliveries += len(msgs)
		w.Apply(ctx, q, w.Process(ctx, msgs))
	}
}

// absorbTarget is a worker target on an Absorb simulator, unthrottled.
func absorbTarget(t *testing.T, sim *absorbsim.Sim, opts absorbsim.Options) worker.Target {
	t.Helper()
	conn, err := absorb.New(absorb.Config{
		BaseURL: sim.URL(), Username: opts.Username, Password: opts.Password, PrivateKey: opts.PrivateKey,
		Limiter: throttle.NewLocal(0, 1), Tokens: tokencache.NewLocal(),
		DefaultDepartmentID: sim.DefaultDepartmentID(), GroupsField: "customFields.string30",
	})
	if err != nil {
		t.Fatal(err)
	}
	return worker.Target{Name: "absorb", Conn: conn, Mapping: mapping.Default(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
}

// TestCoalescing: ten updates of one identity queued before the worker
// runs cost at most two target writes, whether they arrive as one batch or
// one by one (the disk queue, like SQS FIFO, hands out one message of an
// identity at a time).
func TestCoalescing(t *testing.T) {
	simOpts := absorbsim.Options{Username: "admin", Password: "S3cret!pass", PrivateKey: "key-1"}
	backends := map[string]func(t *testing.T, f *fixture) (worker.Target, func() int){
		"sandbox": func(t *testing.T, f *fixture) (worker.Target, func() int) { return f.tgt, f.lms.Writes },
		"absorbsim": func(t *testing.T, f *fixture) (worker.Target, func() int) {
			sim := absorbsim.New(simOpts)
			t.Cleanup(sim.Close)
			sim.SeedDepartment(absorbsim.Department{Name: "Sales"})
			return absorbTarget(t, sim, simOpts), func() int {
				n := 0
				for _, r := range sim.Requests() {
					if r.Method == "PUT" || r.Method == "POST" && r.Path != "/authenticate" {
						n++
					}
				}
				return n
			}
		},
	}
	for name, backend := range backends {
		for _, oneByOne := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/oneByOne=%v", name, oneByOne), func(t *testing.T) {
				f := newFixture(t, options{})
				tgt, writes := backend(t, f)
				w, err := worker.New(f.st, []worker.Target{tgt}, worker.Config{})
				if err != nil {
					t.Fatal(err)
				}
				q := openQueue(t)
				p := jane()
				if err := q.Enqueue(f.ctx, f.create(p)); err != nil {
					t.Fatal(err)
				}
				drain(t, f.ctx, w, q)
				before := writes()

				var intents []queue.Intent
				for i := range 10 {
					p.title = fmt.Sprintf("Title %d", i)
					intents = append(intents, f.update(p))
				}
				if oneByOne {
					if err := q.Enqueue(f.ctx, intents...); err != nil {
						t.Fatal(err)
					}
					if n := drain(t, f.ctx, w, q); n != 10 {
						t.Errorf("%d deliveries, want 10", n)
					}
				} else {
					msgs := make([]queue.Message, len(intents))
					for i, in := range intents {
						msgs[i] = msg(in, fmt.Sprint(i))
					}
					for _, o := range w.Process(f.ctx, msgs) {
						if o.Verdict != worker.Ack {
							t.Errorf("outcome %+v", o)
						}
					}
				}
				n := writes() - before
				t.Logf("10 queued updates: %d target writes", n)
				if n < 1 || n > 2 {
					t.Errorf("10 queued updates cost %d target writes, want 1 or 2", n)
				}
				lk, err := f.st.GetLink(f.ctx, p.id, tgt.Name)
				if err != nil || lk.SyncedVersion != intents[9].Version || lk.LearnerID == "" {
					t.Errorf("link %+v (%v), want synced at version %d", lk, err, intents[9].Version)
				}
			})
		}
	}
}

// TestProcessParallel: identities of a batch are synced concurrently, at
// most Parallel at once; messages of one identity are still one sync.
func TestProcessParallel(t *testing.T) {
	const parallel = 3
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		arrived  int
		inflight int
		peak     int
	)
	h := &hooks{}
	h.create = func(ctx context.Context, l connector.Learner) (string, error) {
		mu.Lock()
		arrived++
		inflight++
		peak = max(peak, inflight)
		// Hold each create until a full round of `parallel` creates is in
		// flight: only parallel processing gets past this.
		round := (arrived + parallel - 1) / parallel
		cond.Broadcast()
		deadline := time.Now().Add(10 * time.Second)
		for arrived < round*parallel && time.Now().Before(deadline) {
			waitFor(cond, 100*time.Millisecond)
		}
		ok := arrived >= round*parallel
		inflight--
		mu.Unlock()
		if !ok {
			return "", errors.New("creates were not concurrent")
		}
		return h.Connector.Create(ctx, l)
	}
	f := newFixture(t, options{cfg: worker.Config{Parallel: parallel}, wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
	var msgs []queue.Message
	for i := range 2 * parallel {
		p := person{id: fmt.Sprintf("id-%d", i), ext: fmt.Sprintf("00u%d", i), user: fmt.Sprintf("u%d@example.com", i), first: "F", last: "L"}
		in := f.create(p)
		msgs = append(msgs, msg(in, fmt.Sprintf("h%d", i)))
		if i%2 == 0 { // a duplicate delivery in the same batch is coalesced
			msgs = append(msgs, msg(in, fmt.Sprintf("h%d-dup", i)))
		}
	}
	out := f.w.Process(f.ctx, msgs)
	for i, o := range out {
		if o.Verdict != worker.Ack || o.Message.Handle != msgs[i].Handle {
			t.Errorf("outcome %d = %+v, want Ack for %s", i, o, msgs[i].Handle)
		}
	}
	if peak != parallel {
		t.Errorf("peak concurrency %d, want %d", peak, parallel)
	}
	if n := len(f.learners()); n != 2*parallel || h.Calls("create") != 2*parallel {
		t.Errorf("%d learners, %d creates, want %d", n, h.Calls("create"), 2*parallel)
	}
}

// waitFor waits on c for at most d (sync.Cond has no timeout).
func waitFor(c *sync.Cond, d time.Duration) {
	t := time.AfterFunc(d, c.Broadcast)
	c.Wait()
	t.Stop()
}

// TestRun: the polling loop drains a queue with several consumers and
// stops when its context ends.
func TestRun(t *testing.T) {
	f := newFixture(t, options{rules: testRules()})
	q := openQueue(t)
	const n = 40
	for i := range n {
		p := person{id: fmt.Sprintf("id-%02d", i), ext: fmt.Sprintf("00u%02d", i), user: fmt.Sprintf("u%02d@example.com", i), first: "F", last: "L"}
		if err := q.Enqueue(f.ctx, f.create(p)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx, q, 4, 5) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(f.learners()) < n || anyPending(t, f) {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %d learners", len(f.learners()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	dead, err := q.DeadLetters(f.ctx, 10)
	if err != nil || len(dead) != 0 {
		t.Errorf("dead letters %v, %v", dead, err)
	}
	if len(f.learners()) != n {
		t.Errorf("%d learners, want %d", len(f.learners()), n)
	}
}

func anyPending(t *testing.T, f *fixture) bool {
	t.Helper()
	ps, err := f.st.ListPending(f.ctx, time.Now().Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	return len(ps) > 0
}
