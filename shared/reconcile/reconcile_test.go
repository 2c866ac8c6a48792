package reconcile_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/admin"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
)

// driftWorld seeds drift of every kind; it returns the people by role.
type driftWorld struct {
	*world
	ok, missing, mismatch, inactive, deleted, adopt, amb, gone, unknown person
	mismatchLearner, inactiveLearner, deletedLearner, adoptLearner      string
	ambA, ambB, orphan                                                  string
}

func seedDrift(t *testing.T) *driftWorld {
	w := &driftWorld{world: newWorld(t)}
	w.ok, w.missing, w.mismatch = mkPerson("ok"), mkPerson("missing"), mkPerson("mismatch")
	w.inactive, w.deleted, w.adopt = mkPerson("inactive"), mkPerson("deleted"), mkPerson("adopt")
	w.amb, w.gone, w.unknown = mkPerson("amb"), mkPerson("gone"), mkPerson("unknown")

	// Synced: ok, mismatch, inactive, deleted, gone (with a group each).
	w.add(w.ok, w.mismatch, w.inactive, w.deleted, w.gone)
	if _, err := w.st.CreateGroup(w.ctx, &store.Group{ID: "g-sales", DisplayName: "Sales"}, []string{w.ok.id, w.mismatch.id}); err != nil {
		t.Fatal(err)
	}
	w.sync(w.ok.id, w.mismatch.id, w.inactive.id, w.deleted.id, w.gone.id)

	// mismatch: someone edits the learner's job title in the LMS.
	w.mismatchLearner = w.linkOf(w.mismatch.id).LearnerID
	w.editLearner(w.mismatchLearner, func(u *absorbsim.User) { u.JobTitle = "Edited by hand" })

	// inactive: the identity was deactivated (and synced), then the
	// learner reactivated by hand; deleted: the same for a tombstone.
	ident, err := w.st.GetIdentity(w.ctx, w.inactive.id)
	if err != nil {
		t.Fatal(err)
	}
	off := w.inactive
	off.inactive = true
	next := off.identity(t)
	if err := w.st.UpdateIdentity(w.ctx, next, ident.Version); err != nil {
		t.Fatal(err)
	}
	ident, _ = w.st.GetIdentity(w.ctx, w.deleted.id)
	if _, err := w.st.DeleteIdentity(w.ctx, w.deleted.id, ident.Version); err != nil {
		t.Fatal(err)
	}
	w.sync(w.inactive.id, w.deleted.id)
	w.inactiveLearner, w.deletedLearner = w.linkOf(w.inactive.id).LearnerID, w.linkOf(w.deleted.id).LearnerID
	for _, id := range []string{w.inactiveLearner, w.deletedLearner} {
		if u, _ := w.sim.User(id); u.ActiveStatus != 1 {
			t.Fatalf("setup: learner %s should be inactive", id)
		}
		w.editLearner(id, func(u *absorbsim.User) { u.ActiveStatus = 0 })
	}

	// Never synced: missing, adopt (a learner existed before, same
	// username, no external id), amb (two learners share its email).
	w.add(w.missing, w.adopt, w.amb)
	w.adoptLearner = w.sim.SeedUser(absorbsim.User{Username: w.adopt.user, FirstName: "Old", LastName: "Record", EmailAddress: "old@example.com"})
	w.ambA = w.sim.SeedUser(absorbsim.User{Username: "amb.one", FirstName: "A", LastName: "One", EmailAddress: w.amb.email})
	w.ambB = w.sim.SeedUser(absorbsim.User{Username: "amb.two", FirstName: "A", LastName: "Two", EmailAddress: w.amb.email, ActiveStatus: 1})
	// orphan: an LMS account nobody provisions.
	w.orphan = w.sim.SeedUser(absorbsim.User{Username: "contractor", FirstName: "Con", LastName: "Tractor", EmailAddress: "c@vendor.example"})

	// The directory assigns everyone but "gone", plus "unknown".
	var us []reconcile.DirUser
	for _, p := range []person{w.ok, w.missing, w.mismatch, w.adopt, w.amb, w.unknown} {
		us = append(us, p.dirUser())
	}
	w.dir.set(us...)
	w.dir.page = 2
	return w
}

func TestReconcileRepairsEveryKindOfDrift(t *testing.T) {
	for _, dir := range []string{"fake directory", "okta simulator"} {
		t.Run(dir, func(t *testing.T) {
			w := seedDrift(t)
			if dir == "okta simulator" {
				gone := w.gone.dirUser()
				gone.Active = false // deprovisioned in Okta, still assigned
				w.useOkta(append(slices.Clone(w.dir.users), gone)...)
			}
			testRepairsEveryKind(t, w)
		})
	}
}

