package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// gate is a one-shot signal a hook can wait on without hanging the test
// forever when the code under test never opens it.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(ctx context.Context, what string) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		return errors.New("timed out waiting for " + what)
	}
}

// TestDeleteThenReprovisionSameExternalID: identity A is deleted and
// identity B (same userName and externalId) created right after, as an
// Entra restore or an Okta re-assignment does. A's and B's syncs run in
// two Workers (two processes) at once, with the target writes forced into
// each order. Whatever the order, the one learner ends active with B's
// data, linked to B, and A's link lets go of it.
func TestDeleteThenReprovisionSameExternalID(t *testing.T) {
	cases := []struct {
		name string
		// reprovision: B is created at all (else a plain delete).
		reprovision bool
		// early: B is created before A's sync starts.
		early bool
		// deactivateLast: A's deactivation lands after B's adopt (else
		// B's adopt waits for A's deactivation to land).
		deactivateLast bool
		// failHandover: A's first push of B's state fails (retryable).
		failHandover bool
	}{
		{name: "deactivation lands after the adopt", reprovision: true, deactivateLast: true},
		{name: "adopt lands after the deactivation", reprovision: true},
		{name: "re-provisioned before the tombstone syncs", reprovision: true, early: true},
		{name: "failed hand-over retries", reprovision: true, deactivateLast: true, failHandover: true},
		{name: "plain delete still deactivates"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := jane()
			b := jane()
			b.id, b.last, b.title = "id-jane-2", "Doe-Smith", "Sales Director"

			aAtTarget, aLanded, bAtTarget, bDone := newGate(), newGate(), newGate(), newGate()
			var mu sync.Mutex
			deactivations, activations, failed := 0, 0, false
			h := &hooks{}
			h.update = func(ctx context.Context, l connector.Learner) error {
				mu.Lock()
				first := false
				if l.Active {
					activations++
					first = activations == 1
				} else {
					deactivations++
					first = deactivations == 1
				}
				fail := tc.failHandover && l.Active && activations == 2 && !failed
				failed = failed || fail
				mu.Unlock()
				if !tc.reprovision || tc.early || !first {
					if fail {
						return &connector.Error{Op: "update", Retryable: true, Err: errors.New("target unavailable")}
					}
					return h.Connector.Update(ctx, l)
				}
				switch {
				case !l.Active && tc.deactivateLast:
					// A's deactivation: hold it until B's sync is done.
					aAtTarget.open()
					if err := bDone.wait(ctx, "B's sync"); err != nil {
						return err
					}
					return h.Connector.Update(ctx, l)
				case !l.Active:
					// A's deactivation: B is at the target too, then land.
					aAtTarget.open()
					if err := bAtTarget.wait(ctx, "B's adopt"); err != nil {
						return err
					}
					defer aLanded.open()
					return h.Connector.Update(ctx, l)
				case !tc.deactivateLast:
					// B's adopt: land only after A's deactivation.
					bAtTarget.open()
					if err := aLanded.wait(ctx, "A's deactivation"); err != nil {
						return err
					}
				}
				return h.Connector.Update(ctx, l)
			}
			f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
			f.sync(f.create(a))
			learner := f.only().ID

			delA := f.delete(a)
			var inB queue.Intent
			if tc.early {
				inB = f.create(b)
			}
			other := f.worker(worker.Config{Rand: func() float64 { return 0.5 }})

			errA, errB := make(chan error, 1), make(chan error, 1)
			go func() { errA <- f.w.Sync(f.ctx, delA) }()
			switch {
			case tc.early:
				errB <- nil // B syncs after A, below
			case tc.reprovision:
				if err := aAtTarget.wait(f.ctx, "A's deactivation"); err != nil {
					t.Fatal(err)
				}
				inB = f.create(b)
				go func() { errB <- other.Sync(f.ctx, inB) }()
			default:
				errB <- nil
			}
			var err, berr error
			if tc.deactivateLast {
				berr = <-errB
				bDone.open()
				err = <-errA
			} else {
				err = <-errA
				berr = <-errB
			}
			if berr != nil {
				t.Fatalf("sync B: %v", berr)
			}
			if tc.failHandover {
				if err == nil || !connector.IsRetryable(err) {
					t.Fatalf("sync A with a failing hand-over = %v, want a retryable error", err)
				}
				if l := f.link(a.id); l.LearnerID != learner {
					t.Fatalf("A's link let go of the learner before the hand-over succeeded: %+v", l)
				}
				err = f.w.Sync(f.ctx, delA) // the retry
			}
			if err != nil {
				t.Fatalf("sync A: %v", err)
			}
			if tc.early {
				if err := other.Sync(f.ctx, inB); err != nil {
					t.Fatalf("sync B: %v", err)
				}
			}

			l := f.only()
			la := f.link(a.id)
			if la == nil || la.SyncedVersion != delA.Version || f.pending(a.id) {
				t.Errorf("A's link = %+v (pending %v), want synced at %d", la, f.pending(a.id), delA.Version)
			}
			if !tc.reprovision {
				if l.Active || la.LearnerID != learner {
					t.Errorf("plain delete: learner active=%v, A's link = %+v", l.Active, la)
				}
				return
			}
			if l.ID != learner || !l.Active || l.LastName != b.last || l.Fields["jobTitle"] != b.title {
				t.Errorf("learner = %+v, want %s active with B's data", l.Learner, learner)
			}
			if la.LearnerID != "" {
				t.Errorf("A's link still claims learner %s", la.LearnerID)
			}
			if lb := f.link(b.id); lb == nil || lb.LearnerID != learner {
				t.Errorf("B's link = %+v, want learner %s", lb, learner)
			}
			if !f.hasAudit(a.id, "learner.release", b.id) {
				t.Error("no learner.release audit record for A")
			}
			mu.Lock()
			n := deactivations
			mu.Unlock()
			if tc.early && n != 0 {
				t.Errorf("the tombstone deactivated a learner a live identity owns (%d times)", n)
			}
			// A later Force of A (a redrive, an old reconcile intent) leaves it alone.
			force := delA
			force.Force = true
			f.sync(force)
			if !f.only().Active {
				t.Error("a Force of the tombstone switched the learner off")
			}
		})
	}
}

