package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// slow adds a fixed latency to every target call, like a remote LMS.
type slow struct {
	connector.Connector
	d time.Duration
}

func (s slow) wait() { time.Sleep(s.d) }
func (s slow) Get(ctx context.Context, id string) (*connector.Learner, error) {
	s.wait()
	return s.Connector.Get(ctx, id)
}
func (s slow) Find(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
	s.wait()
	return s.Connector.Find(ctx, k)
}
func (s slow) Create(ctx context.Context, l connector.Learner) (string, error) {
	s.wait()
	return s.Connector.Create(ctx, l)
}
func (s slow) Update(ctx context.Context, l connector.Learner) error {
	s.wait()
	return s.Connector.Update(ctx, l)
}

type bench struct {
	b   *testing.B
	ctx context.Context
	st  *bolt.Store
	w   *worker.Worker
}

func newBench(b *testing.B, latency time.Duration, parallel int) *bench {
	b.Helper()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	lms, err := sandbox.Open("")
	if err != nil {
		b.Fatal(err)
	}
	var conn connector.Connector = lms
	if latency > 0 {
		conn = slow{lms, latency}
	}
	tgt := worker.Target{Name: "sandbox", Conn: conn, Mapping: mapping.Default(), Rules: testRules(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	w, err := worker.New(st, []worker.Target{tgt}, worker.Config{Parallel: parallel})
	if err != nil {
		b.Fatal(err)
	}
	return &bench{b: b, ctx: b.Context(), st: st, w: w}
}

func (e *bench) create(i int) queue.Intent {
	e.b.Helper()
	p := person{id: fmt.Sprintf("id-%07d", i), ext: fmt.Sprintf("00u%07d", i), user: fmt.Sprintf("u%07d@example.com", i),
		first: "First", last: "Last", email: fmt.Sprintf("u%07d@example.com", i), dept: "Sales", title: "Engineer"}
	id := p.identity(e.b)
	if err := e.st.CreateIdentity(e.ctx, id); err != nil {
		e.b.Fatal(err)
	}
	return queue.Intent{IdentityID: id.ID, Version: id.Version}
}

func (e *bench) sync(in queue.Intent) {
	if err := e.w.Sync(e.ctx, in); err != nil {
		e.b.Fatal(err)
	}
}

// BenchmarkWorkerSync measures one Sync against the sandbox LMS and a bolt
// store (fsync per store write): a duplicate intent (nothing to do), an
// update, and a create with onboarding and rule enrollments.
func BenchmarkWorkerSync(b *testing.B) {
	b.Run("duplicate", func(b *testing.B) {
		e := newBench(b, 0, 0)
		in := e.create(0)
		e.sync(in)
		for b.Loop() {
			e.sync(in)
		}
	})
	b.Run("update", func(b *testing.B) {
		e := newBench(b, 0, 0)
		in := e.create(0)
		e.sync(in)
		p := person{id: "id-0000000", ext: "00u0000000", user: "u0000000@example.com", first: "First", last: "Last", dept: "Sales"}
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			p.title = fmt.Sprint("Title ", i)
			cur, err := e.st.GetIdentity(e.ctx, p.id)
			if err != nil {
				b.Fatal(err)
			}
			id := p.identity(b)
			if err := e.st.UpdateIdentity(e.ctx, id, cur.Version); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			e.sync(queue.Intent{IdentityID: p.id, Version: id.Version})
		}
	})
	b.Run("create", func(b *testing.B) {
		e := newBench(b, 0, 0)
		i := 0
		for b.Loop() {
			b.StopTimer()
			in := e.create(i)
			i++
			b.StartTimer()
			e.sync(in)
		}
	})
}

// BenchmarkProcessBatch measures a batch of 10 creates against an LMS
// answering in 2ms, with and without parallelism across identities.
func BenchmarkProcessBatch(b *testing.B) {
	for _, parallel := range []int{1, 4, 10} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			e := newBench(b, 2*time.Millisecond, parallel)
			n := 0
			for b.Loop() {
				b.StopTimer()
				msgs := make([]queue.Message, 10)
				for i := range msgs {
					msgs[i] = msg(e.create(n), fmt.Sprint(n))
					n++
				}
				b.StartTimer()
				for _, o := range e.w.Process(e.ctx, msgs) {
					if o.Verdict != worker.Ack {
						b.Fatalf("outcome %+v", o)
					}
				}
			}
		})
	}
}
