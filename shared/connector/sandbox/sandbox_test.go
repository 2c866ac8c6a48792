package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
)

var (
	_ connector.Connector   = (*sandbox.LMS)(nil)
	_ connector.GroupSetter = (*sandbox.LMS)(nil)
	_ connector.Enroller    = (*sandbox.LMS)(nil)
	_ connector.Lister      = (*sandbox.LMS)(nil)
)

func learner(n string) connector.Learner {
	return connector.Learner{ExternalID: "00u" + n, UserName: n + "@example.com", Email: n + "@example.com",
		FirstName: "F" + n, LastName: "L" + n, Active: true, Fields: map[string]string{"jobTitle": "Engineer"}}
}

func open(t *testing.T, path string) *sandbox.LMS {
	t.Helper()
	s, err := sandbox.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustCreate(t *testing.T, s *sandbox.LMS, l connector.Learner) string {
	t.Helper()
	id, err := s.Create(t.Context(), l)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name     string
		l        connector.Learner
		conflict bool
		invalid  bool
	}{
		{"ok", learner("b"), false, false},
		{"username taken, any case", connector.Learner{UserName: "A@EXAMPLE.COM", FirstName: "x", LastName: "y"}, true, false},
		{"no username", connector.Learner{FirstName: "x", LastName: "y"}, false, true},
		{"no last name", connector.Learner{UserName: "c", FirstName: "x"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, "")
			mustCreate(t, s, learner("a"))
			writes := s.Writes()
			id, err := s.Create(t.Context(), tc.l)
			var ce *connector.Error
			switch {
			case tc.conflict || tc.invalid:
				if !asErr(err, &ce) || ce.Conflict != tc.conflict || ce.Retryable || id != "" {
					t.Fatalf("Create = %q, %v; want conflict=%v", id, err, tc.conflict)
				}
				if s.Writes() != writes {
					t.Error("a refused create counted as a write")
				}
			default:
				if err != nil || id == "" {
					t.Fatalf("Create = %q, %v", id, err)
				}
				got, err := s.Get(t.Context(), id)
				if err != nil || got.ID != id || got.UserName != tc.l.UserName || got.Fields["jobTitle"] != "Engineer" {
					t.Errorf("Get = %+v, %v", got, err)
				}
				if s.Writes() != writes+1 {
					t.Errorf("writes %d, want %d", s.Writes(), writes+1)
				}
			}
		})
	}
}

func asErr(err error, ce **connector.Error) bool { return errors.As(err, ce) }

func TestFind(t *testing.T) {
	s := open(t, "")
	a := mustCreate(t, s, learner("a"))
	b := learner("b")
	b.Email, b.Fields = "shared@example.com", map[string]string{"employeeNumber": "E1"}
	bid := mustCreate(t, s, b)
	c := learner("c")
	c.Email = "SHARED@example.com"
	cid := mustCreate(t, s, c)
	tests := []struct {
		key  connector.Key
		want []string
	}{
		{connector.Key{Kind: connector.KeyExternalID, Value: "00ua"}, []string{a}},
		{connector.Key{Kind: connector.KeyExternalID, Value: "00UA"}, nil}, // external ids are exact
		{connector.Key{Kind: connector.KeyUserName, Value: "A@Example.com"}, []string{a}},
		{connector.Key{Kind: connector.KeyEmail, Value: "shared@example.com"}, slices.Sorted(slices.Values([]string{bid, cid}))},
		{connector.Key{Kind: connector.KeyEmployeeNumber, Value: "e1"}, []string{bid}},
		{connector.Key{Kind: connector.KeyEmail, Value: "nobody@example.com"}, nil},
		{connector.Key{Kind: connector.KeyEmployeeNumber, Value: ""}, nil}, // empty never matches empty
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s=%s", tc.key.Kind, tc.key.Value), func(t *testing.T) {
			found, err := s.Find(t.Context(), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, l := range found {
				ids = append(ids, l.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("found %v, want %v", ids, tc.want)
			}
		})
	}
	if _, err := s.Find(t.Context(), connector.Key{Kind: "nickname", Value: "x"}); err == nil {
		t.Error("unknown key kind accepted")
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name   string
		change func(l *connector.Learner)
		write  bool
		check  func(t *testing.T, got *connector.Learner)
		err    func(*connector.Error) bool
	}{
		{"fields merge, absent ones kept", func(l *connector.Learner) {
			l.Fields = map[string]string{"departmentName": "Sales"}
			l.Active = false
		}, true, func(t *testing.T, got *connector.Learner) {
			if got.Fields["jobTitle"] != "Engineer" || got.Fields["departmentName"] != "Sales" || got.Active {
				t.Errorf("got %+v", got)
			}
		}, nil},
		{"no change is no write", func(*connector.Learner) {}, false, nil, nil},
		{"unknown id", func(l *connector.Learner) { l.ID = "nope" }, false, nil, func(e *connector.Error) bool { return e.NotFound }},
		{"username of another learner", func(l *connector.Learner) { l.UserName = "B@example.com" }, false, nil, func(e *connector.Error) bool { return e.Conflict }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, "")
			l := learner("a")
			l.ID = mustCreate(t, s, l)
			mustCreate(t, s, learner("b"))
			writes := s.Writes()
			tc.change(&l)
			err := s.Update(t.Context(), l)
			if tc.err != nil {
				var ce *connector.Error
				if !asErr(err, &ce) || !tc.err(ce) {
					t.Fatalf("Update: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := s.Writes() - writes; got != map[bool]int{false: 0, true: 1}[tc.write] {
				t.Errorf("%d writes, want write=%v", got, tc.write)
			}
			if tc.check != nil {
				got, err := s.Get(t.Context(), l.ID)
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, got)
			}
		})
	}
}