func testRepairsEveryKind(t *testing.T, w *driftWorld) {
	before := len(w.sim.Users())

	rep := w.run(reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true})
	want := map[reconcile.Kind]int{
		reconcile.Missing: 1, reconcile.Mismatch: 1, reconcile.Inactive: 2, reconcile.Adopt: 1,
		reconcile.Ambiguous: 1, reconcile.Orphan: 1, reconcile.Unknown: 1, reconcile.Unassigned: 1,
	}
	if got := countsOf(rep); !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v\n%+v", got, want, rep)
	}
	if !rep.Complete || rep.Guard.Verdict != reconcile.GuardOK || rep.Drift != 9 || rep.Created != 1 || rep.Deactivated != 1 {
		t.Fatalf("report = %+v", rep)
	}
	// Samples name the right ids.
	for k, id := range map[reconcile.Kind]string{reconcile.Missing: w.missing.id, reconcile.Mismatch: w.mismatch.id,
		reconcile.Adopt: w.adopt.id, reconcile.Ambiguous: w.amb.id, reconcile.Orphan: w.orphan,
		reconcile.Unknown: w.unknown.ext, reconcile.Unassigned: w.gone.id} {
		if !slices.Contains(rep.Samples[k], id) {
			t.Errorf("samples[%s] = %v, want %s", k, rep.Samples[k], id)
		}
	}
	// Nothing was written to the target by reconciliation itself.
	if n := len(w.sim.Users()); n != before {
		t.Fatalf("reconcile wrote to the target: %d learners, had %d", n, before)
	}
	// The EMF line carries the drift.
	var emf map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(w.metrics.Bytes()), &emf); err != nil {
		t.Fatalf("metrics line %q: %v", w.metrics.String(), err)
	}
	if emf["Drift"] != float64(9) || emf["Target"] != "absorb" || !strings.Contains(w.metrics.String(), `"Namespace":"learnerlink"`) {
		t.Fatalf("EMF = %s", w.metrics.String())
	}
	// The report is stored and is the latest.
	reps, err := reconcile.LatestReports(w.ctx, w.st, "absorb", 5)
	if err != nil || len(reps) != 1 || reps[0].RunID != rep.RunID || reps[0].Drift != 9 {
		t.Fatalf("stored reports = %+v, %v", reps, err)
	}

	w.drain()

	// missing: created; mismatch: repaired; inactive/deleted/gone: off.
	if ls := w.learnerBy(func(u absorbsim.User) bool { return u.ExternalID == w.missing.ext }); len(ls) != 1 || ls[0].ActiveStatus != 0 {
		t.Errorf("missing learner = %+v", ls)
	}
	if u, _ := w.sim.User(w.mismatchLearner); u.JobTitle != w.mismatch.title {
		t.Errorf("mismatch learner job title = %q", u.JobTitle)
	}
	goneLearner := w.linkOf(w.gone.id).LearnerID
	for _, id := range []string{w.inactiveLearner, w.deletedLearner, goneLearner} {
		if u, _ := w.sim.User(id); u.ActiveStatus != 1 {
			t.Errorf("learner %s still active", id)
		}
	}
	if ident, _ := w.st.GetIdentity(w.ctx, w.gone.id); ident.Active {
		t.Errorf("unassigned identity still active")
	}
	// adopt: the pre-existing learner is linked and carries the external
	// id; no second learner with that username.
	if l := w.linkOf(w.adopt.id); l.LearnerID != w.adoptLearner {
		t.Errorf("adopt linked to %s, want %s", l.LearnerID, w.adoptLearner)
	}
	if ls := w.learnerBy(func(u absorbsim.User) bool { return strings.EqualFold(u.Username, w.adopt.user) }); len(ls) != 1 || ls[0].ExternalID != w.adopt.ext || ls[0].EmailAddress != w.adopt.email {
		t.Errorf("adopted learners = %+v", ls)
	}
	// unknown: an identity was created and provisioned.
	if ls := w.learnerBy(func(u absorbsim.User) bool { return u.ExternalID == w.unknown.ext }); len(ls) != 1 {
		t.Errorf("unknown user's learners = %+v", ls)
	}
	// orphan: untouched.
	if u, _ := w.sim.User(w.orphan); u.ActiveStatus != 0 || u.ExternalID != "" {
		t.Errorf("orphan changed: %+v", u)
	}
	// amb: parked for review, no learner touched.
	es, err := w.reviews.List(w.ctx, "absorb")
	if err != nil || len(es) != 1 || es[0].IdentityID != w.amb.id || !slices.Equal(es[0].Candidates, sorted(w.ambA, w.ambB)) {
		t.Fatalf("review list = %+v, %v", es, err)
	}
	if _, err := w.st.GetLink(w.ctx, w.amb.id, "absorb"); err == nil {
		if l := w.linkOf(w.amb.id); l.LearnerID != "" {
			t.Fatalf("ambiguous identity linked to %s", l.LearnerID)
		}
	}

	// An admin resolves it through the admin API: link learner A.
	srv := httptest.NewServer(admin.NewHandler(admin.Deps{Store: w.st, Reviews: w.reviews}, "admin-token"))
	defer srv.Close()
	body := strings.NewReader(`{"action":"link","learnerId":"` + w.ambA + `","by":"it-admin"}`)
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodPost, srv.URL+"/admin/reviews/absorb/"+w.amb.id+"/resolve", body)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resolve: status %d", resp.StatusCode)
	}
	w.drain()
	if u, _ := w.sim.User(w.ambA); u.ExternalID != w.amb.ext || u.Username != w.amb.user {
		t.Errorf("chosen learner not brought to the identity: %+v", u)
	}
	if es, _ := w.reviews.List(w.ctx, "absorb"); len(es) != 0 {
		t.Errorf("review list after resolution = %+v", es)
	}

	// A second run finds nothing but the orphan, which is only reported.
	rep2 := w.run(reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true})
	if got := countsOf(rep2); !maps.Equal(got, map[reconcile.Kind]int{reconcile.Orphan: 1}) {
		t.Fatalf("second run counts = %v\n%+v", got, rep2)
	}
	if rep2.Enqueued != 0 {
		t.Fatalf("second run enqueued %d", rep2.Enqueued)
	}
}