// TestDeletedTwice: A is deleted, B (same externalId) provisioned and
// deleted too, maybe C provisioned after that. The newest incarnation owns
// the learner whatever order the syncs run or land in: C active if it
// exists, else B's profile, inactive. The older links let go of it.
func TestDeletedTwice(t *testing.T) {
	cases := []struct {
		name string
		// first: "A" or "B", whose tombstone syncs first (one after the
		// other); unused with holdA.
		first string
		// bSynced: B's create is synced before B is deleted.
		bSynced bool
		// holdA: A's sync starts before B exists and its deactivation
		// lands only after every other sync is done.
		holdA bool
		// withC: C is provisioned (live) after B's delete.
		withC bool
	}{
		{name: "newer tombstone syncs first", first: "B", bSynced: true},
		{name: "older tombstone syncs first", first: "A", bSynced: true},
		{name: "older tombstone syncs first, newer never synced live", first: "A"},
		{name: "older deactivation lands last", holdA: true, bSynced: true},
		{name: "live third incarnation, tombstones first", first: "A", bSynced: true, withC: true},
		{name: "live third incarnation, older deactivation lands last", holdA: true, bSynced: true, withC: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b, c := jane(), jane(), jane()
			b.id, b.last, b.title = "id-jane-2", "Doe-Smith", "Sales Director"
			c.id, c.last, c.title = "id-jane-3", "Doe-Jones", "VP Sales"

			aAtTarget, rest := newGate(), newGate()
			var mu sync.Mutex
			held := false
			h := &hooks{}
			h.update = func(ctx context.Context, l connector.Learner) error {
				mu.Lock()
				hold := tc.holdA && !held && !l.Active && l.LastName == a.last
				held = held || hold
				mu.Unlock()
				if hold {
					aAtTarget.open()
					if err := rest.wait(ctx, "the other syncs"); err != nil {
						return err
					}
				}
				return h.Connector.Update(ctx, l)
			}
			f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
			other := f.worker(worker.Config{Rand: func() float64 { return 0.5 }})
			syncOther := func(in queue.Intent) {
				t.Helper()
				if err := other.Sync(f.ctx, in); err != nil {
					t.Fatalf("sync %+v: %v", in, err)
				}
			}
			f.sync(f.create(a))
			learner := f.only().ID

			delA := f.delete(a)
			errA := make(chan error, 1)
			if tc.holdA {
				go func() { errA <- f.w.Sync(f.ctx, delA) }()
				if err := aAtTarget.wait(f.ctx, "A's deactivation"); err != nil {
					t.Fatal(err)
				}
			}
			inB := f.create(b)
			if tc.bSynced {
				syncOther(inB)
			}
			delB := f.delete(b)
			var inC queue.Intent
			if tc.withC {
				inC = f.create(c)
			}
			switch {
			case tc.holdA:
				syncOther(delB)
				if tc.withC {
					syncOther(inC)
				}
				rest.open()
				if err := <-errA; err != nil {
					t.Fatalf("sync A: %v", err)
				}
			case tc.first == "A":
				f.sync(delA)
				syncOther(delB)
			default:
				syncOther(delB)
				f.sync(delA)
			}
			if tc.withC && !tc.holdA {
				syncOther(inC)
			}

			owner, want, released := b, false, []person{a}
			if tc.withC {
				owner, want, released = c, true, []person{a, b}
			}
			check := func(when string) {
				t.Helper()
				l := f.only()
				if l.ID != learner || l.Active != want || l.LastName != owner.last || l.Fields["jobTitle"] != owner.title {
					t.Errorf("%s: learner = %+v, want %s active=%v with %s's profile", when, l.Learner, learner, want, owner.id)
				}
				if lo := f.link(owner.id); lo == nil || lo.LearnerID != learner {
					t.Errorf("%s: %s's link = %+v, want learner %s", when, owner.id, lo, learner)
				}
				for _, p := range released {
					if lp := f.link(p.id); lp == nil || lp.LearnerID != "" {
						t.Errorf("%s: %s's link = %+v, want the learner released", when, p.id, lp)
					}
				}
			}
			check("after the syncs")
			for _, in := range []queue.Intent{delA, delB} {
				if l := f.link(in.IdentityID); l == nil || l.SyncedVersion != in.Version || f.pending(in.IdentityID) {
					t.Errorf("%s's link = %+v (pending %v), want synced at %d", in.IdentityID, l, f.pending(in.IdentityID), in.Version)
				}
			}
			for _, p := range released {
				if !f.hasAudit(p.id, "learner.release", owner.id) {
					t.Errorf("no learner.release audit record for %s naming %s", p.id, owner.id)
				}
			}
			// Later Forces of the tombstones (a redrive, an old reconcile
			// intent) change nothing.
			for _, in := range []queue.Intent{delA, delB} {
				in.Force = true
				f.sync(in)
			}
			check("after Forces of the tombstones")
		})
	}
}

