package reconcile_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/reconcile"
)

// smallPages lists a target in pages of size, so a small world spans
// several pages.
type smallPages struct {
	connector.Connector
	size int
}

func (p smallPages) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	inner, offStr, _ := strings.Cut(cursor, "|")
	off, _ := strconv.Atoi(offStr)
	ls, next, err := p.Connector.(connector.Lister).List(ctx, inner)
	if err != nil {
		return nil, "", err
	}
	if off+p.size < len(ls) {
		return ls[off : off+p.size], inner + "|" + strconv.Itoa(off+p.size), nil
	}
	return ls[min(off, len(ls)):], next, nil
}

func TestResumeAfterDeadlineKeepsTotals(t *testing.T) {
	tests := []struct {
		name string
		// past reports whether invocation n (from 1) gets an expired
		// deadline.
		past func(n int) bool
		page int // learners per page
	}{
		{"stops once then completes", func(n int) bool { return n == 1 }, 3},
		// One learner per page: the two learners of the ambiguous match
		// are seen in different invocations.
		{"stops after every page", func(int) bool { return true }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := seedDrift(t)
			w.tgt.Conn = smallPages{Connector: w.tgt.Conn, size: tt.page}
			base := reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true}
			ref := base
			ref.DryRun = true
			want := countsOf(w.run(ref))

			var rep *reconcile.Report
			n := 0
			for rep == nil || !rep.Complete {
				n++
				if n > 50 {
					t.Fatal("no progress")
				}
				o := base
				if tt.past(n) {
					o.Deadline = time.Now().Add(-time.Second)
				}
				rep = w.run(o)
				if !rep.Complete && (rep.Phase == "" || rep.Invocations != n) {
					t.Fatalf("invocation %d: incomplete report %+v", n, rep)
				}
			}
			t.Logf("completed in %d invocations", n)
			if n < 2 {
				t.Fatalf("completed in %d invocation(s); the deadline did not stop it", n)
			}
			if got := countsOf(rep); !maps.Equal(got, want) {
				t.Fatalf("after %d invocations counts = %v, want %v", n, got, want)
			}
			if rep.Invocations != n || rep.Guard.Verdict != reconcile.GuardOK || rep.Learners != len(w.sim.Users()) {
				t.Fatalf("report = %+v", rep)
			}
			// The saved state is gone once the run is done.
			if p, err := w.st.ListDocs(w.ctx, "reconcilestate", "", 10); err != nil || len(p.Items) != 0 {
				t.Fatalf("leftover state: %v, %v", p.Items, err)
			}
			w.drain()
			w.resolveAmb(t)
			rep = w.run(base)
			if got := countsOf(rep); !maps.Equal(got, map[reconcile.Kind]int{reconcile.Orphan: 1}) {
				t.Fatalf("after repair: %v", got)
			}
		})
	}
}

func (w *driftWorld) resolveAmb(t *testing.T) {
	t.Helper()
	if _, err := w.reviews.Resolve(w.ctx, w.amb.id, "absorb", reviewLink(w.ambA), "test"); err != nil {
		t.Fatal(err)
	}
	w.drain()
}

// blockingDir holds its first call until released.
type blockingDir struct {
	fakeDir
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDir) AppUsers(ctx context.Context, after string) ([]reconcile.DirUser, string, error) {
	if after == "" {
		select {
		case b.entered <- struct{}{}:
		default:
		}
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	return b.fakeDir.AppUsers(ctx, after)
}

func TestOneRunAtATimeAndEvery(t *testing.T) {
	w := newWorld(t)
	p := mkPerson("solo")
	w.add(p)
	w.sync(p.id)
	bd := &blockingDir{entered: make(chan struct{}, 1), release: make(chan struct{})}
	bd.set(p.dirUser())
	d := w.deps()
	d.Directory = bd
	done := make(chan error, 1)
	go func() {
		_, err := reconcile.Run(w.ctx, d, reconcile.Options{})
		done <- err
	}()
	<-bd.entered
	if _, err := reconcile.Run(w.ctx, d, reconcile.Options{}); !errors.Is(err, reconcile.ErrBusy) {
		t.Fatalf("concurrent run: %v, want ErrBusy", err)
	}
	// A dry run takes no lease.
	go func() { close(bd.release) }()
	if rep, err := reconcile.Run(w.ctx, d, reconcile.Options{DryRun: true}); err != nil || !rep.Complete {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep, err := reconcile.Run(w.ctx, d, reconcile.Options{Every: time.Hour})
	if err != nil || rep.Skipped == "" || rep.Complete {
		t.Fatalf("Every: %+v, %v", rep, err)
	}
	if rep, err := reconcile.Run(w.ctx, d, reconcile.Options{}); err != nil || !rep.Complete || rep.Drift != 0 {
		t.Fatalf("run without Every: %+v, %v", rep, err)
	}
}

func TestInterruptedRunResumes(t *testing.T) {
	w := seedDrift(t)
	base := reconcile.Options{MaxDeactivateShare: 0.5, CreateIdentities: true}
	ref := base
	ref.DryRun = true
	want := countsOf(w.run(ref))

	// The directory fails on its second page: the run saves what it did
	// and reports the error; the next run picks up from that page.
	fd := &failingDir{fakeDir: w.dir, failAt: "2"}
	d := w.deps()
	d.Directory = fd
	rep, err := reconcile.Run(w.ctx, d, base)
	if err == nil || rep == nil || rep.Complete || rep.Phase != "directory" {
		t.Fatalf("interrupted run: %+v, %v", rep, err)
	}
	fd.failAt = ""
	rep, err = reconcile.Run(w.ctx, d, base)
	if err != nil || !rep.Complete {
		t.Fatalf("resumed run: %+v, %v", rep, err)
	}
	if got := countsOf(rep); !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if rep.DirectoryUsers != len(w.dir.users) {
		t.Fatalf("directory users counted %d, want %d", rep.DirectoryUsers, len(w.dir.users))
	}
}

type failingDir struct {
	*fakeDir
	failAt string
}

func (f *failingDir) AppUsers(ctx context.Context, after string) ([]reconcile.DirUser, string, error) {
	if f.failAt != "" && after == f.failAt {
		return nil, "", errors.New("okta: HTTP 500")
	}
	return f.fakeDir.AppUsers(ctx, after)
}