func sorted(ss ...string) []string {
	slices.Sort(ss)
	return ss
}

func TestDryRunWritesOnlyTheReport(t *testing.T) {
	w := seedDrift(t)
	before := len(w.sim.Users())
	rep := w.run(reconcile.Options{DryRun: true, MaxDeactivateShare: 0.5, CreateIdentities: true})
	if !rep.DryRun || !rep.Complete || rep.Drift != 9 || rep.Enqueued != 0 || rep.Created != 0 || rep.Deactivated != 0 || rep.Parked != 0 {
		t.Fatalf("dry run report = %+v", rep)
	}
	if msgs, _ := w.q.Receive(w.ctx, 10, 0); len(msgs) != 0 {
		t.Fatalf("dry run queued %d intents", len(msgs))
	}
	if ident, _ := w.st.GetIdentity(w.ctx, w.gone.id); !ident.Active {
		t.Fatal("dry run deactivated an identity")
	}
	if _, err := w.st.GetIdentityByUserName(w.ctx, w.unknown.user); err == nil {
		t.Fatal("dry run created an identity")
	}
	if es, _ := w.reviews.List(w.ctx, ""); len(es) != 0 {
		t.Fatalf("dry run parked %+v", es)
	}
	if len(w.sim.Users()) != before || w.metrics.Len() != 0 {
		t.Fatal("dry run wrote to the target or emitted a metric")
	}
	if reps, _ := reconcile.LatestReports(w.ctx, w.st, "absorb", 1); len(reps) != 1 || !reps[0].DryRun {
		t.Fatalf("dry-run report not stored: %+v", reps)
	}
	// The real run afterwards sees the same drift.
	if rep := w.run(reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true}); rep.Drift != 9 {
		t.Fatalf("real run after dry run: %+v", rep)
	}
}

