package main

import (
	"time"

	"testing"

	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/reconcile"
)

// TestSeededWorld runs the measurement's world in one process at a small
// size: the report must find exactly the seeded drift, before and after
// resumes.
func TestSeededWorld(t *testing.T) {
	for _, tt := range []struct {
		name   string
		resume bool
	}{{"one go", false}, {"resumed", true}} {
		t.Run(tt.name, func(t *testing.T) {
			p := params{n: 400, drift: 0.025, dir: t.TempDir()}
			sim := absorbsim.New(absorbsim.Options{Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey})
			defer sim.Close()
			p.learners(func(u absorbsim.User) { sim.SeedUser(u) })
			if err := seedStore(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			deps, closeAll, err := wire(p, p.dir, sim.URL(), sim.DefaultDepartmentID())
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll()
			o := reconcile.Options{CreateIdentities: true, GroupsField: groupsField}
			if tt.resume {
				// A deadline already past: one page per invocation.
				o.Deadline = time.Now().Add(-time.Second)
			}
			var rep *reconcile.Report
			for n := 0; rep == nil || !rep.Complete; n++ {
				if n > 100 {
					t.Fatal("no progress")
				}
				if rep, err = reconcile.Run(t.Context(), deps, o); err != nil {
					t.Fatal(err)
				}
			}
			if tt.resume && rep.Invocations < 2 {
				t.Fatalf("%d invocations", rep.Invocations)
			}
			if err := check(p, rep); err != nil {
				t.Fatalf("%v\n%+v", err, rep.Counts)
			}
		})
	}
}
