package pipelinetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// TestProvisioningLifecycle drives the local runner with the requests
// Okta (and Entra, for DELETE) send and checks the Absorb simulator after
// each step: the learner, its fields, its groups field and enrollments.
func TestProvisioningLifecycle(t *testing.T) {
	e := start(t, absorbsim.Options{}, nil)
	boss := oktaUser{oktaID: "00uboss0001", login: "maria.boss@example.com", first: "Maria", last: "Boss",
		dept: "Engineering", title: "VP Sales", empNo: "E0001", active: true}
	bossID := e.createUser(boss)
	e.settled()
	bossLearner := e.mustLearner(boss.oktaID)

	jane := oktaUser{oktaID: "00ujane0002", login: "jane.doe@example.com", first: "Jane", last: "Doe",
		dept: "Sales", title: "Account Executive", empNo: "E1001", mgr: boss.oktaID, active: true}
	var janeID, janeLearner string
	var groupID string

	type want struct {
		first, last, dept, title string
		active                   bool
		groups                   string
		courses                  []string
	}
	check := func(w want) func() error {
		w.dept = e.depts[w.dept]
		w.courses = slices.Sorted(slices.Values(w.courses))
		return func() error {
			u, err := e.learner(jane.oktaID)
			if err != nil {
				return err
			}
			got := want{u.FirstName, u.LastName, u.DepartmentID, u.JobTitle, u.ActiveStatus == 0, groupsOf(u),
				slices.Sorted(maps.Keys(e.enrolled(u.ID)))}
			if got.first != w.first || got.last != w.last || got.dept != w.dept || got.title != w.title ||
				got.active != w.active || got.groups != w.groups || !slices.Equal(got.courses, w.courses) {
				return fmt.Errorf("learner %+v, want %+v", got, w)
			}
			// Fields that never change in this scenario.
			if u.Username != jane.login || u.EmailAddress != jane.login || u.EmployeeNumber != jane.empNo ||
				u.SupervisorID != bossLearner.ID {
				return fmt.Errorf("learner username %q email %q employee number %q supervisor %q", u.Username, u.EmailAddress, u.EmployeeNumber, u.SupervisorID)
			}
			if janeLearner != "" && u.ID != janeLearner {
				return fmt.Errorf("learner id changed from %s to %s", janeLearner, u.ID)
			}
			return nil
		}
	}
	base := want{"Jane", "Doe", "Sales", "Account Executive", true, "", []string{courseOnboarding, curriculumSales}}
	steps := []struct {
		name string
		do   func()
		want func() want
	}{
		{"create", func() { janeID = e.createUser(jane) }, func() want { return base }},
		{"update name, title, department", func() {
			e.patchUser(janeID, replace(map[string]any{"name.familyName": "Doe-Smith", "title": "Engineer",
				urnEnterprise + ":department": "Engineering"}))
		}, func() want {
			base.last, base.title, base.dept = "Doe-Smith", "Engineer", "Engineering"
			return base
		}},
		{"push group with member", func() {
			res := e.scim("POST", "/Groups", map[string]any{"schemas": []string{urnGroup}, "displayName": "Okta Admins",
				"members": []any{map[string]any{"value": janeID, "display": jane.login}}}, http.StatusCreated)
			groupID, _ = res["id"].(string)
		}, func() want {
			base.groups, base.courses = "|Okta Admins|", append(base.courses, courseSecurity)
			return base
		}},
		{"second group", func() {
			e.scim("POST", "/Groups", map[string]any{"schemas": []string{urnGroup}, "displayName": "All Staff",
				"members": []any{map[string]any{"value": janeID}}}, http.StatusCreated)
		}, func() want { base.groups = "|All Staff|Okta Admins|"; return base }},
		{"deactivate", func() { e.patchUser(janeID, replace(map[string]any{"active": false})) },
			func() want { base.active = false; return base }},
		{"reactivate", func() { e.patchUser(janeID, replace(map[string]any{"active": true})) },
			func() want { base.active = true; return base }},
		{"remove from group", func() {
			e.scim("PATCH", "/Groups/"+groupID, map[string]any{"schemas": []string{urnPatch}, "Operations": []any{
				map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %q]", janeID)}}}, http.StatusNoContent)
		}, func() want { base.groups = "|All Staff|"; return base }},
		{"back in sales", func() {
			e.patchUser(janeID, replace(map[string]any{urnEnterprise + ":department": "Sales"}))
		}, func() want { base.dept = "Sales"; return base }}, // the sales rule fired once already: no re-enrollment needed
		{"delete (Entra)", func() { e.scim("DELETE", "/Users/"+janeID, nil, http.StatusNoContent) },
			func() want { base.active, base.groups = false, ""; return base }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			s.do()
			e.eventually("learner converges", check(s.want()))
			e.settled()
			if janeLearner == "" {
				janeLearner = e.mustLearner(jane.oktaID).ID
			}
			if n := len(e.sim.Users()); n != 2 {
				t.Errorf("%d learners in Absorb, want 2 (never duplicated, never deleted)", n)
			}
			lk, err := e.runner.Store.GetLink(t.Context(), janeID, "absorb")
			if err != nil || lk.LearnerID != janeLearner || lk.ExternalID != jane.oktaID {
				t.Errorf("link %+v, %v", lk, err)
			}
		})
	}
	if _, ok := e.sim.User(bossLearner.ID); !ok || bossID == "" {
		t.Error("the manager's learner is gone")
	}
	e.t = t
}

// extraWorkers builds n more workers (other processes) over the runner's
// store, talking to the same simulator; they share one token cache, and
// admit every request.
func (e *env) extraWorkers(n int, wrap func(connector.Connector) connector.Connector) []*worker.Worker {
	e.t.Helper()
	sh := target.Shared{Limiter: target.NewLocalLimiter(0), Tokens: tokencache.NewLocal()}
	tgt, err := target.Build(e.settings, sh, e.getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	if wrap != nil {
		tgt.Conn = wrap(tgt.Conn)
	}
	var ws []*worker.Worker
	for range n {
		w, err := worker.New(e.runner.Store, []worker.Target{tgt}, worker.Config{})
		if err != nil {
			e.t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// storeIdentity writes an identity straight into the runner's store,
// without queueing it, so only the test's own workers sync it.
func (e *env) storeIdentity(u oktaUser) queue.Intent {
	e.t.Helper()
	id := &store.Identity{ID: "id-" + u.oktaID, UserName: u.login, ExternalID: u.oktaID, Active: true}
	raw := u.body()
	raw["id"] = id.ID
	b, err := json.Marshal(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	id.Resource = b
	if err := e.runner.Store.CreateIdentity(e.t.Context(), id); err != nil {
		e.t.Fatal(err)
	}
	return queue.Intent{IdentityID: id.ID, Version: id.Version, Reason: "test"}
}

// TestConcurrentDeliveryNeverDuplicates: the same intent synced eight
// times at once by four worker processes creates one learner.
func TestConcurrentDeliveryNeverDuplicates(t *testing.T) {
	e := start(t, absorbsim.Options{}, nil)
	ws := e.extraWorkers(4, nil)
	for i := range 3 {
		u := oktaUser{oktaID: fmt.Sprintf("00urace%04d", i), login: fmt.Sprintf("race%d@example.com", i), first: "Race", last: "Condition", dept: "Sales", active: true}
		in := e.storeIdentity(u)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for j := range 8 {
			w := ws[j%len(ws)]
			wg.Go(func() { errs <- w.Sync(t.Context(), in) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("sync: %v", err)
			}
		}
		l := e.mustLearner(u.oktaID)
		if got := e.enrolled(l.ID); !got[courseOnboarding] || !got[curriculumSales] {
			t.Errorf("enrollments %v", got)
		}
	}
	e.noDuplicates()
	if n := len(e.sim.Users()); n != 3 {
		t.Errorf("%d learners, want 3", n)
	}
}

// lostAnswer creates the learner but reports a failure, like a worker that
// died (or timed out) between the LMS's create and the link write.
type lostAnswer struct {
	connector.Connector
	mu    sync.Mutex
	fired bool
}

func (c *lostAnswer) Create(ctx context.Context, l connector.Learner) (string, error) {
	id, err := c.Connector.Create(ctx, l)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && !c.fired {
		c.fired = true
		return "", &connector.Error{Op: "create", Retryable: true, Err: errors.New("worker died before recording " + id)}
	}
	return id, err
}

// TestCrashAfterCreateIsAdoptedOnRedelivery: the redelivered intent,
// handled by the runner's own worker, adopts the learner by external id.
func TestCrashAfterCreateIsAdoptedOnRedelivery(t *testing.T) {
	e := start(t, absorbsim.Options{}, nil)
	crashing := e.extraWorkers(1, func(c connector.Connector) connector.Connector { return &lostAnswer{Connector: c} })[0]
	u := oktaUser{oktaID: "00ucrash001", login: "crash@example.com", first: "Cra", last: "Sh", dept: "Engineering", title: "SRE", active: true}
	in := e.storeIdentity(u)
	if err := crashing.Sync(t.Context(), in); err == nil || !connector.IsRetryable(err) {
		t.Fatalf("first sync: %v, want a retryable failure", err)
	}
	created := e.mustLearner(u.oktaID)
	posts := e.countRequests("POST", "/users")

	// Redelivery, twice (a duplicate too), through the runner's queue.
	if err := e.runner.Queue.Enqueue(t.Context(), in, queue.Intent{IdentityID: in.IdentityID, Version: in.Version, Target: "absorb"}); err != nil {
		t.Fatal(err)
	}
	e.settled()
	l := e.mustLearner(u.oktaID)
	lk, err := e.runner.Store.GetLink(t.Context(), in.IdentityID, "absorb")
	if err != nil || lk.LearnerID != created.ID || l.ID != created.ID || lk.SyncedVersion != in.Version {
		t.Fatalf("link %+v (%v), learner %s, created %s", lk, err, l.ID, created.ID)
	}
	if got := e.countRequests("POST", "/users"); got != posts {
		t.Errorf("%d more POST /users after the crash: the learner was created again", got-posts)
	}
	if n := len(e.sim.Users()); n != 1 {
		t.Errorf("%d learners, want 1", n)
	}
	recs, err := e.runner.Store.ListAudit(t.Context(), in.IdentityID, 100)
	if err != nil {
		t.Fatal(err)
	}
	adopted := false
	for _, r := range recs {
		adopted = adopted || r.Action == "learner.adopt" && r.Detail == "matched by externalId"
	}
	if !adopted {
		t.Errorf("no adopt-by-external-id audit record in %+v", recs)
	}
}

func (e *env) countRequests(method, path string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// TestForceRepairsDrift: a Force intent (reconciliation) restores a
// learner changed by hand in Absorb, and re-creates one deleted there.
func TestForceRepairsDrift(t *testing.T) {
	e := start(t, absorbsim.Options{}, nil)
	u := oktaUser{oktaID: "00udrift001", login: "drift@example.com", first: "Dri", last: "Ft", dept: "Sales", title: "AE", empNo: "E7", active: true}
	id := e.createUser(u)
	e.settled()
	l := e.mustLearner(u.oktaID)
	// An admin edits the learner in Absorb.
	l.LastName, l.JobTitle, l.ActiveStatus = "Edited", "Intern", 1
	e.sim.SeedUser(l)
	lk, err := e.runner.Store.GetLink(t.Context(), id, "absorb")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.runner.Queue.Enqueue(t.Context(), queue.Intent{IdentityID: id, Version: lk.SyncedVersion, Force: true, Reason: "reconcile"}); err != nil {
		t.Fatal(err)
	}
	e.eventually("drift repaired", func() error {
		got, err := e.learner(u.oktaID)
		if err != nil {
			return err
		}
		if got.ID != l.ID || got.LastName != "Ft" || got.JobTitle != "AE" || got.ActiveStatus != 0 {
			return fmt.Errorf("learner %s %q %q status %d", got.ID, got.LastName, got.JobTitle, got.ActiveStatus)
		}
		return nil
	})
	e.settled()
	if n := len(e.sim.Users()); n != 1 {
		t.Errorf("%d learners, want 1", n)
	}
}

// TestCoalescedUpdatesThroughTheRunner: a burst of updates to one identity
// costs far fewer writes than updates, whatever the timing.
func TestCoalescedUpdatesThroughTheRunner(t *testing.T) {
	e := start(t, absorbsim.Options{}, nil)
	u := oktaUser{oktaID: "00uburst001", login: "burst@example.com", first: "Bu", last: "Rst", dept: "Sales", active: true}
	id := e.createUser(u)
	e.settled()
	before := e.writes()
	for i := range 10 {
		e.patchUser(id, replace(map[string]any{"title": fmt.Sprint("Title ", i)}))
	}
	e.settled()
	if got := e.mustLearner(u.oktaID); got.JobTitle != "Title 9" {
		t.Errorf("jobTitle %q, want the last one", got.JobTitle)
	}
	// Each PATCH may land while the previous sync runs, so up to one write
	// per update; usually far fewer. The strict bound (2 writes for 10
	// queued updates) is TestCoalescing in shared/worker.
	n := e.writes() - before
	t.Logf("10 PATCHes sent back to back cost %d writes to Absorb", n)
	if n < 1 || n > 10 {
		t.Errorf("%d writes for 10 updates", n)
	}
}

// TestRateLimitedBurst: with Absorb admitting 20 requests per sliding
// second, a burst of creates drains without a single 429 and no window
// at the simulator ever holds more than 20 requests. (infra/drain is the
// full-size measurement.)
func TestRateLimitedBurst(t *testing.T) {
	const rate, users = 20, 30
	e := start(t, absorbsim.Options{RateLimit: rate}, map[string]string{"ABSORB_RATE_LIMIT": fmt.Sprint(rate), "LEARNERLINK_WORKERS": "8"})
	var wg sync.WaitGroup
	for i := range users {
		u := oktaUser{oktaID: fmt.Sprintf("00uburst%04d", i), login: fmt.Sprintf("burst%d@example.com", i), first: "Bur", last: "St", active: true}
		wg.Go(func() { e.createUser(u) })
	}
	wg.Wait()
	e.settled()
	reqs := e.sim.Requests()
	times := make([]time.Time, 0, len(reqs))
	for _, r := range reqs {
		if r.Status == http.StatusTooManyRequests {
			t.Errorf("429 for %s %s", r.Method, r.Path)
		}
		times = append(times, r.Time)
	}
	slices.SortFunc(times, time.Time.Compare)
	busiest, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Before(times[i].Add(time.Second)) {
			j++
		}
		busiest = max(busiest, j-i)
	}
	t.Logf("%d requests, busiest 1-second window %d", len(times), busiest)
	if busiest > rate {
		t.Errorf("%d requests in one second, the limit is %d", busiest, rate)
	}
	if n := len(e.sim.Users()); n != users {
		t.Errorf("%d learners, want %d", n, users)
	}
}
