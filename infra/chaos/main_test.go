package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// testLog sends progress lines to t.Log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestConvergenceShort is the convergence suite's CI run (ShortConfig):
// the real runner binary, a thousand changes with duplicates and
// reorders, Absorb answering 20% 429 / 5% 500 / 2% never, three SIGKILLs
// mid-batch; then every learner must equal its identity's desired state
// without reconciliation, and the dead-letter queue must be empty (these
// faults are all transient).
func TestConvergenceShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the convergence run takes 1-2 minutes")
	}
	cfg := ShortConfig()
	cfg.Progress = testLog{t}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	for _, f := range res.Failures() {
		t.Error(f)
	}
	if res.Reconcile != nil && res.Reconcile.Drift > 0 {
		t.Errorf("reconciliation still finds drift after convergence: %v", nonZero(res.Reconcile.Counts))
	}
}

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	cases := []struct {
		name string
		cfg  genConfig
	}{
		{"short", genConfig{N: 1000, Users: 20, Groups: 4, Seed: 1, PDup: 0.1, PReorder: 0.1, Prefix: "t-a"}},
		{"many users", genConfig{N: 3000, Users: 600, Groups: 15, Seed: 7, PDup: 0.1, PReorder: 0.1, Prefix: "t-b"}},
		{"renames and recreates", genConfig{N: 2000, Users: 100, Groups: 6, Seed: 3, PDup: 0.2, Renames: true, Recreates: true, Prefix: "t-c"}},
		{"no duplicates", genConfig{N: 500, Users: 50, Groups: 4, Seed: 9, Prefix: "t-d"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := generate(tc.cfg), generate(tc.cfg)
			if !slices.EqualFunc(a, b, func(x, y op) bool { return x.Seq == y.Seq && x.Kind == y.Kind && x.User == y.User && x.Inc == y.Inc }) {
				t.Fatal("two generations with the same seed differ")
			}
			main, dups := 0, 0
			var kinds [numKinds]int
			exists := map[int]int{} // user → incarnation while it exists
			everCreated := map[int]bool{}
			groups := map[int]bool{}
			for _, o := range a {
				if o.Dup {
					dups++
					if o.Kind.existence() || o.Kind == kGroupCreate {
						t.Fatalf("op %d: a delayed duplicate of a %s", o.Seq, o.Kind)
					}
					continue
				}
				main++
				kinds[o.Kind]++
				switch o.Kind {
				case kGroupCreate:
					groups[o.Group] = true
				case kCreate:
					if everCreated[o.User] {
						t.Fatalf("op %d: user %d created twice", o.Seq, o.User)
					}
					everCreated[o.User] = true
					exists[o.User] = o.Inc
				case kRecreate:
					if _, ok := exists[o.User]; ok || !everCreated[o.User] {
						t.Fatalf("op %d: recreate of a user that exists or never did", o.Seq)
					}
					exists[o.User] = o.Inc
				case kDelete:
					if inc, ok := exists[o.User]; !ok || inc != o.Inc {
						t.Fatalf("op %d: delete of a user that does not exist", o.Seq)
					}
					delete(exists, o.User)
				default:
					if o.Group >= 0 && !groups[o.Group] {
						t.Fatalf("op %d: %s on a group not created yet", o.Seq, o.Kind)
					}
					if o.User >= 0 {
						if inc, ok := exists[o.User]; !ok || inc != o.Inc {
							t.Fatalf("op %d: %s on user %d/%d that does not exist", o.Seq, o.Kind, o.User, o.Inc)
						}
					}
					for _, m := range o.Members {
						if inc, ok := exists[m.User]; !ok || inc != m.Inc {
							t.Fatalf("op %d: %s with member %d that does not exist", o.Seq, o.Kind, m.User)
						}
					}
				}
			}
			if main != tc.cfg.N+tc.cfg.Groups {
				t.Errorf("%d changes, want %d", main, tc.cfg.N+tc.cfg.Groups)
			}
			if kinds[kCreate] != tc.cfg.Users {
				t.Errorf("%d creates, want one per user (%d)", kinds[kCreate], tc.cfg.Users)
			}
			if tc.cfg.PDup == 0 && dups > 0 {
				t.Errorf("%d delayed duplicates without PDup", dups)
			}
			for _, k := range []kind{kPut, kPatch, kMove, kGroupAdd, kGroupRemove, kDeactivate, kReactivate, kDelete, kHookDeactivate, kHookReactivate} {
				if kinds[k] == 0 {
					t.Errorf("no %s change generated", k)
				}
			}
			if tc.cfg.Renames != (kinds[kRename] > 0) {
				t.Errorf("renames: %d with Renames %v", kinds[kRename], tc.cfg.Renames)
			}
		})
	}
}

