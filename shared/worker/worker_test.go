package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/worker"
)

var (
	onboarding = connector.Enrollment{Kind: "course", ID: "c-onboarding"}
	salesPath  = connector.Enrollment{Kind: "curriculum", ID: "cur-sales"}
	security   = connector.Enrollment{Kind: "course", ID: "c-security"}
)

func testRules() rules.Config {
	return rules.Config{
		Onboarding: []connector.Enrollment{onboarding},
		Rules: []rules.Rule{
			{Name: "sales", When: rules.Condition{Attribute: enterprise + ":department", Equals: "Sales"}, Enroll: []connector.Enrollment{salesPath}},
			{Name: "admins", When: rules.Condition{Group: "Okta Admins"}, Enroll: []connector.Enrollment{security}},
		},
	}
}

func msg(in queue.Intent, handle string) queue.Message {
	return queue.Message{Intent: in, Handle: handle, Receives: 1}
}

func TestLifecycle(t *testing.T) {
	f := newFixture(t, options{rules: testRules()})
	boss := person{id: "id-boss", ext: "00uboss", user: "boss@example.com", first: "Bo", last: "Ss", email: "boss@example.com"}
	f.sync(f.create(boss))
	p := jane()
	p.manager = boss.id // Okta sends our id or its own; both resolve
	var learnerID string
	steps := []struct {
		name   string
		change func() queue.Intent
		check  func(t *testing.T, l sandboxLearner)
	}{
		{"create", func() queue.Intent { return f.create(p) }, func(t *testing.T, l sandboxLearner) {
			learnerID = l.ID
			want := map[string]string{"departmentName": "Sales", "jobTitle": "Account Executive", "employeeNumber": "E1001", "supervisorExternalId": "00uboss"}
			for k, v := range want {
				if l.Fields[k] != v {
					t.Errorf("Fields[%s] = %q, want %q", k, l.Fields[k], v)
				}
			}
			if l.ExternalID != "00ujane" || l.UserName != p.user || l.Email != p.email || l.FirstName != "Jane" || l.LastName != "Doe" || !l.Active {
				t.Errorf("learner = %+v", l.Learner)
			}
			wantEnroll(t, l, onboarding, salesPath)
		}},
		{"update", func() queue.Intent { p.title, p.last = "Sales Director", "Doe-Smith"; return f.update(p) }, func(t *testing.T, l sandboxLearner) {
			if l.Fields["jobTitle"] != "Sales Director" || l.LastName != "Doe-Smith" {
				t.Errorf("not updated: %+v", l.Learner)
			}
		}},
		{"deactivate", func() queue.Intent { p.inactive = true; return f.update(p) }, func(t *testing.T, l sandboxLearner) {
			if l.Active {
				t.Error("still active")
			}
		}},
		{"reactivate", func() queue.Intent { p.inactive = false; return f.update(p) }, func(t *testing.T, l sandboxLearner) {
			if !l.Active {
				t.Error("still inactive")
			}
		}},
		{"join group", func() queue.Intent {
			ch, err := f.st.CreateGroup(f.ctx, &store.Group{ID: "g-admins", DisplayName: "Okta Admins"}, []string{p.id})
			if err != nil || len(ch) != 1 {
				t.Fatalf("create group: %v %v", ch, err)
			}
			return queue.Intent{IdentityID: p.id, Version: ch[0].Version}
		}, func(t *testing.T, l sandboxLearner) {
			if !slices.Equal(l.Groups, []string{"Okta Admins"}) {
				t.Errorf("groups = %v", l.Groups)
			}
			wantEnroll(t, l, onboarding, salesPath, security)
		}},
		{"leave group", func() queue.Intent {
			g, err := f.st.GetGroup(f.ctx, "g-admins")
			if err != nil {
				t.Fatal(err)
			}
			ch, err := f.st.UpdateGroup(f.ctx, g, g.Version, nil, []string{p.id})
			if err != nil || len(ch) != 1 {
				t.Fatalf("update group: %v %v", ch, err)
			}
			return queue.Intent{IdentityID: p.id, Version: ch[0].Version}
		}, func(t *testing.T, l sandboxLearner) {
			if len(l.Groups) != 0 {
				t.Errorf("groups = %v", l.Groups)
			}
		}},
		{"delete", func() queue.Intent { return f.delete(p) }, func(t *testing.T, l sandboxLearner) {
			if l.Active {
				t.Error("deleted identity's learner still active")
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			in := s.change()
			f.sync(in)
			l := f.learnerOf(p.ext)
			if learnerID != "" && l.ID != learnerID {
				t.Errorf("learner id changed from %s to %s", learnerID, l.ID)
			}
			s.check(t, l)
			if n := len(f.learners()); n != 2 {
				t.Errorf("sandbox holds %d learners, want 2 (never deleted, never duplicated)", n)
			}
			if lk := f.link(p.id); lk == nil || lk.SyncedVersion != in.Version || lk.LearnerID != l.ID {
				t.Errorf("link = %+v, want synced version %d", lk, in.Version)
			}
			if f.pending(p.id) {
				t.Error("identity still pending after a successful sync")
			}
		})
	}
}

func wantEnroll(t *testing.T, l sandboxLearner, want ...connector.Enrollment) {
	t.Helper()
	got := slices.Clone(l.Enrollments)
	slices.SortFunc(got, func(a, b connector.Enrollment) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(want, func(a, b connector.Enrollment) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, want) {
		t.Errorf("enrollments = %v, want %v", got, want)
	}
}

func TestStaleDuplicateAndOutOfOrderIntents(t *testing.T) {
	h := &hooks{}
	f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
	p := jane()
	v1 := f.create(p)
	p.title = "Director"
	v2 := f.update(p)
	p.title = "VP"
	v3 := f.update(p)

	// Out of order: the newest first syncs the latest state; the older
	// ones, and a duplicate of the newest, find nothing to do.
	for i, in := range []queue.Intent{v3, v1, v2, v3, v1} {
		f.sync(in)
		if i == 0 {
			continue
		}
		if h.Calls("create")+h.Calls("update") != 1 || h.Calls("find") != 3 {
			t.Fatalf("after intent %d (v%d): calls %v, want only the first sync's", i, in.Version, h.calls)
		}
	}
	if l := f.only(); l.Fields["jobTitle"] != "VP" {
		t.Errorf("jobTitle = %q, want the latest (VP)", l.Fields["jobTitle"])
	}

	// A stale intent delivered after a newer change syncs the newer state.
	p.title = "CEO"
	f.update(p)
	f.sync(v2)
	if l := f.only(); l.Fields["jobTitle"] != "CEO" {
		t.Errorf("jobTitle = %q, want CEO", l.Fields["jobTitle"])
	}
	// An intent for an identity that never existed is a no-op.
	f.sync(queue.Intent{IdentityID: "no-such-identity", Version: 1})
}

func TestVerdicts(t *testing.T) {
	validation := &connector.Error{Op: "create", Status: 422, Err: errors.New("the department does not exist")}
	tests := []struct {
		name        string
		err         func(cancel context.CancelFunc) error
		verdict     worker.Verdict
		delay       time.Duration // exact, or the ceiling when jittered
		jittered    bool
		stillPendng bool
		reason      string
	}{
		{"retry-after honoured", func(context.CancelFunc) error {
			return &connector.Error{Op: "create", Status: 429, Retryable: true, RetryAfter: 7 * time.Second, Err: errors.New("slow down")}
		}, worker.Retry, 7 * time.Second, false, true, "status 429"},
		{"retryable without a hint backs off", func(context.CancelFunc) error {
			return &connector.Error{Op: "create", Status: 503, Retryable: true, Err: errors.New("unavailable")}
		}, worker.Retry, time.Second, true, true, "status 503"},
		{"unclassified (network) retries", func(context.CancelFunc) error { return errors.New("connection reset") }, worker.Retry, time.Second, true, true, "connection reset"},
		{"permanent parks with the reason", func(context.CancelFunc) error { return validation }, worker.Park, 0, false, false, "department does not exist"},
		{"shutdown retries, never parks", func(cancel context.CancelFunc) error { cancel(); return context.Canceled }, worker.Retry, time.Second, true, true, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			h := &hooks{create: func(context.Context, connector.Learner) (string, error) { return "", tc.err(cancel) }}
			f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
			in := f.create(jane())
			out := f.w.Process(ctx, []queue.Message{msg(in, "h1")})
			if len(out) != 1 {
				t.Fatalf("%d outcomes", len(out))
			}
			o := out[0]
			if o.Verdict != tc.verdict || o.Message.Handle != "h1" {
				t.Fatalf("outcome = %+v, want %v", o, tc.verdict)
			}
			if tc.jittered && (o.Delay <= 0 || o.Delay > tc.delay) || !tc.jittered && o.Delay != tc.delay {
				t.Errorf("delay = %v, want %v (jittered %v)", o.Delay, tc.delay, tc.jittered)
			}
			if !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("reason = %q, want it to mention %q", o.Reason, tc.reason)
			}
			if got := f.pending(in.IdentityID); got != tc.stillPendng {
				t.Errorf("pending = %v, want %v", got, tc.stillPendng)
			}
			if len(f.learners()) != 0 {
				t.Error("a learner was created")
			}
		})
	}
}

