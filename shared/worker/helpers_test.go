package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/worker"
)

const enterprise = mapping.EnterpriseURN

// person is the IdP side of one test user.
type person struct {
	id, ext, user, first, last, email string
	dept, title, emp, manager         string
	inactive                          bool
}

func (p person) identity(t testing.TB) *store.Identity {
	t.Helper()
	res := map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterprise},
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
	if p.manager != "" {
		ent["manager"] = map[string]any{"value": p.manager}
	}
	res[enterprise] = ent
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Identity{ID: p.id, UserName: p.user, ExternalID: p.ext, Active: !p.inactive, Resource: b}
}

func jane() person {
	return person{id: "id-jane", ext: "00ujane", user: "jane.doe@example.com", first: "Jane", last: "Doe",
		email: "jane.doe@example.com", dept: "Sales", title: "Account Executive", emp: "E1001"}
}

// fixture is a worker over a bolt store and the sandbox LMS.
type fixture struct {
	t   *testing.T
	ctx context.Context
	st  *bolt.Store
	lms *sandbox.LMS
	w   *worker.Worker
	tgt worker.Target
}

type options struct {
	wrap  func(connector.Connector) connector.Connector
	rules rules.Config
	cfg   worker.Config
}

func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lms, err := sandbox.Open("")
	if err != nil {
		t.Fatal(err)
	}
	var conn connector.Connector = lms
	if o.wrap != nil {
		conn = o.wrap(lms)
	}
	tgt := worker.Target{Name: "sandbox", Conn: conn, Mapping: mapping.Default(), Rules: o.rules,
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	if o.cfg.Rand == nil {
		o.cfg.Rand = func() float64 { return 0.5 }
	}
	w, err := worker.New(st, []worker.Target{tgt}, o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: t.Context(), st: st, lms: lms, w: w, tgt: tgt}
}

// worker returns another Worker (another process) over the same store and
// target.
func (f *fixture) worker(cfg worker.Config) *worker.Worker {
	f.t.Helper()
	w, err := worker.New(f.st, []worker.Target{f.tgt}, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return w
}

func (f *fixture) create(p person) queue.Intent {
	f.t.Helper()
	id := p.identity(f.t)
	if err := f.st.CreateIdentity(f.ctx, id); err != nil {
		f.t.Fatal(err)
	}
	return queue.Intent{IdentityID: id.ID, Version: id.Version, Reason: "scim.create"}
}

func (f *fixture) update(p person) queue.Intent {
	f.t.Helper()
	cur, err := f.st.GetIdentity(f.ctx, p.id)
	if err != nil {
		f.t.Fatal(err)
	}
	id := p.identity(f.t)
	if err := f.st.UpdateIdentity(f.ctx, id, cur.Version); err != nil {
		f.t.Fatal(err)
	}
	return queue.Intent{IdentityID: id.ID, Version: id.Version, Reason: "scim.update"}
}

func (f *fixture) delete(p person) queue.Intent {
	f.t.Helper()
	cur, err := f.st.GetIdentity(f.ctx, p.id)
	if err != nil {
		f.t.Fatal(err)
	}
	id, err := f.st.DeleteIdentity(f.ctx, p.id, cur.Version)
	if err != nil {
		f.t.Fatal(err)
	}
	return queue.Intent{IdentityID: id.ID, Version: id.Version, Reason: "scim.delete"}
}

func (f *fixture) sync(in queue.Intent) {
	f.t.Helper()
	if err := f.w.Sync(f.ctx, in); err != nil {
		f.t.Fatalf("sync %+v: %v", in, err)
	}
}

func (f *fixture) link(id string) *store.Link {
	f.t.Helper()
	l, err := f.st.GetLink(f.ctx, id, "sandbox")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func (f *fixture) learners() []sandbox.Learner { return f.lms.Snapshot() }

// only returns the one learner in the sandbox, failing otherwise.
func (f *fixture) only() sandbox.Learner {
	f.t.Helper()
	ls := f.learners()
	if len(ls) != 1 {
		f.t.Fatalf("sandbox holds %d learners, want 1: %+v", len(ls), ls)
	}
	return ls[0]
}

func (f *fixture) pending(id string) bool {
	f.t.Helper()
	ps, err := f.st.ListPending(f.ctx, time.Now().Add(time.Hour), 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}

// hooks wraps a connector; a nil hook passes through.
type hooks struct {
	connector.Connector
	mu     sync.Mutex
	calls  map[string]int
	get    func(ctx context.Context, id string) (*connector.Learner, error)
	find   func(ctx context.Context, k connector.Key) ([]connector.Learner, error)
	create func(ctx context.Context, l connector.Learner) (string, error)
	update func(ctx context.Context, l connector.Learner) error
}

func (h *hooks) count(op string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[op]++
}

func (h *hooks) Calls(op string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[op]
}

func (h *hooks) Get(ctx context.Context, id string) (*connector.Learner, error) {
	h.count("get")
	if h.get != nil {
		return h.get(ctx, id)
	}
	return h.Connector.Get(ctx, id)
}

func (h *hooks) Find(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
	h.count("find")
	if h.find != nil {
		return h.find(ctx, k)
	}
	return h.Connector.Find(ctx, k)
}

func (h *hooks) Create(ctx context.Context, l connector.Learner) (string, error) {
	h.count("create")
	if h.create != nil {
		return h.create(ctx, l)
	}
	return h.Connector.Create(ctx, l)
}

func (h *hooks) Update(ctx context.Context, l connector.Learner) error {
	h.count("update")
	if h.update != nil {
		return h.update(ctx, l)
	}
	return h.Connector.Update(ctx, l)
}

func (h *hooks) SetGroups(ctx context.Context, id string, groups []string) error {
	h.count("groups")
	return h.Connector.(connector.GroupSetter).SetGroups(ctx, id, groups)
}

func (h *hooks) Enroll(ctx context.Context, id string, e connector.Enrollment) error {
	h.count("enroll")
	return h.Connector.(connector.Enroller).Enroll(ctx, id, e)
}

type sandboxLearner = sandbox.Learner

// learnerOf returns the learner carrying the external id, failing unless
// there is exactly one.
func (f *fixture) learnerOf(ext string) sandboxLearner {
	f.t.Helper()
	var out []sandboxLearner
	for _, l := range f.learners() {
		if l.ExternalID == ext {
			out = append(out, l)
		}
	}
	if len(out) != 1 {
		f.t.Fatalf("%d learners carry external id %s, want 1", len(out), ext)
	}
	return out[0]
}

// hasAudit reports an audit record of the identity with that action whose
// detail contains detail.
func (f *fixture) hasAudit(id, action, detail string) bool {
	f.t.Helper()
	recs, err := f.st.ListAudit(f.ctx, id, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Action == action && strings.Contains(r.Detail, detail) {
			return true
		}
	}
	return false
}