// TestTombstoneHandsOverToOlderLiveIdentity: two live identities shared an
// external id (B created the learner, A's adopt was refused), then B was
// deleted. A owns the learner although B is newer; B's hand-over only
// tries A's lock (waiting could deadlock), so while A's own sync runs it
// retries instead.
func TestTombstoneHandsOverToOlderLiveIdentity(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "free", true: "busy"}[busy], func(t *testing.T) {
			a, b := jane(), jane()
			b.id, b.user, b.email, b.last = "id-jane-2", "jane.doe2@example.com", "jane.doe2@example.com", "Doe-Smith"
			atTarget, done := newGate(), newGate()
			var mu sync.Mutex
			held := false
			h := &hooks{}
			h.update = func(ctx context.Context, l connector.Learner) error {
				mu.Lock()
				hold := busy && !held && l.Active && l.LastName == a.last
				held = held || hold
				mu.Unlock()
				if hold {
					atTarget.open()
					if err := done.wait(ctx, "B's first attempt"); err != nil {
						return err
					}
				}
				return h.Connector.Update(ctx, l)
			}
			f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
			inA := f.create(a)
			f.sync(f.create(b)) // B creates the learner
			learner := f.only().ID
			if err := f.w.Sync(f.ctx, inA); err == nil || connector.IsRetryable(err) {
				t.Fatalf("sync A while B is live = %v, want a permanent conflict", err)
			}
			delB := f.delete(b)
			if busy {
				errA := make(chan error, 1)
				go func() { errA <- f.w.Sync(f.ctx, inA) }() // A adopts; held at the target
				if err := atTarget.wait(f.ctx, "A's adopt"); err != nil {
					t.Fatal(err)
				}
				err := f.w.Sync(f.ctx, delB)
				done.open()
				if err == nil || !connector.IsRetryable(err) {
					t.Fatalf("sync B while A's sync runs = %v, want a retryable error", err)
				}
				if l := f.link(b.id); l == nil || l.LearnerID != learner {
					t.Fatalf("B's link let go of the learner before the hand-over: %+v", l)
				}
				if err := <-errA; err != nil {
					t.Fatalf("sync A: %v", err)
				}
			}
			f.sync(delB)
			l := f.only()
			if l.ID != learner || !l.Active || l.LastName != a.last {
				t.Errorf("learner = %+v, want %s active with A's profile", l.Learner, learner)
			}
			if la := f.link(a.id); la == nil || la.LearnerID != learner {
				t.Errorf("A's link = %+v, want learner %s", la, learner)
			}
			if lb := f.link(b.id); lb == nil || lb.LearnerID != "" || lb.SyncedVersion != delB.Version {
				t.Errorf("B's link = %+v, want the learner released at version %d", lb, delB.Version)
			}
		})
	}
}