func TestInactiveNeverCreatedIdentityCreatesNothing(t *testing.T) {
	h := &hooks{}
	f := newFixture(t, options{rules: testRules(), wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
	// Someone else's account with the same username must not be touched
	// on behalf of an inactive identity.
	p := jane()
	p.inactive = true
	otherID, err := f.lms.Create(f.ctx, connector.Learner{UserName: p.user, FirstName: "Pre", LastName: "Existing", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	in := f.create(p)
	f.sync(in)
	if h.Calls("create")+h.Calls("update")+h.Calls("groups")+h.Calls("enroll") != 0 {
		t.Errorf("target writes for an inactive, never-created identity: %v", h.calls)
	}
	if l := f.only(); l.ID != otherID || !l.Active || l.ExternalID != "" {
		t.Errorf("pre-existing learner touched: %+v", l)
	}
	if lk := f.link(p.id); lk == nil || lk.LearnerID != "" || lk.SyncedVersion != in.Version {
		t.Errorf("link = %+v, want synced with no learner", lk)
	}

	// Deleted while never projected: nothing either.
	q := person{id: "id-q", ext: "00uq", user: "q@example.com", first: "Q", last: "Q", inactive: true}
	f.create(q)
	f.sync(f.delete(q))
	if n := len(f.learners()); n != 1 || h.Calls("create") != 0 {
		t.Errorf("deleting a never-projected identity wrote to the target (%d learners, %v)", n, h.calls)
	}

	// Activated later: now it is adopted (by username) and onboarded.
	p.inactive = false
	f.sync(f.update(p))
	l := f.only()
	if l.ID != otherID || !l.Active || l.ExternalID != p.ext {
		t.Errorf("after activation: %+v", l)
	}
	wantEnroll(t, l, onboarding, salesPath)
}

func TestAdoption(t *testing.T) {
	p := jane()
	tests := []struct {
		name     string
		existing []connector.Learner
		adopted  int    // index into existing, -1: none
		audit    string // detail of the adopt record
		conflict string // reason when not adoptable
	}{
		{"by external id (our earlier create)", []connector.Learner{{UserName: "old-name", FirstName: "J", LastName: "D", ExternalID: p.ext}}, 0, "matched by externalId", ""},
		{"by username", []connector.Learner{{UserName: strings.ToUpper(p.user), FirstName: "J", LastName: "D", Active: true}}, 0, "matched by userName", ""},
		{"by email", []connector.Learner{{UserName: "jdoe", Email: p.email, FirstName: "J", LastName: "D"}}, 0, "matched by email", ""},
		{"username held by another external id", []connector.Learner{{UserName: p.user, FirstName: "J", LastName: "D", ExternalID: "00uother"}}, -1, "", "matches by userName but carries another external id"},
		{"several learners share the email", []connector.Learner{
			{UserName: "a", Email: p.email, FirstName: "A", LastName: "A"},
			{UserName: "b", Email: p.email, FirstName: "B", LastName: "B"},
		}, -1, "", "2 learners match by email"},
		{"several learners carry our external id", []connector.Learner{
			{UserName: "a", FirstName: "A", LastName: "A", ExternalID: p.ext},
			{UserName: "b", FirstName: "B", LastName: "B", ExternalID: p.ext},
		}, -1, "", "2 learners match by externalId"},
	}
	for _, tc := range tests {
		for _, review := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/review=%v", tc.name, review), func(t *testing.T) {
				type call struct {
					identity, target, reason string
					candidates               []string
				}
				var calls []call
				cfg := worker.Config{}
				if review {
					cfg.OnConflict = func(_ context.Context, identity, target, reason string, candidates []string) error {
						calls = append(calls, call{identity, target, reason, candidates})
						return nil
					}
				}
				f := newFixture(t, options{cfg: cfg})
				var ids []string
				for _, l := range tc.existing {
					id, err := f.lms.Create(f.ctx, l)
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}
				writes := f.lms.Writes()
				in := f.create(p)
				out := f.w.Process(f.ctx, []queue.Message{msg(in, "h")})[0]
				ls := f.learners()
				if len(ls) != len(tc.existing) {
					t.Fatalf("%d learners, want %d (adoption never creates)", len(ls), len(tc.existing))
				}
				if tc.adopted >= 0 {
					if out.Verdict != worker.Ack {
						t.Fatalf("outcome %+v", out)
					}
					l := f.learnerOf(p.ext)
					if l.ID != ids[tc.adopted] || l.UserName != p.user || l.Email != p.email || l.FirstName != "Jane" {
						t.Errorf("adopted learner = %+v", l.Learner)
					}
					if lk := f.link(p.id); lk == nil || lk.LearnerID != l.ID {
						t.Errorf("link = %+v", lk)
					}
					if !f.hasAudit(p.id, "learner.adopt", tc.audit) {
						t.Errorf("no learner.adopt audit %q", tc.audit)
					}
					return
				}
				if f.lms.Writes() != writes {
					t.Error("the target was written despite the conflict")
				}
				if f.link(p.id) != nil {
					t.Error("a link was written despite the conflict")
				}
				if f.pending(p.id) {
					t.Error("still pending: the sweeper would retry a conflict forever")
				}
				if !review {
					if out.Verdict != worker.Park || !strings.Contains(out.Reason, tc.conflict) {
						t.Fatalf("outcome %+v, want Park for %q", out, tc.conflict)
					}
					return
				}
				if out.Verdict != worker.Ack {
					t.Fatalf("outcome %+v, want Ack (left for review)", out)
				}
				slices.Sort(ids)
				if len(calls) != 1 || calls[0].identity != p.id || calls[0].target != "sandbox" ||
					!strings.Contains(calls[0].reason, tc.conflict) || !slices.Equal(slices.Sorted(slices.Values(calls[0].candidates)), ids) {
					t.Errorf("OnConflict calls = %+v, want one for %s with candidates %v", calls, p.id, ids)
				}
				if !f.hasAudit(p.id, "learner.review", tc.conflict) {
					t.Error("no learner.review audit record")
				}
			})
		}
	}
}

func TestOnConflictFailureRetries(t *testing.T) {
	f := newFixture(t, options{cfg: worker.Config{OnConflict: func(context.Context, string, string, string, []string) error {
		return errors.New("review list unavailable")
	}}})
	p := jane()
	if _, err := f.lms.Create(f.ctx, connector.Learner{UserName: p.user, FirstName: "X", LastName: "Y", ExternalID: "00uother"}); err != nil {
		t.Fatal(err)
	}
	out := f.w.Process(f.ctx, []queue.Message{msg(f.create(p), "h")})[0]
	if out.Verdict != worker.Retry || !f.pending(p.id) {
		t.Errorf("outcome %+v (pending %v), want Retry and still pending", out, f.pending(p.id))
	}
}

func TestSharedExternalIDIsAConflict(t *testing.T) {
	f := newFixture(t, options{})
	a := jane()
	f.sync(f.create(a))
	// A second live identity with the same IdP id (a re-created user, or
	// two IdPs) must not take over the first one's learner.
	b := person{id: "id-b", ext: a.ext, user: "other@example.com", first: "O", last: "T"}
	out := f.w.Process(f.ctx, []queue.Message{msg(f.create(b), "h")})[0]
	if out.Verdict != worker.Park || !strings.Contains(out.Reason, "other identities carry the same external id") {
		t.Errorf("outcome %+v", out)
	}
	if l := f.only(); l.UserName != a.user {
		t.Errorf("learner taken over: %+v", l.Learner)
	}
}

func TestConcurrentSyncNeverDuplicates(t *testing.T) {
	tests := []struct {
		name               string
		workers, perWorker int
	}{
		{"one worker, 8 goroutines", 1, 8},
		{"4 processes, 2 goroutines each", 4, 2},
		{"8 processes", 8, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 5 {
				f := newFixture(t, options{rules: testRules()})
				p := jane()
				in := f.create(p)
				ws := []*worker.Worker{f.w}
				for range tc.workers - 1 {
					ws = append(ws, f.worker(worker.Config{}))
				}
				var wg sync.WaitGroup
				errs := make(chan error, tc.workers*tc.perWorker)
				for _, w := range ws {
					for range tc.perWorker {
						wg.Go(func() { errs <- w.Sync(f.ctx, in) })
					}
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("round %d: sync: %v", round, err)
					}
				}
				l := f.only()
				if lk := f.link(p.id); lk == nil || lk.LearnerID != l.ID || lk.SyncedVersion != in.Version {
					t.Errorf("round %d: link %+v, learner %s", round, lk, l.ID)
				}
				wantEnroll(t, l, onboarding, salesPath)
			}
		})
	}
}

