package sweeper_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/sweeper"
)

type recorder struct {
	got []queue.Intent
	err error
}

func (r *recorder) Enqueue(_ context.Context, in ...queue.Intent) error {
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, in...)
	return nil
}

// TestSweep: an identity written to the store but never queued (a crash
// between the store write and the enqueue) is re-queued once it has been
// pending longer than the threshold, and no longer once a worker synced it.
func TestSweep(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()
	id := &store.Identity{ID: "u1", UserName: "ada@example.com", Active: true, Resource: []byte(`{}`)}
	if err := st.CreateIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	q := &recorder{}
	now := time.Now()
	sw := &sweeper.Sweeper{St: st, Q: q, Threshold: 15 * time.Minute, Now: func() time.Time { return now }}

	tests := []struct {
		name  string
		at    time.Time
		clear bool
		want  []string
	}{
		{"too recent", now, false, nil},
		{"past the threshold", now.Add(16 * time.Minute), false, []string{"u1"}},
		{"synced", now.Add(17 * time.Minute), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q.got = nil
			now = tc.at
			if tc.clear {
				if err := st.ClearPending(ctx, "u1", id.Version); err != nil {
					t.Fatal(err)
				}
			}
			n, err := sw.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, in := range q.got {
				ids = append(ids, in.IdentityID)
				if in.Version != id.Version || in.Reason != "sweeper" {
					t.Errorf("intent %+v", in)
				}
			}
			if n != len(tc.want) || !slices.Equal(ids, tc.want) {
				t.Errorf("queued %v (n=%d), want %v", ids, n, tc.want)
			}
		})
	}

	// A failed enqueue is reported, and the mark stays for the next pass.
	if err := st.UpdateIdentity(ctx, id, id.Version); err != nil {
		t.Fatal(err)
	}
	now = time.Now().Add(time.Hour)
	q.err = errors.New("queue down")
	if _, err := sw.Sweep(ctx); err == nil {
		t.Error("want the enqueue error")
	}
	q.err = nil
	if n, err := sw.Sweep(ctx); err != nil || n != 1 {
		t.Errorf("after recovery: n=%d err=%v, want 1 re-queued", n, err)
	}
}

// fakeStore answers the sweeper's two calls from fixed data.
type fakeStore struct {
	finished   []store.Changed
	finishErr  error
	pending    []store.Pending
	pendingErr error
	olderThan  []time.Time // bounds asked for, in call order
}

func (f *fakeStore) FinishGroupWrites(_ context.Context, olderThan time.Time, _ int) ([]store.Changed, error) {
	f.olderThan = append(f.olderThan, olderThan)
	return f.finished, f.finishErr
}

func (f *fakeStore) ListPending(_ context.Context, olderThan time.Time, _ int) ([]store.Pending, error) {
	f.olderThan = append(f.olderThan, olderThan)
	return f.pending, f.pendingErr
}

// TestSweepFinishesGroupWrites: identities bumped by finishing an
// interrupted group write are queued with the stale pending ones, and a
// failure of either part is reported without losing the other.
func TestSweepFinishesGroupWrites(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	finished := []store.Changed{{ID: "m1", Version: 3}, {ID: "m2", Version: 5}}
	pending := []store.Pending{{ID: "u1", Version: 2, Since: now.Add(-time.Hour)}}
	queued := []queue.Intent{
		{IdentityID: "m1", Version: 3, Reason: "sweeper.group"},
		{IdentityID: "m2", Version: 5, Reason: "sweeper.group"},
		{IdentityID: "u1", Version: 2, Reason: "sweeper"},
	}
	boom := errors.New("boom")
	tests := []struct {
		name     string
		st       fakeStore
		queueErr error
		want     []queue.Intent
		wantErr  bool
	}{
		{"nothing to do", fakeStore{}, nil, nil, false},
		{"finished and pending", fakeStore{finished: finished, pending: pending}, nil, queued, false},
		{"finish fails part-way", fakeStore{finished: finished[:1], finishErr: boom, pending: pending}, nil, []queue.Intent{queued[0], queued[2]}, true},
		{"list fails", fakeStore{finished: finished, pendingErr: boom}, nil, nil, true},
		{"enqueue fails", fakeStore{finished: finished, pending: pending}, boom, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &recorder{err: tc.queueErr}
			sw := &sweeper.Sweeper{St: &tc.st, Q: q, Threshold: 10 * time.Minute, Now: func() time.Time { return now }}
			n, err := sw.Sweep(t.Context())
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %t", err, tc.wantErr)
			}
			if n != len(tc.want) || !slices.Equal(q.got, tc.want) {
				t.Errorf("queued %v (n=%d), want %v", q.got, n, tc.want)
			}
			for _, b := range tc.st.olderThan {
				if !b.Equal(now.Add(-10 * time.Minute)) {
					t.Errorf("asked for olderThan %v, want the threshold ago", b)
				}
			}
		})
	}
}
