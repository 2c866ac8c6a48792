package review_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// The list's Park is the worker's OnConflict.
var _ worker.ConflictFunc = (&review.List{}).Park

type intents struct {
	mu  sync.Mutex
	got []queue.Intent
}

func (q *intents) Enqueue(_ context.Context, in ...queue.Intent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.got = append(q.got, in...)
	return nil
}

type fixture struct {
	ctx  context.Context
	st   *bolt.Store
	lms  *sandbox.LMS
	q    *intents
	list *review.List
}

func newFixture(t *testing.T) *fixture {
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
	f := &fixture{ctx: t.Context(), st: st, lms: lms, q: &intents{}}
	tgt := worker.Target{Name: "sandbox", Conn: lms, Mapping: mapping.Default()}
	if f.list, err = review.New(st, review.Config{Queue: f.q, Targets: []worker.Target{tgt}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		id     string
		active bool
	}{{"id-1", true}, {"id-2", true}, {"id-off", false}} {
		res, _ := json.Marshal(map[string]any{"userName": p.id + "@example.com", "externalId": "00u" + p.id, "active": p.active,
			"name": map[string]any{"givenName": "G", "familyName": "F"}})
		if err := st.CreateIdentity(f.ctx, &store.Identity{ID: p.id, UserName: p.id + "@example.com", ExternalID: "00u" + p.id, Active: p.active, Resource: res}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) learner(t *testing.T, name string) string {
	t.Helper()
	id, err := f.lms.Create(f.ctx, connector.Learner{UserName: name, FirstName: "X", LastName: "Y", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPark(t *testing.T) {
	f := newFixture(t)
	if err := f.list.Park(f.ctx, "id-1", "sandbox", "2 learners match by email", []string{"L2", "L1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.list.Park(f.ctx, "id-1", "sandbox", "3 learners match by email", []string{"L3", "L1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.list.Park(f.ctx, "id-2", "other", "x", nil); err != nil {
		t.Fatal(err)
	}
	e, err := f.list.Get(f.ctx, "sandbox", "id-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != review.Open || e.Times != 2 || e.Reason != "3 learners match by email" || !slices.Equal(e.Candidates, []string{"L1", "L2", "L3"}) || e.Parked.IsZero() {
		t.Fatalf("entry = %+v", e)
	}
	for target, n := range map[string]int{"": 2, "sandbox": 1, "other": 1, "none": 0} {
		if es, err := f.list.List(f.ctx, target); err != nil || len(es) != n {
			t.Fatalf("List(%q) = %d entries, %v; want %d", target, len(es), err, n)
		}
	}
	recs, _ := f.st.ListAudit(f.ctx, "id-1", 10)
	if len(recs) != 1 || recs[0].Action != "review.park" {
		t.Fatalf("audit = %+v (one record for the first park only)", recs)
	}
	// Concurrent parks (the worker syncs several identities at once) all land.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := f.list.Park(f.ctx, "id-1", "sandbox", "again", []string{"L4"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if e, _ := f.list.Get(f.ctx, "sandbox", "id-1"); e.Times != 6 {
		t.Fatalf("times = %d after concurrent parks", e.Times)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *fixture) (identity string, r review.Resolution)
		err     error
		check   func(t *testing.T, f *fixture, identity string)
	}{
		{"nothing chosen", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-1", review.Resolution{}
		}, review.ErrInvalid, nil},
		{"two choices", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-1", review.Resolution{Link: "x", Ignore: true}
		}, review.ErrInvalid, nil},
		{"no entry", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-2", review.Resolution{Ignore: true}
		}, review.ErrNotFound, nil},
		{"unknown learner", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-1", review.Resolution{Link: "no-such-learner"}
		}, review.ErrLearnerUnknown, nil},
		{"learner of another identity", func(t *testing.T, f *fixture) (string, review.Resolution) {
			l := f.learner(t, "taken")
			if err := f.st.PutLink(f.ctx, &store.Link{IdentityID: "id-2", Target: "sandbox", LearnerID: l, SyncedVersion: 1}); err != nil {
				t.Fatal(err)
			}
			return "id-1", review.Resolution{Link: l}
		}, review.ErrLearnerTaken, nil},
		{"link", func(t *testing.T, f *fixture) (string, review.Resolution) {
			l := f.learner(t, "chosen")
			// An earlier sync left a link without a learner.
			if err := f.st.PutLink(f.ctx, &store.Link{IdentityID: "id-1", Target: "sandbox", SyncedVersion: 1, Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			return "id-1", review.Resolution{Link: l}
		}, nil, func(t *testing.T, f *fixture, id string) {
			l, err := f.st.GetLink(f.ctx, id, "sandbox")
			if err != nil || l.LearnerID == "" || l.Hash != "" || l.SyncedVersion != 1 {
				t.Fatalf("link = %+v, %v", l, err)
			}
			want := queue.Intent{IdentityID: id, Version: 1, Target: "sandbox", Force: true, Reason: "review.link"}
			if len(f.q.got) != 1 || f.q.got[0] != want {
				t.Fatalf("intents = %+v", f.q.got)
			}
		}},
		{"create new", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-1", review.Resolution{CreateNew: true}
		}, nil, func(t *testing.T, f *fixture, id string) {
			l, err := f.st.GetLink(f.ctx, id, "sandbox")
			if err != nil || l.LearnerID == "" {
				t.Fatalf("link = %+v, %v", l, err)
			}
			got, err := f.lms.Get(f.ctx, l.LearnerID)
			if err != nil || got.ExternalID != "00uid-1" || !got.Active {
				t.Fatalf("created learner = %+v, %v", got, err)
			}
			if len(f.q.got) != 1 || f.q.got[0].Reason != "review.create" {
				t.Fatalf("intents = %+v", f.q.got)
			}
		}},
		{"create for an inactive identity", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-off", review.Resolution{CreateNew: true}
		}, review.ErrInvalid, nil},
		{"ignore", func(t *testing.T, f *fixture) (string, review.Resolution) {
			return "id-1", review.Resolution{Ignore: true}
		}, nil, func(t *testing.T, f *fixture, id string) {
			e, err := f.list.Get(f.ctx, "sandbox", id)
			if err != nil || e.Status != review.Ignored || e.ResolvedBy != "it-admin" {
				t.Fatalf("entry = %+v, %v", e, err)
			}
			// Later conflicts do not reopen it.
			if err := f.list.Park(f.ctx, id, "sandbox", "again", []string{"L9"}); err != nil {
				t.Fatal(err)
			}
			if e, _ := f.list.Get(f.ctx, "sandbox", id); e.Status != review.Ignored || slices.Contains(e.Candidates, "L9") {
				t.Fatalf("reopened: %+v", e)
			}
			if len(f.q.got) != 0 {
				t.Fatalf("ignore queued %+v", f.q.got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, id := range []string{"id-1", "id-off"} {
				if err := f.list.Park(f.ctx, id, "sandbox", "2 learners match by email", []string{"a", "b"}); err != nil {
					t.Fatal(err)
				}
			}
			id, r := tt.prepare(t, f)
			_, err := f.list.Resolve(f.ctx, id, "sandbox", r, "it-admin")
			if !errors.Is(err, tt.err) {
				t.Fatalf("Resolve = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				if _, gerr := f.list.Get(f.ctx, "sandbox", id); tt.err != review.ErrNotFound && gerr != nil {
					t.Fatalf("entry gone after a failed resolution: %v", gerr)
				}
				return
			}
			if tt.check != nil {
				tt.check(t, f, id)
			}
			if r.Ignore {
				return
			}
			if _, err := f.list.Get(f.ctx, "sandbox", id); !errors.Is(err, review.ErrNotFound) {
				t.Fatalf("entry still listed after resolution: %v", err)
			}
			recs, _ := f.st.ListAudit(f.ctx, id, 10)
			if len(recs) == 0 || recs[0].Action != "review.resolve" || recs[0].Actor != "review" {
				t.Fatalf("audit = %+v", recs)
			}
		})
	}
}

func TestResolveUnknownTarget(t *testing.T) {
	f := newFixture(t)
	if err := f.list.Park(f.ctx, "id-1", "elsewhere", "x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.list.Resolve(f.ctx, "id-1", "elsewhere", review.Resolution{CreateNew: true}, ""); !errors.Is(err, review.ErrUnsupported) {
		t.Fatalf("create in an unconfigured target: %v", err)
	}
	// Linking is still possible (unchecked against the target).
	if _, err := f.list.Resolve(f.ctx, "id-1", "elsewhere", review.Resolution{Link: "L1"}, ""); err != nil {
		t.Fatal(err)
	}
}