func TestCreateConflictAdoptsTheWinner(t *testing.T) {
	// Deterministic version of the race above: another process creates the
	// learner between our lookup and our create.
	h := &hooks{}
	f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
	p := jane()
	var once sync.Once
	h.create = func(ctx context.Context, l connector.Learner) (string, error) {
		once.Do(func() {
			// Another process wins the create after our lookups.
			if _, err := h.Connector.Create(ctx, connector.Learner{ExternalID: p.ext, UserName: p.user, FirstName: "J", LastName: "D", Active: true}); err != nil {
				t.Error(err)
			}
		})
		return h.Connector.Create(ctx, l)
	}
	f.sync(f.create(p))
	l := f.only()
	if l.FirstName != "Jane" || f.link(p.id).LearnerID != l.ID {
		t.Errorf("learner %+v not adopted", l.Learner)
	}
	if !f.hasAudit(p.id, "learner.adopt", "after a create conflict") {
		t.Error("no adopt-after-conflict audit record")
	}
}

func TestCrashBetweenCreateAndLinkWrite(t *testing.T) {
	h := &hooks{}
	f := newFixture(t, options{wrap: func(c connector.Connector) connector.Connector { h.Connector = c; return h }})
	fail := true
	h.create = func(ctx context.Context, l connector.Learner) (string, error) {
		id, err := h.Connector.Create(ctx, l)
		if err == nil && fail {
			// The LMS created it, but we never heard back (timeout, crash).
			fail = false
			return "", &connector.Error{Op: "create", Retryable: true, Err: errors.New("read: connection reset")}
		}
		return id, err
	}
	p := jane()
	in := f.create(p)
	if out := f.w.Process(f.ctx, []queue.Message{msg(in, "h1")})[0]; out.Verdict != worker.Retry {
		t.Fatalf("first delivery: %+v, want Retry", out)
	}
	if lk := f.link(p.id); lk != nil && lk.LearnerID != "" {
		t.Fatalf("link knows a learner it never heard of: %+v", lk)
	}
	redelivered := msg(in, "h2")
	redelivered.Receives = 2
	if out := f.w.Process(f.ctx, []queue.Message{redelivered})[0]; out.Verdict != worker.Ack {
		t.Fatalf("redelivery: %+v", out)
	}
	l := f.only()
	if h.Calls("create") != 1 || f.link(p.id).LearnerID != l.ID {
		t.Errorf("creates = %d, link %+v, learner %s", h.Calls("create"), f.link(p.id), l.ID)
	}
	if !f.hasAudit(p.id, "learner.adopt", "matched by externalId") {
		t.Error("not adopted by external id")
	}
}

