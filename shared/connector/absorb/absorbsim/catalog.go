package absorbsim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Department is a v2 department.
type Department struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ExternalID string    `json:"externalId"`
	ParentID   string    `json:"parentId"`
	DateAdded  time.Time `json:"dateAdded"`
	DateEdited time.Time `json:"dateEdited"`
}

func (d *Department) field(name string) (any, bool) {
	str := func(s string) (any, bool) {
		if s == "" {
			return nil, true
		}
		return s, true
	}
	switch name {
	case "id":
		return str(d.ID)
	case "name":
		return str(d.Name)
	case "externalid":
		return str(d.ExternalID)
	case "parentid":
		return str(d.ParentID)
	}
	return nil, false
}

// Group is a learner group. Automatic groups compute their members from
// a rule on a user field (RuleField, a filter field name such as
// "customFields/string30", containing RuleContains, case-insensitively);
// manual groups list UserIDs.
type Group struct {
	ID           string
	Name         string
	IsAutomatic  bool
	UserIDs      []string
	RuleField    string
	RuleContains string
}

// Course is anything a user can be enrolled in: Absorb's course types
// ("OnlineCourse", "InstructorLedCourse", "CourseBundle", "Curriculum")
// share one id space.
type Course struct {
	ID   string
	Name string
	Type string
}

// Enrollment is a user's enrollment in a course.
type Enrollment struct {
	ID           string    `json:"id"`
	CourseID     string    `json:"courseId"`
	CourseName   string    `json:"courseName"`
	CourseType   string    `json:"courseType"`
	UserID       string    `json:"userId"`
	Status       int       `json:"status"` // 0 NotStarted
	Progress     float64   `json:"progress"`
	IsActive     bool      `json:"isActive"`
	DateEnrolled time.Time `json:"dateEnrolled"`
	DateEdited   time.Time `json:"dateEdited"`
}

// maxGroupUserIDs is where Absorb truncates a group's userIds, appending
// the all-zero id to say there are more.
const maxGroupUserIDs = 50000

const zeroID = "00000000-0000-0000-0000-000000000000"

// SeedDepartment stores a department and returns its id.
func (s *Sim) SeedDepartment(d Department) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addDepartment(d)
}

func (s *Sim) addDepartment(d Department) string {
	d.ID = strings.ToLower(d.ID)
	if d.ID == "" {
		d.ID = s.newID()
	}
	if d.DateAdded.IsZero() {
		d.DateAdded = s.now().UTC()
		d.DateEdited = d.DateAdded
	}
	if _, ok := s.depts[d.ID]; !ok {
		s.deptOrder = append(s.deptOrder, d.ID)
	}
	s.depts[d.ID] = &d
	return d.ID
}

// Departments returns a snapshot of every department.
func (s *Sim) Departments() []Department {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Department, 0, len(s.deptOrder))
	for _, id := range s.deptOrder {
		out = append(out, *s.depts[id])
	}
	return out
}

// SeedGroup stores a group and returns its id.
func (s *Sim) SeedGroup(g Group) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.ID = strings.ToLower(g.ID)
	if g.ID == "" {
		g.ID = s.newID()
	}
	g.UserIDs = slices.Clone(g.UserIDs)
	if _, ok := s.groups[g.ID]; !ok {
		s.groupOrder = append(s.groupOrder, g.ID)
	}
	s.groups[g.ID] = &g
	return g.ID
}

// SeedCourse stores a course (or curriculum, bundle…) and returns its id.
func (s *Sim) SeedCourse(c Course) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.ID = strings.ToLower(c.ID)
	if c.ID == "" {
		c.ID = s.newID()
	}
	if c.Type == "" {
		c.Type = "OnlineCourse"
	}
	s.courses[c.ID] = &c
	return c.ID
}

// Enrollments returns a snapshot of a user's enrollments.
func (s *Sim) Enrollments(userID string) []Enrollment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Enrollment
	for _, e := range s.enrolls[strings.ToLower(userID)] {
		out = append(out, *e)
	}
	return out
}

// GroupMembers answers a group's member ids as GET /groups/{id} would,
// before truncation.
func (s *Sim) GroupMembers(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[strings.ToLower(groupID)]
	if !ok {
		return nil
	}
	return s.members(g)
}

// members computes a group's user ids. The caller holds s.mu.
func (s *Sim) members(g *Group) []string {
	if !g.IsAutomatic {
		return slices.Clone(g.UserIDs)
	}
	var out []string
	needle := strings.ToLower(g.RuleContains)
	for _, id := range s.userOrder {
		u := s.users[id]
		if v := u.textField(g.RuleField); v != "" && strings.Contains(strings.ToLower(v), needle) {
			out = append(out, id)
		}
	}
	return out
}

func (s *Sim) groupWire(g *Group) map[string]any {
	ids := s.members(g)
	if len(ids) > maxGroupUserIDs {
		ids = append(ids[:maxGroupUserIDs:maxGroupUserIDs], zeroID)
	}
	if ids == nil {
		ids = []string{}
	}
	return map[string]any{"id": g.ID, "name": g.Name, "isAutomatic": g.IsAutomatic, "userIds": ids}
}