func TestGroupsAndEnrollments(t *testing.T) {
	s := open(t, "")
	ctx := t.Context()
	id := mustCreate(t, s, learner("a"))
	course := connector.Enrollment{Kind: "course", ID: "c1"}
	steps := []struct {
		name  string
		do    func() error
		write bool
	}{
		{"set groups", func() error { return s.SetGroups(ctx, id, []string{"B", "A", "B"}) }, true},
		{"same groups in another order", func() error { return s.SetGroups(ctx, id, []string{"A", "B"}) }, false},
		{"enroll", func() error { return s.Enroll(ctx, id, course) }, true},
		{"enroll again", func() error { return s.Enroll(ctx, id, course) }, false},
		{"clear groups", func() error { return s.SetGroups(ctx, id, nil) }, true},
	}
	for _, st := range steps {
		writes := s.Writes()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if (s.Writes() > writes) != st.write {
			t.Errorf("%s: write = %v, want %v", st.name, s.Writes() > writes, st.write)
		}
	}
	snap := s.Snapshot()
	if len(snap) != 1 || len(snap[0].Groups) != 0 || !slices.Equal(snap[0].Enrollments, []connector.Enrollment{course}) {
		t.Errorf("snapshot %+v", snap)
	}
	for name, err := range map[string]error{
		"groups": s.SetGroups(ctx, "nope", nil),
		"enroll": s.Enroll(ctx, "nope", course),
		"get":    func() error { _, err := s.Get(ctx, "nope"); return err }(),
		"delete": s.Delete("nope"),
	} {
		if !connector.IsNotFound(err) {
			t.Errorf("%s of an unknown learner: %v", name, err)
		}
	}
}

func TestPersistenceAndDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "sandbox.db")
	s := open(t, path)
	a := mustCreate(t, s, learner("a"))
	b := mustCreate(t, s, learner("b"))
	if err := s.SetGroups(t.Context(), a, []string{"G"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := open(t, path)
	snap := re.Snapshot()
	if len(snap) != 1 || snap[0].ID != a || !slices.Equal(snap[0].Groups, []string{"G"}) || snap[0].Fields["jobTitle"] != "Engineer" {
		t.Errorf("reopened: %+v", snap)
	}
	if _, err := re.Get(t.Context(), b); !connector.IsNotFound(err) {
		t.Errorf("deleted learner: %v", err)
	}
}

func TestListPages(t *testing.T) {
	s := open(t, "")
	want := map[string]bool{}
	for i := range 1203 {
		want[mustCreate(t, s, learner(fmt.Sprint(i)))] = true
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		ls, next, err := s.List(t.Context(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, l := range ls {
			if seen[l.ID] {
				t.Fatalf("%s listed twice", l.ID)
			}
			seen[l.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(want) || pages != 3 {
		t.Errorf("listed %d of %d in %d pages", len(seen), len(want), pages)
	}
}

func TestConcurrentCreatesOfOneUsername(t *testing.T) {
	s := open(t, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 16 {
		wg.Go(func() {
			if _, err := s.Create(context.Background(), learner("a")); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 || len(s.Snapshot()) != 1 {
		t.Errorf("%d creates succeeded, %d learners; want 1", ok, len(s.Snapshot()))
	}
}