func TestForce(t *testing.T) {
	tests := []struct {
		name     string
		inactive bool
		tamper   func(f *fixture, id string)
		force    bool
		want     func(t *testing.T, f *fixture, before sandboxLearner, writes int)
	}{
		{"drift is repaired", false, func(f *fixture, id string) {
			l, _ := f.lms.Get(f.ctx, id)
			l.LastName, l.Active, l.Fields["jobTitle"] = "Changed", false, "Intern"
			if err := f.lms.Update(f.ctx, *l); err != nil {
				f.t.Fatal(err)
			}
		}, true, func(t *testing.T, f *fixture, before sandboxLearner, _ int) {
			l := f.only()
			if l.ID != before.ID || l.LastName != "Doe" || !l.Active || l.Fields["jobTitle"] != "Account Executive" {
				t.Errorf("not repaired: %+v", l.Learner)
			}
			if !f.hasAudit("id-jane", "learner.repair", "target drifted: lastName, active, jobTitle") {
				t.Error("no repair audit naming the drifted fields")
			}
		}},
		{"drift is not noticed without force", false, func(f *fixture, id string) {
			l, _ := f.lms.Get(f.ctx, id)
			l.LastName = "Changed"
			_ = f.lms.Update(f.ctx, *l)
		}, false, func(t *testing.T, f *fixture, _ sandboxLearner, _ int) {
			if l := f.only(); l.LastName != "Changed" {
				t.Errorf("a plain duplicate intent wrote to the target: %+v", l.Learner)
			}
		}},
		{"gone learner is re-created", false, func(f *fixture, id string) {
			if err := f.lms.Delete(id); err != nil {
				f.t.Fatal(err)
			}
		}, true, func(t *testing.T, f *fixture, before sandboxLearner, _ int) {
			l := f.only()
			if l.ID == before.ID || l.ExternalID != "00ujane" || !l.Active || f.link("id-jane").LearnerID != l.ID {
				t.Errorf("not re-created and relinked: %+v, link %+v", l.Learner, f.link("id-jane"))
			}
			wantEnroll(t, l, onboarding, salesPath) // a new account starts over
		}},
		{"gone inactive learner is not re-created", true, func(f *fixture, id string) {
			if err := f.lms.Delete(id); err != nil {
				f.t.Fatal(err)
			}
		}, true, func(t *testing.T, f *fixture, _ sandboxLearner, _ int) {
			if n := len(f.learners()); n != 0 {
				t.Errorf("%d learners, want 0", n)
			}
			if lk := f.link("id-jane"); lk == nil || lk.LearnerID != "" {
				t.Errorf("link %+v, want no learner", lk)
			}
		}},
		{"no drift, no write", false, func(*fixture, string) {}, true, func(t *testing.T, f *fixture, _ sandboxLearner, writes int) {
			if f.lms.Writes() != writes {
				t.Errorf("%d writes for a target that matched", f.lms.Writes()-writes)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, options{rules: testRules()})
			p := jane()
			f.sync(f.create(p))
			var in queue.Intent
			if tc.inactive {
				p.inactive = true
				in = f.update(p)
				f.sync(in)
			} else {
				in = queue.Intent{IdentityID: p.id, Version: 1}
			}
			before := f.only()
			tc.tamper(f, before.ID)
			writes := f.lms.Writes()
			in.Force, in.Reason = tc.force, "reconcile"
			f.sync(in)
			tc.want(t, f, before, writes)
			if lk := f.link(p.id); lk.SyncedVersion != in.Version {
				t.Errorf("link version %d, want %d", lk.SyncedVersion, in.Version)
			}
		})
	}
}