func TestGuardRefusesEmptyDirectory(t *testing.T) {
	w := newWorld(t)
	var ids []string
	var us []reconcile.DirUser
	for _, n := range []string{"a", "b", "c", "d"} {
		p := mkPerson(n)
		w.add(p)
		ids = append(ids, p.id)
		us = append(us, p.dirUser())
	}
	w.sync(ids...)
	w.dir.set() // Okta answers no assigned users

	rep := w.run(reconcile.Options{MaxDeactivateShare: 1})
	if rep.Guard.Verdict != reconcile.GuardRefused || !strings.Contains(rep.Guard.Reason, "no active assigned user") {
		t.Fatalf("guard = %+v", rep.Guard)
	}
	if rep.Counts[reconcile.Unassigned] != 4 || rep.Enqueued != 0 || rep.Deactivated != 0 {
		t.Fatalf("report = %+v", rep)
	}
	w.drain()
	for _, id := range ids {
		if ident, _ := w.st.GetIdentity(w.ctx, id); !ident.Active {
			t.Fatalf("identity %s deactivated despite the guard", id)
		}
		if u, _ := w.sim.User(w.linkOf(id).LearnerID); u.ActiveStatus != 0 {
			t.Fatalf("learner of %s deactivated despite the guard", id)
		}
	}

	// The same through the Okta client: an app with no assignments.
	w.useOkta()
	if rep := w.run(reconcile.Options{MaxDeactivateShare: 1}); rep.Guard.Verdict != reconcile.GuardRefused || rep.Enqueued != 0 || rep.DirectoryUsers != 0 {
		t.Fatalf("okta: guard = %+v", rep)
	}
	w.okta = nil

	// The share: 1 of 4 unassigned is 25%, above the default 10%.
	w.dir.set(us[1:]...)
	rep = w.run(reconcile.Options{})
	if rep.Guard.Verdict != reconcile.GuardRefused || rep.Guard.Deactivations != 1 || rep.Guard.ActiveLearners != 4 || rep.Enqueued != 0 {
		t.Fatalf("share guard = %+v", rep)
	}
	// Allowed with a larger share.
	rep = w.run(reconcile.Options{MaxDeactivateShare: 0.3})
	if rep.Guard.Verdict != reconcile.GuardOK || rep.Deactivated != 1 || rep.Enqueued != 1 {
		t.Fatalf("allowed run = %+v", rep)
	}
}

func TestAdoptsPreExistingLearnersWithoutDuplicates(t *testing.T) {
	w := newWorld(t)
	w.dir = nil // no directory: the store and the target only
	var ps []person
	for i := range 30 {
		p := mkPerson("pre" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		ps = append(ps, p)
		w.add(p)
		// The LMS had them before: by username for half, by email
		// (another username) for the rest.
		u := absorbsim.User{Username: p.user, FirstName: "X", LastName: "Y"}
		if i%2 == 1 {
			u = absorbsim.User{Username: "legacy-" + p.user, FirstName: "X", LastName: "Y", EmailAddress: strings.ToUpper(p.email)}
		}
		w.sim.SeedUser(u)
	}
	rep := w.run(reconcile.Options{})
	if got := countsOf(rep); !maps.Equal(got, map[reconcile.Kind]int{reconcile.Adopt: 30}) {
		t.Fatalf("counts = %v", got)
	}
	w.drain()
	if n := len(w.sim.Users()); n != 30 {
		t.Fatalf("%d learners after adoption, want 30 (no duplicates)", n)
	}
	for _, p := range ps {
		if ls := w.learnerBy(func(u absorbsim.User) bool { return u.ExternalID == p.ext }); len(ls) != 1 {
			t.Fatalf("%s: %d learners carry its external id", p.id, len(ls))
		}
	}
	if rep := w.run(reconcile.Options{}); rep.Drift != 0 {
		t.Fatalf("after adoption: %+v", rep.Counts)
	}
}

func TestIgnoredReviewIsLeftAlone(t *testing.T) {
	w := newWorld(t)
	w.dir = nil
	p := mkPerson("twin")
	w.add(p)
	a := w.sim.SeedUser(absorbsim.User{Username: "t1", FirstName: "T", LastName: "1", EmailAddress: p.email})
	b := w.sim.SeedUser(absorbsim.User{Username: "t2", FirstName: "T", LastName: "2", EmailAddress: p.email})
	rep := w.run(reconcile.Options{})
	if rep.Counts[reconcile.Ambiguous] != 1 || rep.Parked != 1 {
		t.Fatalf("report = %+v", rep)
	}
	// Still open: counted again, parked once.
	if rep := w.run(reconcile.Options{}); rep.Counts[reconcile.Ambiguous] != 1 || rep.Enqueued != 0 {
		t.Fatalf("second run = %+v", rep)
	}
	if _, err := w.reviews.Resolve(w.ctx, p.id, "absorb", review.Resolution{Ignore: true}, "it-admin"); err != nil {
		t.Fatal(err)
	}
	rep = w.run(reconcile.Options{})
	if rep.Counts[reconcile.Ambiguous] != 0 || rep.Counts[reconcile.Missing] != 0 || rep.Enqueued != 0 {
		t.Fatalf("after ignore = %+v", rep)
	}
	if e, _ := w.reviews.Get(w.ctx, "absorb", p.id); e.Status != review.Ignored || !slices.Equal(e.Candidates, sorted(a, b)) {
		t.Fatalf("entry = %+v", e)
	}
}
