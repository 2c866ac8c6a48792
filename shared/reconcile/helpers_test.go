package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

const (
	enterprise  = mapping.EnterpriseURN
	groupsField = "customFields.string30"
)

// person is the IdP side of one test user.
type person struct {
	id, ext, user, first, last, email string
	dept, title, emp, cost            string
	inactive                          bool
}

func (p person) identity(t testing.TB) *store.Identity {
	t.Helper()
	res := map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterprise},
		"id":         p.id,
		"userName":   p.user,
		"externalId": p.ext,
		"name":       map[string]any{"givenName": p.first, "familyName": p.last},
		"active":     !p.inactive,
	}
	if p.email != "" {
		res["emails"] = []any{map[string]any{"value": p.email, "primary": true, "type": "work"}}
	}
	if p.title != "" {
		res["title"] = p.title
	}
	ent := map[string]any{}
	if p.dept != "" {
		ent["department"] = p.dept
	}
	if p.emp != "" {
		ent["employeeNumber"] = p.emp
	}
	if p.cost != "" {
		ent["costCenter"] = p.cost
	}
	res[enterprise] = ent
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Identity{ID: p.id, UserName: p.user, ExternalID: p.ext, Active: !p.inactive, Resource: b}
}

func mkPerson(n string) person {
	return person{id: "id-" + n, ext: "00u" + n, user: n + "@example.com", first: strings.ToUpper(n[:1]) + n[1:], last: "Tester",
		email: n + "@example.com", dept: "Sales", title: "Rep", emp: "E-" + n, cost: "CC1"}
}

func (p person) dirUser() reconcile.DirUser {
	return reconcile.DirUser{ID: p.ext, Login: p.user, Active: !p.inactive, Provision: !p.inactive,
		Email: p.email, FirstName: p.first, LastName: p.last}
}

// fakeDir is a paged directory.
type fakeDir struct {
	mu    sync.Mutex
	users []reconcile.DirUser
	page  int
	calls int
}

func (f *fakeDir) AppUsers(_ context.Context, after string) ([]reconcile.DirUser, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	start := 0
	if after != "" {
		start, _ = strconv.Atoi(after)
	}
	size := f.page
	if size <= 0 {
		size = 100
	}
	end := min(start+size, len(f.users))
	next := ""
	if end < len(f.users) {
		next = strconv.Itoa(end)
	}
	return append([]reconcile.DirUser(nil), f.users[start:end]...), next, nil
}

func (f *fakeDir) set(us ...reconcile.DirUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = us
}