func (s *Sim) listDepartments(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	f, ok := filterOf(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	name, ext := q.Get("departmentName"), q.Get("externalId")
	s.mu.Lock()
	var out []Department
	var ferr error
	for _, id := range s.deptOrder {
		d := s.depts[id]
		if name != "" && !strings.EqualFold(d.Name, name) || ext != "" && !strings.EqualFold(d.ExternalID, ext) {
			continue
		}
		in, err := keep(r.Context(), f, d.field)
		if err != nil {
			ferr = err
			break
		}
		if in {
			out = append(out, *d)
		}
	}
	s.mu.Unlock()
	if ferr != nil {
		writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The filter is invalid.")
		return
	}
	writeJSON(w, http.StatusOK, envelope("departments", out, offset, limit))
}

func (s *Sim) getDepartment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d, ok := s.depts[strings.ToLower(r.PathValue("id"))]
	var cp Department
	if ok {
		cp = *d
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Department not found.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Sim) createDepartment(w http.ResponseWriter, r *http.Request) {
	if s.opts.NoDepartmentWrites {
		writeError(w, http.StatusNotFound, "Resource not found.")
		return
	}
	var in Department
	if err := decodeBody(r, &in); err != nil {
		writeError(w, http.StatusBadRequest, "The request body is invalid.")
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		writeError(w, http.StatusUnprocessableEntity, "One or more validation errors occurred.", "The Name field is required.")
		return
	}
	s.mu.Lock()
	if in.ParentID != "" {
		if _, ok := s.depts[strings.ToLower(in.ParentID)]; !ok {
			s.mu.Unlock()
			writeError(w, http.StatusUnprocessableEntity, "One or more validation errors occurred.", "The parent department does not exist.")
			return
		}
	}
	id := s.addDepartment(Department{Name: in.Name, ExternalID: in.ExternalID, ParentID: in.ParentID})
	d := *s.depts[id]
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, d)
}

func (s *Sim) listGroups(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	f, ok := filterOf(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var out []map[string]any
	var ferr error
	for _, id := range s.groupOrder {
		g := s.groups[id]
		rec := func(name string) (any, bool) {
			switch name {
			case "id":
				return g.ID, true
			case "name":
				return g.Name, true
			case "isautomatic":
				return g.IsAutomatic, true
			}
			return nil, false
		}
		in, err := keep(r.Context(), f, rec)
		if err != nil {
			ferr = err
			break
		}
		if in {
			out = append(out, s.groupWire(g))
		}
	}
	s.mu.Unlock()
	if ferr != nil {
		writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The filter is invalid.")
		return
	}
	writeJSON(w, http.StatusOK, envelope("groups", out, offset, limit))
}

func (s *Sim) getGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, ok := s.groups[strings.ToLower(r.PathValue("id"))]
	var m map[string]any
	if ok {
		m = s.groupWire(g)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Group not found.")
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Sim) listEnrollments(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	uid := strings.ToLower(r.PathValue("id"))
	s.mu.Lock()
	_, exists := s.users[uid]
	var out []Enrollment
	for _, e := range s.enrolls[uid] {
		out = append(out, *e)
	}
	s.mu.Unlock()
	if !exists {
		writeError(w, http.StatusNotFound, "User not found.")
		return
	}
	writeJSON(w, http.StatusOK, envelope("enrollments", out, offset, limit))
}

func (s *Sim) getEnrollment(w http.ResponseWriter, r *http.Request) {
	uid, cid := strings.ToLower(r.PathValue("id")), strings.ToLower(r.PathValue("courseId"))
	s.mu.Lock()
	_, exists := s.users[uid]
	var found *Enrollment
	for _, e := range s.enrolls[uid] {
		if e.CourseID == cid && e.IsActive {
			cp := *e
			found = &cp
		}
	}
	s.mu.Unlock()
	switch {
	case !exists:
		writeError(w, http.StatusNotFound, "User not found.")
	case found == nil:
		writeError(w, http.StatusNotFound, "Enrollment not found.")
	default:
		writeJSON(w, http.StatusOK, found)
	}
}

func (s *Sim) enroll(w http.ResponseWriter, r *http.Request) {
	uid, cid := strings.ToLower(r.PathValue("id")), strings.ToLower(r.PathValue("courseId"))
	s.mu.Lock()
	_, uok := s.users[uid]
	c, cok := s.courses[cid]
	dup := false
	var e Enrollment
	if uok && cok {
		for _, x := range s.enrolls[uid] {
			if x.CourseID == cid && x.IsActive {
				dup = true
			}
		}
		if !dup {
			now := s.now().UTC()
			e = Enrollment{ID: s.newID(), CourseID: c.ID, CourseName: c.Name, CourseType: c.Type, UserID: uid, IsActive: true, DateEnrolled: now, DateEdited: now}
			cp := e
			s.enrolls[uid] = append(s.enrolls[uid], &cp)
		}
	}
	s.mu.Unlock()
	switch {
	case !uok:
		writeError(w, http.StatusNotFound, "User not found.")
	case !cok:
		writeError(w, http.StatusNotFound, "Course not found.")
	case dup:
		writeError(w, http.StatusConflict, "The user is already enrolled in this course.")
	default:
		writeJSON(w, http.StatusCreated, e)
	}
}