func TestForceConcurrentRecreateNeverDuplicates(t *testing.T) {
	f := newFixture(t, options{})
	p := jane()
	in := f.create(p)
	f.sync(in)
	if err := f.lms.Delete(f.only().ID); err != nil {
		t.Fatal(err)
	}
	in.Force = true
	var wg sync.WaitGroup
	for range 4 {
		w := f.worker(worker.Config{})
		wg.Go(func() {
			if err := w.Sync(f.ctx, in); err != nil {
				t.Errorf("sync: %v", err)
			}
		})
	}
	wg.Wait()
	if l := f.only(); f.link(p.id).LearnerID != l.ID {
		t.Errorf("link %+v, learner %s", f.link(p.id), l.ID)
	}
}

func TestUpdateOfGoneLearnerRecreatesInOneSync(t *testing.T) {
	f := newFixture(t, options{})
	p := jane()
	f.sync(f.create(p))
	old := f.only().ID
	if err := f.lms.Delete(old); err != nil {
		t.Fatal(err)
	}
	p.title = "Director"
	f.sync(f.update(p))
	if l := f.only(); l.ID == old || l.Fields["jobTitle"] != "Director" || f.link(p.id).LearnerID != l.ID {
		t.Errorf("learner %+v, link %+v", l.Learner, f.link(p.id))
	}
}

