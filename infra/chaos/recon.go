package main

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// dryReconcile runs reconciliation once, as a dry run, over the stopped
// runner's store and the simulator's learners. It is not part of the
// convergence check (convergence must hold without it); it says whether
// reconciliation would still find drift.
func dryReconcile(ctx context.Context, dataDir string, sim *absorbsim.Sim) (*reconcile.Report, error) {
	st, err := bolt.Open(filepath.Join(dataDir, "store.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	t := worker.Target{Name: targetName, Conn: &simLearners{users: sim.Users()}, Mapping: mapping.Default(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	return reconcile.Run(ctx, reconcile.Deps{Store: st, Target: t},
		reconcile.Options{DryRun: true, GroupsField: "customFields." + groupsField})
}

// simLearners serves a snapshot of the simulator's users as the Absorb
// connector reads them, without HTTP: the simulator's faults are for the
// sync, not for this after-the-fact look.
type simLearners struct{ users []absorbsim.User }

var errReadOnly = errors.New("chaos: the learner snapshot is read-only")

func (s *simLearners) Get(_ context.Context, id string) (*connector.Learner, error) {
	for _, u := range s.users {
		if strings.EqualFold(u.ID, id) {
			l := learnerOf(u)
			return &l, nil
		}
	}
	return nil, &connector.Error{Op: "get", Status: 404, NotFound: true, Err: errors.New("no such learner")}
}

func (s *simLearners) Find(_ context.Context, k connector.Key) ([]connector.Learner, error) {
	var out []connector.Learner
	for _, u := range s.users {
		v := ""
		switch k.Kind {
		case connector.KeyExternalID:
			v = u.ExternalID
		case connector.KeyUserName:
			v = u.Username
		case connector.KeyEmail:
			v = u.EmailAddress
		case connector.KeyEmployeeNumber:
			v = u.EmployeeNumber
		}
		if v != "" && strings.EqualFold(v, k.Value) {
			out = append(out, learnerOf(u))
		}
	}
	return out, nil
}

func (s *simLearners) Create(context.Context, connector.Learner) (string, error) {
	return "", errReadOnly
}
func (s *simLearners) Update(context.Context, connector.Learner) error { return errReadOnly }

func (s *simLearners) List(_ context.Context, cursor string) ([]connector.Learner, string, error) {
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil {
			return nil, "", err
		}
		start = n
	}
	end := min(start+500, len(s.users))
	out := make([]connector.Learner, 0, end-start)
	for _, u := range s.users[start:end] {
		out = append(out, learnerOf(u))
	}
	next := ""
	if end < len(s.users) {
		next = strconv.Itoa(end)
	}
	return out, next, nil
}

// learnerOf is a simulator user as the Absorb connector reports it: the
// core attributes, the active flag, and the non-empty plain and custom
// fields under their Absorb names.
func learnerOf(u absorbsim.User) connector.Learner {
	l := connector.Learner{ID: u.ID, ExternalID: u.ExternalID, UserName: u.Username, Email: u.EmailAddress,
		FirstName: u.FirstName, LastName: u.LastName, Active: u.ActiveStatus == 0, Fields: map[string]string{}}
	for k, v := range map[string]string{
		"middleName": u.MiddleName, "jobTitle": u.JobTitle, "employeeNumber": u.EmployeeNumber, "location": u.Location,
		"phone": u.Phone, "address": u.Address, "address2": u.Address2, "city": u.City, "postalCode": u.PostalCode,
		"dateHired": u.DateHired, "dateTerminated": u.DateTerminated, "notes": u.Notes, "referenceNumber": u.ReferenceNumber,
		"provinceId": u.ProvinceID, "countryId": u.CountryID, "departmentId": u.DepartmentID, "supervisorId": u.SupervisorID,
	} {
		if v != "" {
			l.Fields[k] = v
		}
	}
	for k, v := range u.CustomFields {
		if s := text(v); s != "" {
			l.Fields["customFields."+k] = s
		}
	}
	return l
}