func TestGroupsPerUserFitTheGroupsField(t *testing.T) {
	ops := generate(genConfig{N: 5000, Users: 30, Groups: 16, Seed: 5, Prefix: "t-g"})
	member := map[int]map[int]bool{}
	for _, o := range ops {
		if o.Dup {
			continue
		}
		for _, m := range o.Members {
			if member[m.User] == nil {
				member[m.User] = map[int]bool{}
			}
			if o.Kind == kGroupAdd {
				member[m.User][o.Group] = true
			} else {
				delete(member[m.User], o.Group)
			}
		}
		if o.Kind == kDelete {
			delete(member, o.User)
		}
		for u, gs := range member {
			var names []string
			for g := range gs {
				names = append(names, groupNames()[g%len(groupNames())])
			}
			if v := groupsValue(names); len(v) > 255 {
				t.Fatalf("op %d: user %d in %d groups: the groups field needs %d characters", o.Seq, u, len(gs), len(v))
			}
		}
	}
}

func TestCompare(t *testing.T) {
	sv := simView{deptByName: map[string]string{"sales": "d-sales"}, defaultDept: "d-root"}
	want := connector.Learner{ExternalID: "00u1", UserName: "a@x", Email: "a@x", FirstName: "Ada", LastName: "L", Active: true,
		Fields: map[string]string{"departmentName": "Sales", "jobTitle": "Engineer", "customFields.string1": "CC-1", "location": ""}}
	good := absorbsim.User{ID: "L1", ExternalID: "00u1", Username: "a@x", EmailAddress: "a@x", FirstName: "Ada", LastName: "L",
		DepartmentID: "d-sales", JobTitle: "Engineer", CustomFields: map[string]any{"string1": "CC-1", groupsField: "|G1|G2|"}}
	live := subject{ID: "i1", Live: true, Learner: want, Groups: []string{"G2", "G1"}, HasLink: true, Link: &store.Link{LearnerID: "L1"}}
	with := func(f func(*absorbsim.User)) absorbsim.User {
		u := good
		u.CustomFields = map[string]any{"string1": "CC-1", groupsField: "|G1|G2|"}
		f(&u)
		return u
	}
	inactive := want
	inactive.Active = false
	older := inactive // an earlier incarnation of the same person
	older.FirstName = "Augusta"
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		subjects   []subject
		users      []absorbsim.User
		reviews    map[string]bool
		mismatched []string // fields of the first mismatch
		missing    int
		dups       int
		orphans    int
	}{
		{"match", []subject{live}, []absorbsim.User{good}, nil, nil, 0, 0, 0},
		{"inactive in LMS", []subject{live}, []absorbsim.User{with(func(u *absorbsim.User) { u.ActiveStatus = 1 })}, nil, []string{"active"}, 0, 0, 0},
		{"wrong department", []subject{live}, []absorbsim.User{with(func(u *absorbsim.User) { u.DepartmentID = "d-root" })}, nil, []string{"department"}, 0, 0, 0},
		{"stale groups", []subject{live}, []absorbsim.User{with(func(u *absorbsim.User) { u.CustomFields[groupsField] = "|G1|" })}, nil, []string{"groups"}, 0, 0, 0},
		{"stale title and cost center", []subject{live}, []absorbsim.User{with(func(u *absorbsim.User) { u.JobTitle = "x"; u.CustomFields["string1"] = nil })}, nil, []string{"customFields.string1", "jobTitle"}, 0, 0, 0},
		{"link to another learner", []subject{{ID: "i1", Live: true, Learner: want, Groups: []string{"G1", "G2"}, HasLink: true, Link: &store.Link{LearnerID: "L9"}}}, []absorbsim.User{good}, nil, []string{"link"}, 0, 0, 0},
		{"missing", []subject{live}, nil, nil, nil, 1, 0, 0},
		{"missing but in review", []subject{live}, nil, map[string]bool{"i1": true}, nil, 0, 0, 0},
		{"inactive identity without learner", []subject{{ID: "i1", Live: true, Learner: inactive}}, nil, nil, nil, 0, 0, 0},
		{"duplicate learner", []subject{live}, []absorbsim.User{good, with(func(u *absorbsim.User) { u.ID, u.Username = "L2", "b@x" })}, nil, nil, 0, 1, 0},
		{"orphan", []subject{live}, []absorbsim.User{good, {ID: "L3", ExternalID: "00u9", Username: "z@x"}}, nil, nil, 0, 0, 1},
		{"deleted user's learner still active", []subject{{ID: "deleted:00u1", Learner: connector.Learner{ExternalID: "00u1"}, Partial: true}}, []absorbsim.User{good}, nil, []string{"active"}, 0, 0, 0},
		{"tombstone skipped when provisioned again", []subject{live, {ID: "i0", Live: false, Learner: inactive}}, []absorbsim.User{good}, nil, nil, 0, 0, 0},
		{"deleted twice: the newest incarnation owns the learner", []subject{
			{ID: "i0", Learner: older, Created: t0}, {ID: "i1", Learner: inactive, Groups: []string{"G1", "G2"}, Created: t0.Add(time.Second)}},
			[]absorbsim.User{with(func(u *absorbsim.User) { u.ActiveStatus = 1 })}, nil, nil, 0, 0, 0},
		{"deleted twice: the older incarnation's values are a mismatch", []subject{
			{ID: "i0", Learner: inactive, Groups: []string{"G1", "G2"}, Created: t0}, {ID: "i1", Learner: older, Created: t0.Add(time.Second)}},
			[]absorbsim.User{with(func(u *absorbsim.User) { u.ActiveStatus = 1 })}, nil, []string{"firstName", "groups"}, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sv := sv
			sv.users = tc.users
			o := compare(tc.subjects, sv, tc.reviews)
			var got []string
			if len(o.Mismatches) > 0 {
				got = o.Mismatches[0].Fields
			}
			if !slices.Equal(got, tc.mismatched) {
				t.Errorf("mismatch %v, want %v", got, tc.mismatched)
			}
			if len(o.Missing) != tc.missing || len(o.DupExternal) != tc.dups || len(o.Orphans) != tc.orphans {
				t.Errorf("missing %d dups %d orphans %d, want %d %d %d", len(o.Missing), len(o.DupExternal), len(o.Orphans), tc.missing, tc.dups, tc.orphans)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	settled := &outcome{storeFacts: true}
	cases := []struct {
		name   string
		res    Result
		expect string // "" for none
	}{
		{"clean", Result{Final: settled}, ""},
		{"exhausted dead letters pass when not strict", Result{Final: &outcome{storeFacts: true, DLQ: []queue.Message{{}}}}, ""},
		{"exhausted dead letters fail when strict", Result{Config: Config{StrictDLQ: true}, Final: &outcome{storeFacts: true, DLQ: []queue.Message{{}}}}, "exhausting"},
		{"permanent dead letter", Result{Final: &outcome{storeFacts: true, DLQ: []queue.Message{{ParkReason: "absorb answered 422"}}}}, "permanent"},
		{"pending left", Result{Final: &outcome{storeFacts: true, Pending: 2}}, "not settled"},
		{"too few kills", Result{Config: Config{Kills: 3}, Kills: 1, Final: settled}, "kills"},
		{"mismatch", Result{Final: &outcome{storeFacts: true, Mismatches: []mismatch{{IdentityID: "i", Fields: []string{"groups"}}}}}, "differ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := strings.Join(tc.res.Failures(), "; ")
			if (tc.expect == "") != (f == "") || !strings.Contains(f, tc.expect) {
				t.Errorf("failures %q, want one containing %q", f, tc.expect)
			}
		})
	}
}

func TestTransient(t *testing.T) {
	cases := []struct {
		method string
		status int
		want   bool
	}{
		{"POST", 503, true}, {"POST", 429, true}, {"PATCH", 409, true}, {"PUT", 409, true},
		{"POST", 409, false}, {"DELETE", 404, false}, {"PATCH", 400, false}, {"GET", 200, false},
	}
	for _, tc := range cases {
		if got := transient(tc.method, tc.status); got != tc.want {
			t.Errorf("transient(%s, %d) = %v, want %v", tc.method, tc.status, got, tc.want)
		}
	}
}

func TestSimLearnersLists(t *testing.T) {
	users := make([]absorbsim.User, 1203)
	for i := range users {
		users[i] = absorbsim.User{ID: string(rune('a'+i%26)) + strings.Repeat("x", i/26), ExternalID: "e", Username: "u"}
	}
	s := &simLearners{users: users}
	n, cursor := 0, ""
	for {
		page, next, err := s.List(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if next == "" {
			break
		}
		cursor = next
	}
	if n != len(users) {
		t.Fatalf("listed %d of %d", n, len(users))
	}
	if _, err := s.Get(context.Background(), "nope"); !connector.IsNotFound(err) {
		t.Fatalf("Get of an unknown id: %v", err)
	}
	if err := s.Update(context.Background(), connector.Learner{}); !errors.Is(err, errReadOnly) {
		t.Fatalf("Update: %v", err)
	}
}