func TestAuditHasNoPersonalData(t *testing.T) {
	f := newFixture(t, options{rules: testRules()})
	p := jane()
	f.sync(f.create(p))
	p.title = "Director"
	f.sync(f.update(p))
	p.inactive = true
	f.sync(f.update(p))
	f.sync(f.delete(p))
	recs, err := f.st.ListAudit(f.ctx, p.id, 100)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, r := range recs {
		actions[r.Action] = true
		if r.Actor != "worker" || r.Target != "sandbox" || r.SourceVersion == 0 || r.Result != "ok" {
			t.Errorf("record %+v", r)
		}
		all := strings.ToLower(strings.Join([]string{r.Action, r.Detail, r.Reason, r.RequestID, r.Result}, " "))
		for _, pii := range []string{"jane", "doe", "example.com", "account executive", "director", "e1001"} {
			if strings.Contains(all, pii) {
				t.Errorf("audit record carries %q: %+v", pii, r)
			}
		}
	}
	for _, a := range []string{"learner.create", "learner.update", "learner.deactivate", "learner.groups", "enroll"} {
		if !actions[a] {
			t.Errorf("no %s audit record (have %v)", a, actions)
		}
	}
}

func TestMappingFailureParks(t *testing.T) {
	f := newFixture(t, options{})
	tgt := f.tgt
	tgt.Mapping = mapping.Default()
	tgt.Mapping.Fields["active"] = mapping.Source{"title"} // "Account Executive" is no boolean
	w, err := worker.New(f.st, []worker.Target{tgt}, worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := jane()
	out := w.Process(f.ctx, []queue.Message{msg(f.create(p), "h")})[0]
	if out.Verdict != worker.Park || !strings.Contains(out.Reason, "not a boolean") || strings.Contains(out.Reason, "Account") {
		t.Errorf("outcome %+v", out)
	}
	if f.pending(p.id) || len(f.learners()) != 0 {
		t.Error("a mapping failure left the identity pending or wrote to the target")
	}
}