// TestConflictOnAStaleCopyIsJudgedAgain: A's sync loads A while it is
// live; before A's match is judged, A is deleted and B (same userName and
// externalId) created and synced. Matching A's stale copy finds B's
// learner and "another identity with the same external id": that is no
// case for a human. The sync retries, and the retry (on A's tombstone)
// leaves the learner to B.
func TestConflictOnAStaleCopyIsJudgedAgain(t *testing.T) {
	a := jane()
	b := jane()
	b.id, b.last = "id-jane-2", "Doe-Smith"
	var parked []string
	h := &hooks{}
	f := newFixture(t, options{
		wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h },
		cfg: worker.Config{OnConflict: func(_ context.Context, id, _, reason string, _ []string) error {
			parked = append(parked, id+": "+reason)
			return nil
		}},
	})
	inA := f.create(a) // never synced: A's sync will look for a learner
	var done atomic.Bool
	h.find = func(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
		if done.CompareAndSwap(false, true) {
			// Meanwhile in the IdP and another worker: A deleted, B
			// created and synced (its own look-ups pass straight through).
			f.delete(a)
			f.sync(f.create(b))
		}
		return h.Connector.Find(ctx, k)
	}
	err := f.w.Sync(f.ctx, inA)
	if !connector.IsRetryable(err) {
		t.Fatalf("sync on a stale copy = %v, want a retryable error", err)
	}
	if len(parked) != 0 {
		t.Fatalf("parked for review: %v", parked)
	}
	if err := f.w.Sync(f.ctx, inA); err != nil {
		t.Fatalf("retry: %v", err)
	}
	l := f.learnerOf(b.ext)
	if !l.Active || l.LastName != "Doe-Smith" {
		t.Errorf("learner = %+v, want B's, active", l)
	}
	if len(f.learners()) != 1 || len(parked) != 0 {
		t.Errorf("%d learners, parked %v", len(f.learners()), parked)
	}
}

// TestTombstoneConflictWithNewIncarnationReleases: a tombstone that never
// had a learner of its own looks for one by external id and finds the
// learner of an earlier incarnation; while it looks, the person is
// provisioned again. The live identity that now shares the external id
// owns the learner: the tombstone lets go instead of asking a human.
func TestTombstoneConflictWithNewIncarnationReleases(t *testing.T) {
	a0, a, b := jane(), jane(), jane()
	a.id, b.id, b.last = "id-jane-2", "id-jane-3", "Doe-Smith"
	var parked []string
	h := &hooks{}
	f := newFixture(t, options{
		wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h },
		cfg: worker.Config{OnConflict: func(_ context.Context, id, _, reason string, _ []string) error {
			parked = append(parked, id+": "+reason)
			return nil
		}},
	})
	f.sync(f.create(a0)) // the learner
	f.sync(f.delete(a0)) // deactivated, by the earlier incarnation
	f.create(a)          // provisioned again, deleted before it was ever synced
	delA := f.delete(a)
	var done atomic.Bool
	h.find = func(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
		if done.CompareAndSwap(false, true) {
			f.create(b) // provisioned once more while A's tombstone looks
		}
		return h.Connector.Find(ctx, k)
	}
	if err := f.w.Sync(f.ctx, delA); err != nil {
		t.Fatalf("tombstone sync: %v", err)
	}
	if len(parked) != 0 {
		t.Fatalf("parked for review: %v", parked)
	}
	if l := f.link(a.id); l == nil || l.LearnerID != "" {
		t.Errorf("A's link = %+v, want released", l)
	}
	f.sync(queue.Intent{IdentityID: b.id, Version: 1})
	if l := f.learnerOf(b.ext); !l.Active || l.LastName != "Doe-Smith" || len(f.learners()) != 1 {
		t.Errorf("learner = %+v (%d learners), want B's, active", l, len(f.learners()))
	}
}