// world is a bolt store, a disk queue, the Absorb simulator behind the
// real connector, a worker and the review list.
type world struct {
	t       *testing.T
	ctx     context.Context
	st      *bolt.Store
	q       *disk.Queue
	sim     *absorbsim.Sim
	tgt     worker.Target
	w       *worker.Worker
	reviews *review.List
	dir     *fakeDir
	okta    reconcile.Directory // when set, used instead of dir
	metrics *bytes.Buffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	q, err := disk.Open(filepath.Join(dir, "queue.db"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	sim := absorbsim.New(absorbsim.Options{Username: "admin", Password: "pw", PrivateKey: "key"})
	t.Cleanup(sim.Close)
	conn, err := absorb.New(absorb.Config{BaseURL: sim.URL(), Username: "admin", Password: "pw", PrivateKey: "key",
		Limiter: throttle.NewLocal(10000, 1000), Tokens: tokencache.NewLocal(),
		DefaultDepartmentID: sim.DefaultDepartmentID(), GroupsField: groupsField})
	if err != nil {
		t.Fatal(err)
	}
	tgt := worker.Target{Name: "absorb", Conn: conn, Mapping: mapping.Default(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	reviews, err := review.New(st, review.Config{Queue: q, Targets: []worker.Target{tgt}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(st, []worker.Target{tgt}, worker.Config{OnConflict: reviews.Park})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, ctx: ctx, st: st, q: q, sim: sim, tgt: tgt, w: w, reviews: reviews, dir: &fakeDir{}, metrics: &bytes.Buffer{}}
}

// add stores identities (without queuing them).
func (w *world) add(ps ...person) {
	w.t.Helper()
	for _, p := range ps {
		if err := w.st.CreateIdentity(w.ctx, p.identity(w.t)); err != nil {
			w.t.Fatal(err)
		}
	}
}

// sync queues the identities and drains the queue.
func (w *world) sync(ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		ident, err := w.st.GetIdentity(w.ctx, id)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := w.q.Enqueue(w.ctx, queue.Intent{IdentityID: id, Version: ident.Version, Reason: "test"}); err != nil {
			w.t.Fatal(err)
		}
	}
	w.drain()
}

// drain runs the worker until the queue is empty; nothing may be
// dead-lettered.
func (w *world) drain() {
	w.t.Helper()
	for range 1000 {
		msgs, err := w.q.Receive(w.ctx, 10, 0)
		if err != nil {
			w.t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		w.w.Apply(w.ctx, w.q, w.w.Process(w.ctx, msgs))
	}
	dead, err := w.q.DeadLetters(w.ctx, 10)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, d := range dead {
		w.t.Errorf("dead-lettered: %s: %s", d.IdentityID, d.ParkReason)
	}
}

func (w *world) deps() reconcile.Deps {
	d := reconcile.Deps{Store: w.st, Queue: w.q, Target: w.tgt, Reviews: w.reviews, Metrics: w.metrics}
	switch {
	case w.okta != nil:
		d.Directory = w.okta
	case w.dir != nil:
		d.Directory = w.dir
	}
	return d
}

func (w *world) run(o reconcile.Options) *reconcile.Report {
	w.t.Helper()
	o.GroupsField = groupsField
	rep, err := reconcile.Run(w.ctx, w.deps(), o)
	if err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	return rep
}

// learner finds the sim user holding the external id (or username).
func (w *world) learnerBy(match func(absorbsim.User) bool) []absorbsim.User {
	var out []absorbsim.User
	for _, u := range w.sim.Users() {
		if match(u) {
			out = append(out, u)
		}
	}
	return out
}

func (w *world) linkOf(id string) *store.Link {
	w.t.Helper()
	l, err := w.st.GetLink(w.ctx, id, w.tgt.Name)
	if err != nil {
		w.t.Fatalf("link of %s: %v", id, err)
	}
	return l
}

// editLearner changes a learner in the LMS by hand.
func (w *world) editLearner(id string, edit func(*absorbsim.User)) {
	w.t.Helper()
	u, ok := w.sim.User(id)
	if !ok {
		w.t.Fatalf("no learner %s", id)
	}
	edit(&u)
	w.sim.SeedUser(u)
}

func countsOf(rep *reconcile.Report) map[reconcile.Kind]int {
	out := map[reconcile.Kind]int{}
	for k, n := range rep.Counts {
		if n != 0 {
			out[k] = n
		}
	}
	return out
}

func reviewLink(learnerID string) review.Resolution { return review.Resolution{Link: learnerID} }

// useOkta serves the directory from the Okta simulator through the real
// client: users is what the app's assignments should list (an inactive
// one as a deprovisioned Okta user still assigned).
func (w *world) useOkta(users ...reconcile.DirUser) *oktasim.Sim {
	w.t.Helper()
	sim := oktasim.New(oktasim.Options{APIToken: "ssws-token", PageSize: 2})
	w.t.Cleanup(sim.Close)
	sim.CreateApp("0oaLearnerlink")
	for _, u := range users {
		status := "ACTIVE"
		if !u.Active {
			status = "DEPROVISIONED"
		}
		sim.PutUser(okta.User{ID: u.ID, Status: status, Profile: okta.Profile{Login: u.Login, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName}})
		sim.Assign("0oaLearnerlink", u.ID, "USER")
	}
	c, err := okta.New(okta.Config{OrgURL: sim.URL(), APIToken: "ssws-token", PageSize: 2})
	if err != nil {
		w.t.Fatal(err)
	}
	w.okta = reconcile.OktaDirectory{Client: c, AppID: "0oaLearnerlink"}
	return sim
}
