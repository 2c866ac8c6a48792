package oktasim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/okta"
)

// genPrefix starts every generated id; with 14 digits the ids are 20
// characters like Okta's and sort in index order.
const genPrefix = "00ugen"

// GeneratedID is the id of generated user i (see Populate).
func GeneratedID(i int) string { return fmt.Sprintf("%s%014d", genPrefix, i) }

func genIndex(id string) (int, bool) {
	if len(id) != len(genPrefix)+14 || !strings.HasPrefix(id, genPrefix) {
		return 0, false
	}
	i, err := strconv.Atoi(id[len(genPrefix):])
	return i, err == nil && i >= 0
}

// firstGenAfter is the smallest generated index whose id sorts after
// the cursor (n if none).
func firstGenAfter(after string, n int) int {
	return sort.Search(n, func(i int) bool { return GeneratedID(i) > after })
}

func newRecord(u okta.User) *record {
	status := u.Status
	if status == "" {
		status = "ACTIVE"
	}
	p, err := json.Marshal(u.Profile)
	if err != nil {
		// Extra held something JSON cannot encode: a test bug.
		panic(fmt.Sprintf("oktasim: profile of %s: %v", u.ID, err))
	}
	return &record{status: status, login: u.Profile.Login, profile: p}
}

// user returns a live user: a stored one, else a generated one.
func (s *Sim) user(id string) *record {
	if rec, ok := s.users[id]; ok {
		return rec
	}
	if i, ok := genIndex(id); ok && i < s.genN && !s.deleted[id] {
		u := s.genFn(i)
		return newRecord(u)
	}
	return nil
}

// Populate declares n generated users without storing them: user i has
// id GeneratedID(i) and the status and profile gen(i) returns (its ID is
// ignored). gen must be deterministic and safe to call concurrently. A
// later PutUser or DeleteUser of a generated id overrides it.
func (s *Sim) Populate(n int, gen func(i int) okta.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.genN, s.genFn = n, gen
}

// PutUser stores or replaces a user (Status defaults to ACTIVE).
func (s *Sim) PutUser(u okta.User) {
	if u.ID == "" {
		panic("oktasim: PutUser needs an ID")
	}
	rec := newRecord(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.users[u.ID]; ok {
		delete(s.logins, strings.ToLower(old.login))
	}
	s.users[u.ID] = rec
	delete(s.deleted, u.ID)
	if rec.login != "" {
		s.logins[strings.ToLower(rec.login)] = u.ID
	}
}

// User returns a user as the API serves it.
func (s *Sim) User(id string) (okta.User, bool) {
	s.mu.Lock()
	rec := s.user(id)
	s.mu.Unlock()
	if rec == nil {
		return okta.User{}, false
	}
	u := okta.User{ID: id, Status: rec.status}
	if err := json.Unmarshal(rec.profile, &u.Profile); err != nil {
		return okta.User{}, false
	}
	return u, true
}

// DeleteUser deletes a user; it disappears from every app and group.
func (s *Sim) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.users[id]; ok {
		delete(s.logins, strings.ToLower(old.login))
		delete(s.users, id)
	}
	if _, ok := genIndex(id); ok {
		s.deleted[id] = true
	}
	for _, m := range s.apps {
		m.ids.remove(id)
	}
	for _, m := range s.groups {
		m.ids.remove(id)
	}
}

func ensure(ms map[string]*membership, id string) *membership {
	m := ms[id]
	if m == nil {
		m = &membership{scope: map[string]string{}, removed: map[string]bool{}}
		ms[id] = m
	}
	return m
}

func (m *membership) add(userID string) {
	m.ids.add(userID)
	delete(m.removed, userID)
}

func (m *membership) remove(userID string) {
	m.ids.remove(userID)
	delete(m.scope, userID)
	if _, ok := genIndex(userID); ok && m.all {
		m.removed[userID] = true
	}
}

// CreateApp makes an app exist with no assignments (unknown apps are 404).
func (s *Sim) CreateApp(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ensure(s.apps, appID)
}

// Assign assigns a user to an app; scope is USER (the default) or GROUP.
func (s *Sim) Assign(appID, userID, scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := ensure(s.apps, appID)
	m.add(userID)
	if scope != "" && scope != "USER" {
		m.scope[userID] = scope
	} else {
		delete(m.scope, userID)
	}
}

// Unassign removes a user's assignment to an app.
func (s *Sim) Unassign(appID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.apps[appID]; m != nil {
		m.remove(userID)
	}
}

// AssignPopulation assigns every generated user to the app.
func (s *Sim) AssignPopulation(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := ensure(s.apps, appID)
	m.all = true
	clear(m.removed)
}

// CreateGroup makes a group exist with no members (unknown groups are 404).
func (s *Sim) CreateGroup(groupID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ensure(s.groups, groupID)
}

// AddMember adds a user to a group.
func (s *Sim) AddMember(groupID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ensure(s.groups, groupID).add(userID)
}

// RemoveMember removes a user from a group.
func (s *Sim) RemoveMember(groupID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.groups[groupID]; m != nil {
		m.remove(userID)
	}
}

// AddPopulationToGroup makes every generated user a member of the group.
func (s *Sim) AddPopulationToGroup(groupID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := ensure(s.groups, groupID)
	m.all = true
	clear(m.removed)
}
