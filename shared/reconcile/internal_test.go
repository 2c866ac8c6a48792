package reconcile

import (
	"fmt"
	"maps"
	"reflect"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/okta"
)

func TestStateRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		marks  int
		claims int
		chunks int // at least
	}{
		{"empty", 0, 0, 0},
		{"small", 3, 2, 1},
		{"many chunks", 20000, 3000, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newState()
			for i := range tt.marks {
				s.marks[key(fmt.Sprint("id-", i))] = uint8(i%15 + 1)
			}
			for i := range tt.claims {
				c := &claim{Rank: uint8(i % 3), Key: "email", N: i%4 + 1}
				for j := range min(c.N, maxCandidates) {
					c.Learners = append(c.Learners, fmt.Sprintf("%08x-0000-4000-8000-%012x", i, j))
				}
				s.claims[key(fmt.Sprint("c-", i))] = c
			}
			chunks := s.encode()
			if len(chunks) < tt.chunks {
				t.Fatalf("%d chunks, want at least %d", len(chunks), tt.chunks)
			}
			got := newState()
			for _, c := range chunks {
				if len(c) > chunkSize {
					t.Fatalf("chunk of %d bytes", len(c))
				}
				if err := got.decode(c); err != nil {
					t.Fatal(err)
				}
			}
			if !maps.Equal(got.marks, s.marks) || !reflect.DeepEqual(got.claims, s.claims) {
				t.Fatal("state changed in the round trip")
			}
		})
	}
	if err := newState().decode([]byte{recClaim, 1, 2}); err == nil {
		t.Fatal("decoded a truncated record")
	}
}

func TestComparer(t *testing.T) {
	c := newComparer(mapping.Default(), DefaultIgnoreFields(), "customFields.string30", nil)
	want := connector.Learner{ExternalID: "00u1", UserName: "Jane@Example.com", Email: "jane@example.com",
		FirstName: "Jane", LastName: "Doe", Active: true,
		Fields: map[string]string{"jobTitle": "Rep", "departmentName": "Sales", "customFields.string1": "CC1",
			"supervisorExternalId": "00u9", "employeeNumber": "", "location": ""}}
	groups := []string{"Sales", "All"}
	wh, mask := c.desired(want, groups)
	read := func(edit func(*connector.Learner)) connector.Learner {
		l := connector.Learner{ID: "x", ExternalID: "00u1", UserName: "jane@example.com", Email: "JANE@example.com",
			FirstName: "Jane", LastName: "Doe", Active: true,
			Fields: map[string]string{"jobTitle": "Rep", "departmentId": "d-1", "customFields.string1": "CC1",
				"supervisorId": "s-1", "customFields.string30": "|All|Sales|", "phone": "555"}}
		if edit != nil {
			edit(&l)
		}
		return l
	}
	tests := []struct {
		name  string
		edit  func(*connector.Learner)
		equal bool
	}{
		{"as read", nil, true},
		{"job title edited", func(l *connector.Learner) { l.Fields["jobTitle"] = "CEO" }, false},
		{"custom field cleared", func(l *connector.Learner) { delete(l.Fields, "customFields.string1") }, false},
		{"employee number set by hand", func(l *connector.Learner) { l.Fields["employeeNumber"] = "E9" }, false},
		{"groups differ", func(l *connector.Learner) { l.Fields["customFields.string30"] = "|Sales|" }, false},
		{"first name differs", func(l *connector.Learner) { l.FirstName = "J" }, false},
		{"external id differs", func(l *connector.Learner) { l.ExternalID = "other" }, false},
		{"username case only", func(l *connector.Learner) { l.UserName = "JANE@EXAMPLE.COM" }, true},
		{"unmapped field", func(l *connector.Learner) { l.Fields["notes"] = "x" }, true},
		{"department id (not comparable)", func(l *connector.Learner) { l.Fields["departmentId"] = "d-2" }, true},
		{"supervisor id (not comparable)", func(l *connector.Learner) { l.Fields["supervisorId"] = "s-2" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.actual(read(tt.edit), mask) == wh; got != tt.equal {
				t.Fatalf("equal = %v, want %v", got, tt.equal)
			}
		})
	}
	// An empty desired core field is not compared (connectors never blank it).
	noMail := want
	noMail.Email = ""
	h, m := c.desired(noMail, groups)
	if c.actual(read(nil), m) != h {
		t.Fatal("a learner with an email differs from a desired learner without one")
	}
}

func TestOktaDirUser(t *testing.T) {
	tests := []struct {
		name              string
		status, appStatus string
		active, provision bool
	}{
		{"active", "ACTIVE", "PROVISIONED", true, true},
		{"locked out", "LOCKED_OUT", "ACTIVE", true, true},
		{"suspended", "SUSPENDED", "PROVISIONED", true, false},
		{"staged", "STAGED", "STAGED", true, false},
		{"deprovisioned", "DEPROVISIONED", "PROVISIONED", false, false},
		{"inactive assignment", "ACTIVE", "INACTIVE", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := okta.User{ID: "00u1", Status: tt.status, Profile: okta.Profile{Login: "a@x", Email: "a@x", Department: "Sales"},
				App: &okta.AppUser{Status: tt.appStatus}}
			d := dirUser(u)
			if d.Active != tt.active || d.Provision != tt.provision || d.ID != "00u1" || d.Login != "a@x" || d.Department != "Sales" {
				t.Fatalf("dirUser = %+v", d)
			}
		})
	}
	if d := dirUser(okta.User{ID: "00u2", Status: "ACTIVE", App: &okta.AppUser{Status: "ACTIVE", UserName: "b@x"}}); d.Login != "b@x" {
		t.Fatalf("login falls back to the app username: %+v", d)
	}
}
