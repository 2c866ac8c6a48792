package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// multiWorld adds a second target, the sandbox LMS, to a world: the
// worker and the review list serve both.
type multiWorld struct {
	*world
	lms *sandbox.LMS
	box worker.Target
	// extra targets passed to RunAll after the two.
	extra []reconcile.Target
}

func toMulti(t *testing.T, w *world) *multiWorld {
	t.Helper()
	lms, err := sandbox.Open("")
	if err != nil {
		t.Fatal(err)
	}
	box := worker.Target{Name: "sandbox", Conn: lms, Mapping: mapping.Default(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	targets := []worker.Target{w.tgt, box}
	if w.reviews, err = review.New(w.st, review.Config{Queue: w.q, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	if w.w, err = worker.New(w.st, targets, worker.Config{OnConflict: w.reviews.Park}); err != nil {
		t.Fatal(err)
	}
	return &multiWorld{world: w, lms: lms, box: box}
}

func newMultiWorld(t *testing.T) *multiWorld { return toMulti(t, newWorld(t)) }

func (m *multiWorld) targets() []reconcile.Target {
	return append([]reconcile.Target{{Target: m.tgt, GroupsField: groupsField}, {Target: m.box}}, m.extra...)
}

func (m *multiWorld) runAll(o reconcile.Options) (*reconcile.Report, error) {
	return reconcile.RunAll(m.ctx, m.deps(), m.targets(), o)
}

// intents drains the queue through the worker and answers the intents
// reconciliation queued.
func (m *multiWorld) intents() []queue.Intent {
	m.t.Helper()
	var out []queue.Intent
	for range 1000 {
		msgs, err := m.q.Receive(m.ctx, 10, 0)
		if err != nil {
			m.t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, msg := range msgs {
			if strings.HasPrefix(msg.Reason, "reconcile.") {
				out = append(out, msg.Intent)
			}
		}
		m.w.Apply(m.ctx, m.q, m.w.Process(m.ctx, msgs))
	}
	return out
}

func (m *multiWorld) boxLink(id string) string {
	m.t.Helper()
	l, err := m.st.GetLink(m.ctx, id, "sandbox")
	if err != nil {
		m.t.Fatalf("sandbox link of %s: %v", id, err)
	}
	return l.LearnerID
}

func (m *multiWorld) boxLearner(id string) connector.Learner {
	m.t.Helper()
	l, err := m.lms.Get(m.ctx, id)
	if err != nil {
		m.t.Fatalf("sandbox learner %s: %v", id, err)
	}
	return *l
}

// seedBox creates learners in the sandbox by hand (nobody provisions them).
func (m *multiWorld) seedBox(names ...string) {
	m.t.Helper()
	for _, n := range names {
		if _, err := m.lms.Create(m.ctx, connector.Learner{UserName: n, FirstName: "Hand", LastName: "Made", Email: n + "@vendor.example", Active: true}); err != nil {
			m.t.Fatal(err)
		}
	}
}

// noList is a connector that cannot list its learners.
type noList struct{ connector.Connector }

// flakyList fails its List calls while fail is set.
type flakyList struct {
	connector.Connector
	fail *atomic.Bool
}

func (f flakyList) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	if f.fail.Load() {
		return nil, "", errors.New("lms: HTTP 503")
	}
	return f.Connector.(connector.Lister).List(ctx, cursor)
}

func byTarget(rep *reconcile.Report) map[string]reconcile.Report {
	out := map[string]reconcile.Report{}
	for _, tr := range rep.Targets {
		out[tr.Target] = tr
	}
	return out
}

func TestRunAllRepairsEachTargetWithTargetedIntents(t *testing.T) {
	m := newMultiWorld(t)
	ada, bob, cyd, uma := mkPerson("ada"), mkPerson("bob"), mkPerson("cyd"), mkPerson("uma")
	m.add(ada, bob, cyd)
	m.sync(ada.id, bob.id, cyd.id) // to both targets
	// Absorb: ada's job title edited by hand. Sandbox: bob's learner
	// deleted by hand. uma is assigned in Okta but unknown here.
	m.editLearner(m.linkOf(ada.id).LearnerID, func(u *absorbsim.User) { u.JobTitle = "Edited by hand" })
	if err := m.lms.Delete(m.boxLink(bob.id)); err != nil {
		t.Fatal(err)
	}
	m.dir.set(ada.dirUser(), bob.dirUser(), cyd.dirUser(), uma.dirUser())
	m.dir.page = 2
	m.extra = []reconcile.Target{{Target: worker.Target{Name: "legacy", Conn: noList{m.lms}, Mapping: mapping.Default()}}}

	rep, err := m.runAll(reconcile.Options{CreateIdentities: true})
	if err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	if !rep.Complete || len(rep.Targets) != 2 || rep.Created != 1 || rep.Drift != 3 || rep.NotReconciled["legacy"] == "" {
		t.Fatalf("report = %+v", rep)
	}
	tr := byTarget(rep)
	for name, want := range map[string]map[reconcile.Kind]int{
		"absorb":  {reconcile.Mismatch: 1, reconcile.Unknown: 1},
		"sandbox": {reconcile.Missing: 1, reconcile.Unknown: 1},
	} {
		got := tr[name]
		if c := countsOf(&got); !maps.Equal(c, want) || !got.Complete || got.DirectoryUsers != 4 || got.Enqueued != 1 {
			t.Errorf("%s: counts %v, want %v; report %+v", name, c, want, got)
		}
	}
	if got := countsOf(rep); !maps.Equal(got, map[reconcile.Kind]int{reconcile.Mismatch: 1, reconcile.Missing: 1, reconcile.Unknown: 1}) {
		t.Errorf("summed counts = %v", got)
	}
	// The directory was read once (two pages), not once per target.
	if m.dir.calls != 2 {
		t.Errorf("directory read with %d calls, want 2", m.dir.calls)
	}

	created, err := m.st.GetIdentityByUserName(m.ctx, uma.user)
	if err != nil {
		t.Fatalf("unknown user not created: %v", err)
	}
	type rt struct{ reason, target string }
	got := map[rt]string{}
	for _, in := range m.intents() {
		if !in.Force {
			t.Errorf("intent not forced: %+v", in)
		}
		got[rt{in.Reason, in.Target}] = in.IdentityID
	}
	want := map[rt]string{
		{"reconcile.mismatch", "absorb"}: ada.id,
		{"reconcile.missing", "sandbox"}: bob.id,
		{"reconcile.unknown", ""}:        created.ID, // for every target
	}
	if !maps.Equal(got, want) {
		t.Fatalf("intents = %v, want %v", got, want)
	}

	// Reports, checkpoints and metrics are per target.
	for _, name := range []string{"absorb", "sandbox"} {
		reps, err := reconcile.LatestReports(m.ctx, m.st, name, 5)
		if err != nil || len(reps) != 1 || reps[0].RunID != tr[name].RunID || reps[0].Target != name {
			t.Errorf("%s: stored reports = %+v, %v", name, reps, err)
		}
		if _, err := m.st.GetDoc(m.ctx, "reconcile/"+name); err != nil {
			t.Errorf("%s: checkpoint: %v", name, err)
		}
	}
	var emitted []string
	for line := range bytes.Lines(m.metrics.Bytes()) {
		var emf map[string]any
		if err := json.Unmarshal(line, &emf); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		emitted = append(emitted, emf["Target"].(string))
	}
	if !slices.Equal(emitted, []string{"absorb", "sandbox"}) {
		t.Errorf("Drift metrics for %v", emitted)
	}

	// Repaired in both targets: the next run finds nothing.
	if u, _ := m.sim.User(m.linkOf(ada.id).LearnerID); u.JobTitle != ada.title {
		t.Errorf("absorb learner of ada: job title %q", u.JobTitle)
	}
	if l := m.boxLearner(m.boxLink(bob.id)); !l.Active || l.UserName != bob.user {
		t.Errorf("sandbox learner of bob: %+v", l)
	}
	rep, err = m.runAll(reconcile.Options{CreateIdentities: true})
	if err != nil || !rep.Complete || rep.Drift != 0 || rep.Enqueued != 0 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}

func TestRunAllWithOneListableTargetIsRun(t *testing.T) {
	m := newMultiWorld(t)
	p := mkPerson("solo")
	m.add(p)
	m.sync(p.id)
	m.dir.set(p.dirUser())
	targets := []reconcile.Target{{Target: m.tgt, GroupsField: groupsField}, {Target: worker.Target{Name: "legacy", Conn: noList{m.lms}}}}
	rep, err := reconcile.RunAll(m.ctx, m.deps(), targets, reconcile.Options{})
	if err != nil || rep.Target != "absorb" || !rep.Complete || rep.Drift != 0 || rep.Targets != nil || rep.NotReconciled["legacy"] == "" {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	if _, err := m.st.GetDoc(m.ctx, "reconcile/@all"); err == nil {
		t.Fatal("a single target's run kept the checkpoint of a run over several")
	}
	_, err = reconcile.RunAll(m.ctx, m.deps(), targets[1:], reconcile.Options{})
	if err == nil {
		t.Fatal("no listable target: no error")
	}
}

func TestRunAllGoesOnWhenATargetFails(t *testing.T) {
	m := newMultiWorld(t)
	ada, bob := mkPerson("ada"), mkPerson("bob")
	m.add(ada, bob)
	m.sync(ada.id, bob.id)
	m.editLearner(m.linkOf(ada.id).LearnerID, func(u *absorbsim.User) { u.JobTitle = "Edited by hand" })
	m.dir.set(ada.dirUser(), bob.dirUser())
	fail := &atomic.Bool{}
	fail.Store(true)
	m.box.Conn = flakyList{Connector: m.box.Conn, fail: fail}
	// The failing target comes first: the other is reconciled anyway.
	targets := []reconcile.Target{{Target: m.box}, {Target: m.tgt, GroupsField: groupsField}}

	rep, err := reconcile.RunAll(m.ctx, m.deps(), targets, reconcile.Options{})
	var te *reconcile.TargetsError
	if !errors.As(err, &te) || !slices.Equal(te.Targets(), []string{"sandbox"}) || !strings.Contains(err.Error(), "sandbox") {
		t.Fatalf("error = %v, want one naming the sandbox", err)
	}
	if errors.Is(err, reconcile.ErrBusy) {
		t.Fatal("a failed target reads as ErrBusy")
	}
	tr := byTarget(rep)
	if rep.Complete || !slices.Equal(rep.FailedTargets, []string{"sandbox"}) || tr["sandbox"].Error == "" || tr["sandbox"].Complete {
		t.Fatalf("report = %+v", rep)
	}
	if a := tr["absorb"]; !a.Complete || a.Counts[reconcile.Mismatch] != 1 || a.Enqueued != 1 {
		t.Fatalf("absorb = %+v", a)
	}
	ins := m.intents()
	if len(ins) != 1 || ins[0].Target != "absorb" || ins[0].IdentityID != ada.id {
		t.Fatalf("intents = %+v", ins)
	}

	// The run is over; the next one reconciles both again.
	fail.Store(false)
	rep, err = reconcile.RunAll(m.ctx, m.deps(), targets, reconcile.Options{})
	if err != nil || !rep.Complete || rep.Drift != 0 || len(rep.Targets) != 2 || rep.FailedTargets != nil {
		t.Fatalf("next run: %+v, %v", rep, err)
	}
}

func TestRunAllResumesTargetByTarget(t *testing.T) {
	// Two identical worlds: one run straight through, one stopped by the
	// deadline after every page, must find the same drift per target.
	build := func(t *testing.T, page int) *multiWorld {
		m := toMulti(t, seedDrift(t).world)
		// The sandbox holds none of them: every active identity is missing
		// there, besides two learners nobody provisions and one to adopt.
		m.seedBox("temp.one", "temp.two", "missing@example.com")
		if page > 0 {
			m.tgt.Conn = smallPages{Connector: m.tgt.Conn, size: page}
			m.box.Conn = smallPages{Connector: m.box.Conn, size: page}
		}
		return m
	}
	base := reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true}
	ref, err := build(t, 0).runAll(base)
	if err != nil || !ref.Complete {
		t.Fatalf("reference run: %+v, %v", ref, err)
	}

	m := build(t, 2)
	var rep *reconcile.Report
	sawAbsorbDoneSandboxPending, sawSandboxMidRun := false, false
	for n := 1; rep == nil || !rep.Complete; n++ {
		if n > 100 {
			t.Fatal("no progress")
		}
		o := base
		o.Deadline = time.Now().Add(-time.Second)
		rep, err = m.runAll(o)
		if err != nil {
			t.Fatalf("invocation %d: %v", n, err)
		}
		if rep.Invocations != n {
			t.Fatalf("invocation %d: report says %d", n, rep.Invocations)
		}
		if rep.Complete {
			break
		}
		tr := byTarget(rep)
		switch {
		case tr["absorb"].Complete && tr["sandbox"].Phase == "pending":
			sawAbsorbDoneSandboxPending = true
		case tr["absorb"].Complete && tr["sandbox"].Phase != "":
			sawSandboxMidRun = true
			// Its own checkpoint holds its progress.
			if d, err := m.st.GetDoc(m.ctx, "reconcile/sandbox"); err != nil || !strings.Contains(string(d.Value), `"parent"`) {
				t.Fatalf("sandbox checkpoint: %v", err)
			}
		}
	}
	if !sawAbsorbDoneSandboxPending || !sawSandboxMidRun || rep.Invocations < 4 {
		t.Fatalf("not resumed target by target (%d invocations)", rep.Invocations)
	}
	t.Logf("completed in %d invocations; reference %v", rep.Invocations, countsOf(ref))
	want, got := byTarget(ref), byTarget(rep)
	for _, name := range []string{"absorb", "sandbox"} {
		w, g := want[name], got[name]
		if !maps.Equal(countsOf(&g), countsOf(&w)) || g.Learners != w.Learners || g.Guard.Verdict != reconcile.GuardOK {
			t.Errorf("%s: counts %v (%d learners), want %v (%d)", name, countsOf(&g), g.Learners, countsOf(&w), w.Learners)
		}
	}
	if !maps.Equal(countsOf(rep), countsOf(ref)) || rep.Created != 1 || rep.DirectoryUsers != ref.DirectoryUsers {
		t.Errorf("summary %v (created %d), want %v", countsOf(rep), rep.Created, countsOf(ref))
	}
	if p, err := m.st.ListDocs(m.ctx, "reconcilestate", "", 10); err != nil || len(p.Items) != 0 {
		t.Fatalf("leftover state: %v, %v", p.Items, err)
	}
}

func TestRunAllGuardsEachTarget(t *testing.T) {
	tests := []struct {
		name string
		// assigned: how many of the ten people the directory assigns.
		assigned int
		// refused: the targets whose guard refuses.
		refused []string
		reason  string
	}{
		// Two unassigned: 20% of Absorb's 10 active learners, 5% of the
		// sandbox's 40.
		{"share", 8, []string{"absorb"}, "exceed"},
		{"empty directory", 0, []string{"absorb", "sandbox"}, "no active assigned user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMultiWorld(t)
			var ps []person
			var ids []string
			var us []reconcile.DirUser
			for _, n := range []string{"ana", "ben", "cal", "dee", "eve", "fay", "gus", "hal", "ivy", "jon"} {
				p := mkPerson(n)
				ps, ids = append(ps, p), append(ids, p.id)
				m.add(p)
				us = append(us, p.dirUser())
			}
			m.sync(ids...)
			for i := range 30 {
				m.seedBox("contractor" + string(rune('a'+i)))
			}
			m.dir.set(us[:tt.assigned]...)

			rep, err := m.runAll(reconcile.Options{MaxDeactivateShare: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			tr := byTarget(rep)
			var refused []string
			for _, name := range []string{"absorb", "sandbox"} {
				if g := tr[name].Guard; g.Verdict == reconcile.GuardRefused {
					refused = append(refused, name)
					if !strings.Contains(g.Reason, tt.reason) {
						t.Errorf("%s: reason %q", name, g.Reason)
					}
				}
			}
			if !slices.Equal(refused, tt.refused) || rep.Guard.Verdict != reconcile.GuardRefused || !strings.Contains(rep.Guard.Reason, "absorb: ") {
				t.Fatalf("refused %v, want %v; guard %+v", refused, tt.refused, rep.Guard)
			}
			ins := m.intents()
			for _, in := range ins {
				if in.Target != "sandbox" || in.Reason != "reconcile.unassigned" {
					t.Errorf("intent %+v", in)
				}
			}
			gone := ps[tt.assigned:]
			if len(tt.refused) == 2 {
				gone = nil // nothing may be switched off
			}
			if len(ins) != len(gone) || tr["sandbox"].Deactivated != len(gone) {
				t.Fatalf("%d intents, sandbox deactivated %d; want %d", len(ins), tr["sandbox"].Deactivated, len(gone))
			}
			for i, p := range ps {
				off := i >= tt.assigned && len(gone) > 0
				if ident, _ := m.st.GetIdentity(m.ctx, p.id); ident.Active == off {
					t.Errorf("%s: identity active %v", p.id, ident.Active)
				}
				if l := m.boxLearner(m.boxLink(p.id)); l.Active == off {
					t.Errorf("%s: sandbox learner active %v", p.id, l.Active)
				}
				// Absorb's guard refused: its learners stay active.
				if u, _ := m.sim.User(m.linkOf(p.id).LearnerID); u.ActiveStatus != 0 {
					t.Errorf("%s: absorb learner deactivated despite its guard", p.id)
				}
			}
		})
	}
}
