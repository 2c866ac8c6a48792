package reconcile_test

import (
	"maps"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/store"
)

// TestReprovisionedPersonKeepsTheLearner: A was deleted and its tombstone's
// link still names learner L (its sync has not run, or ran before the
// fix), while live identity B, the same person provisioned again, owns L.
// Reconciliation must never report or queue L's deactivation.
func TestReprovisionedPersonKeepsTheLearner(t *testing.T) {
	cases := []struct {
		name string
		// otherExt: B carries another external id and was linked to L by
		// hand (an admin's review resolution).
		otherExt bool
		// synced: B's sync has run (B's link names L).
		synced bool
		want   map[reconcile.Kind]int
	}{
		{name: "live identity linked", synced: true, want: map[reconcile.Kind]int{}},
		{name: "live identity not synced yet", want: map[reconcile.Kind]int{reconcile.Adopt: 1}},
		{name: "live link, other external id", otherExt: true, synced: true, want: map[reconcile.Kind]int{reconcile.Mismatch: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			a := mkPerson("jane")
			b := a
			b.id, b.last = "id-jane-2", "Restored"
			if tc.otherExt {
				b.ext = "00ujane-new"
			}
			w.add(a)
			w.sync(a.id)
			learner := w.linkOf(a.id).LearnerID

			ident, err := w.st.GetIdentity(w.ctx, a.id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.st.DeleteIdentity(w.ctx, a.id, ident.Version); err != nil {
				t.Fatal(err)
			}
			w.add(b)
			switch {
			case tc.otherExt:
				bi, err := w.st.GetIdentity(w.ctx, b.id)
				if err != nil {
					t.Fatal(err)
				}
				l := &store.Link{IdentityID: b.id, Target: w.tgt.Name, LearnerID: learner, ExternalID: b.ext,
					SyncedVersion: bi.Version, Updated: time.Now().UTC()}
				if err := w.st.PutLink(w.ctx, l); err != nil {
					t.Fatal(err)
				}
			case tc.synced:
				w.sync(b.id)
			}
			if got := w.linkOf(a.id).LearnerID; got != learner {
				t.Fatalf("setup: A's link names %q, want %s", got, learner)
			}
			if u, _ := w.sim.User(learner); u.ActiveStatus != 0 {
				t.Fatalf("setup: learner %s inactive", learner)
			}
			w.dir.set(b.dirUser())

			dry := w.run(reconcile.Options{DryRun: true, MaxDeactivateShare: 1})
			if got := countsOf(dry); !maps.Equal(got, tc.want) {
				t.Fatalf("dry run counts = %v, want %v", got, tc.want)
			}
			if dry.Guard.Deactivations != 0 {
				t.Fatalf("dry run would deactivate %d learners", dry.Guard.Deactivations)
			}

			rep := w.run(reconcile.Options{MaxDeactivateShare: 1})
			if got := countsOf(rep); !maps.Equal(got, tc.want) || rep.Guard.Deactivations != 0 {
				t.Fatalf("run counts = %v, guard %+v, want %v", got, rep.Guard, tc.want)
			}
			w.drain()
			if u, _ := w.sim.User(learner); u.ActiveStatus != 0 || u.LastName != b.last {
				t.Fatalf("learner after the repairs = %+v, want active with B's data", u)
			}
			if l := w.linkOf(b.id); l.LearnerID != learner {
				t.Fatalf("B's link = %+v, want learner %s", l, learner)
			}
			if tc.otherExt {
				return
			}
			// A's own sync lets go of the learner without touching it.
			w.sync(a.id)
			if u, _ := w.sim.User(learner); u.ActiveStatus != 0 {
				t.Fatal("the tombstone's sync switched the learner off")
			}
			if l := w.linkOf(a.id); l.LearnerID != "" {
				t.Fatalf("A's link still names %s", l.LearnerID)
			}
			if rep := w.run(reconcile.Options{MaxDeactivateShare: 1}); rep.Drift != 0 {
				t.Fatalf("drift after convergence: %v", countsOf(rep))
			}
		})
	}
}
