package worker_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/worker"
)

type originKey struct{}

// multi is a worker over two sandbox targets, "a" and "b"; b's connector
// goes through hooks so tests can break it.
type multi struct {
	*fixture
	lmsB *sandbox.LMS
	b    *hooks
}

func newMulti(t *testing.T) *multi {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lmsA, _ := sandbox.Open("")
	lmsB, _ := sandbox.Open("")
	b := &hooks{Connector: lmsB}
	mk := func(name string, c connector.Connector) worker.Target {
		return worker.Target{Name: name, Conn: c, Mapping: mapping.Default(),
			AdoptBy: []connector.KeyKind{connector.KeyExternalID},
			Context: func(ctx context.Context, ident *store.Identity) context.Context {
				return context.WithValue(ctx, originKey{}, ident.Version)
			}}
	}
	ta, tb := mk("a", lmsA), mk("b", b)
	w, err := worker.New(st, []worker.Target{ta, tb}, worker.Config{Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	return &multi{fixture: &fixture{t: t, ctx: t.Context(), st: st, lms: lmsA, w: w, tgt: ta}, lmsB: lmsB, b: b}
}

func to(in queue.Intent, target string) queue.Intent { in.Target = target; return in }

func TestMultiTargetPendingClearsWhenEveryTargetIsSynced(t *testing.T) {
	m := newMulti(t)
	in := m.create(jane())
	m.sync(to(in, "a"))
	if len(m.lms.Snapshot()) != 1 || len(m.lmsB.Snapshot()) != 0 {
		t.Fatalf("a targeted intent wrote a=%d b=%d learners", len(m.lms.Snapshot()), len(m.lmsB.Snapshot()))
	}
	if !m.pending(in.IdentityID) {
		t.Fatal("pending cleared while target b is not synced")
	}
	m.sync(to(in, "b"))
	if len(m.lmsB.Snapshot()) != 1 {
		t.Fatalf("b holds %d learners, want 1", len(m.lmsB.Snapshot()))
	}
	if m.pending(in.IdentityID) {
		t.Fatal("pending not cleared with every target synced")
	}
}

func TestMultiTargetOutageDoesNotHoldOthers(t *testing.T) {
	m := newMulti(t)
	var down atomic.Bool
	down.Store(true)
	fail := func() error {
		return &connector.Error{Op: "find", Retryable: true, Err: errors.New("503 from target b")}
	}
	m.b.find = func(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
		if down.Load() {
			return nil, fail()
		}
		return m.lmsB.Find(ctx, k)
	}
	in := m.create(jane())
	fan := []queue.Message{msg(to(in, "a"), "ha"), msg(to(in, "b"), "hb")}
	outs := m.w.Process(m.ctx, fan)
	if outs[0].Verdict != worker.Ack || outs[1].Verdict != worker.Retry {
		t.Fatalf("verdicts a=%v b=%v, want ack and retry", outs[0].Verdict, outs[1].Verdict)
	}
	if len(m.lms.Snapshot()) != 1 {
		t.Fatal("target a did not converge while b was down")
	}
	if !m.pending(in.IdentityID) {
		t.Fatal("pending cleared while b failed")
	}
	down.Store(false)
	if outs := m.w.Process(m.ctx, fan[1:]); outs[0].Verdict != worker.Ack {
		t.Fatalf("b after recovery: %v %s", outs[0].Verdict, outs[0].Reason)
	}
	if len(m.lmsB.Snapshot()) != 1 || len(m.lms.Snapshot()) != 1 || m.pending(in.IdentityID) {
		t.Fatalf("after recovery a=%d b=%d pending=%v", len(m.lms.Snapshot()), len(m.lmsB.Snapshot()), m.pending(in.IdentityID))
	}
}

func TestMultiTargetBlockedTargetDoesNotLockIdentity(t *testing.T) {
	m := newMulti(t)
	entered, release := make(chan struct{}), make(chan struct{})
	m.b.create = func(ctx context.Context, l connector.Learner) (string, error) {
		close(entered)
		<-release
		return m.lmsB.Create(ctx, l)
	}
	in := m.create(jane())
	done := make(chan error, 1)
	go func() { done <- m.w.Sync(m.ctx, to(in, "b")) }()
	<-entered
	// b's sync of this identity is stuck inside the target; a's must not wait for it.
	aDone := make(chan error, 1)
	go func() { aDone <- m.w.Sync(m.ctx, to(in, "a")) }()
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a safety net, not a timing assertion
		t.Fatal("target a's sync waited for target b's")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.pending(in.IdentityID) {
		t.Fatal("pending not cleared")
	}
}

func TestMultiTargetContextHookAndUnknownTarget(t *testing.T) {
	m := newMulti(t)
	var seen atomic.Int64
	m.b.create = func(ctx context.Context, l connector.Learner) (string, error) {
		v, _ := ctx.Value(originKey{}).(int64)
		seen.Store(v)
		return m.lmsB.Create(ctx, l)
	}
	in := m.create(jane())
	m.sync(to(in, "gone")) // a target removed from the config: dropped
	if len(m.lms.Snapshot())+len(m.lmsB.Snapshot()) != 0 {
		t.Fatal("an intent for an unknown target wrote something")
	}
	m.sync(in) // untargeted: every target
	if seen.Load() != in.Version || len(m.lms.Snapshot()) != 1 || len(m.lmsB.Snapshot()) != 1 {
		t.Fatalf("Context hook saw version %d (want %d); a=%d b=%d", seen.Load(), in.Version, len(m.lms.Snapshot()), len(m.lmsB.Snapshot()))
	}
	if m.pending(in.IdentityID) {
		t.Fatal("pending not cleared")
	}
}
