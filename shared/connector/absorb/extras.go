package absorb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// fallbackTTL bounds how long an unknown department name keeps mapping to
// the default, so one created later by an admin is picked up.
const fallbackTTL = 10 * time.Minute

// department resolves a department name to its id: from the cache, by
// GET /departments?departmentName=, by creating it (CreateDepartments), or
// falling back to DefaultDepartmentID.
func (c *Connector) department(ctx context.Context, op, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return c.defaultDepartment(op, "the learner has no department")
	}
	key := strings.ToLower(name)
	c.mu.Lock()
	e, ok := c.depts[key]
	c.mu.Unlock()
	if ok && (!e.fallback || c.now().Sub(e.at) < fallbackTTL) {
		return e.id, nil
	}
	id, err := c.findDepartment(ctx, op, name)
	if err != nil {
		return "", err
	}
	fallback := false
	if id == "" && c.cfg.CreateDepartments {
		if id, err = c.createDepartment(ctx, op, name); err != nil {
			return "", err
		}
	}
	if id == "" {
		if id, err = c.defaultDepartment(op, "department not found in Absorb"); err != nil {
			return "", err
		}
		fallback = true
		c.log.LogAttrs(ctx, slog.LevelWarn, "absorb: unknown department; using the default", slog.String("department", name))
	}
	c.mu.Lock()
	c.depts[key] = deptEntry{id: id, fallback: fallback, at: c.now()}
	c.mu.Unlock()
	return id, nil
}

func (c *Connector) defaultDepartment(op, why string) (string, error) {
	if c.cfg.DefaultDepartmentID == "" {
		return "", &connector.Error{Op: op, Err: fmt.Errorf("%s and no default department is configured", why)}
	}
	return c.cfg.DefaultDepartmentID, nil
}

type department struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// findDepartment answers the id of the one department with that name
// (case-insensitively), "" if none.
func (c *Connector) findDepartment(ctx context.Context, op, name string) (string, error) {
	var p struct {
		Departments []department `json:"departments"`
	}
	q := url.Values{"departmentName": {name}, "_limit": {strconv.Itoa(pageLimit)}, "_offset": {"0"}}
	if err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: "/departments", Query: q}, &p); err != nil {
		return "", err
	}
	var ids []string
	for _, d := range p.Departments {
		if strings.EqualFold(strings.TrimSpace(d.Name), name) && d.ID != "" {
			ids = append(ids, d.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return ids[0], nil
	}
	// Same-named departments under different parents: picking one would
	// file learners under the wrong branch. Map by departmentId instead.
	return "", &connector.Error{Op: op, Err: fmt.Errorf("%d departments are named %q; map departmentId instead", len(ids), name)}
}

// createDepartment creates a department by name; "" when Absorb has no
// such endpoint or refuses it, so the caller falls back to the default.
func (c *Connector) createDepartment(ctx context.Context, op, name string) (string, error) {
	var created any
	err := c.do(ctx, call{Op: op, Method: http.MethodPost, Path: "/departments", Body: map[string]any{"name": name}}, &created)
	var ce *connector.Error
	if errors.As(err, &ce) && !ce.Retryable && (ce.NotFound || ce.Status == http.StatusMethodNotAllowed || ce.Status == http.StatusForbidden) {
		c.log.LogAttrs(ctx, slog.LevelWarn, "absorb: cannot create departments here; using the default", slog.Int("status", ce.Status))
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if id := idOf(created); id != "" {
		c.log.LogAttrs(ctx, slog.LevelInfo, "absorb: created department", slog.String("department", name), slog.String("id", id))
		return id, nil
	}
	return c.findDepartment(ctx, op, name)
}

// groupsValue renders group names for the groups field: sorted, unique,
// each enclosed in "|" ("|A|B|"), so an automatic group's rule
// "contains |A|" matches exactly A. A "|" inside a name becomes "/".
func groupsValue(groups []string) string {
	var names []string
	for _, g := range groups {
		g = strings.TrimSpace(strings.ReplaceAll(g, "|", "/"))
		if g != "" && !slices.Contains(names, g) {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "|" + strings.Join(names, "|") + "|"
}

// maxGroupsValue is the length of Absorb's text custom fields as far as we
// know (an inference; the sim enforces it).
const maxGroupsValue = 255

// SetGroups writes the learner's group names into Config.GroupsField, for
// Absorb automatic groups to key off (v2 has no documented membership
// write). It reads the learner and writes only when the value changed.
func (c *Connector) SetGroups(ctx context.Context, learnerID string, groups []string) error {
	const op = "absorb.groups"
	if c.cfg.GroupsField == "" {
		return &connector.Error{Op: op, Err: errors.New("no GroupsField configured for Absorb group names")}
	}
	v := groupsValue(groups)
	if len(v) > maxGroupsValue {
		return &connector.Error{Op: op, Err: fmt.Errorf("%d group names need %d characters; %s holds %d", len(groups), len(v), c.cfg.GroupsField, maxGroupsValue)}
	}
	u, err := c.getUser(ctx, op, learnerID)
	if err != nil {
		return err
	}
	// Only the groups field changes; the rest of the record is sent back
	// as read.
	changed, err := c.applyFields(ctx, u, map[string]string{c.cfg.GroupsField: v})
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	return c.do(ctx, call{Op: op, Method: http.MethodPut, Path: userPath(learnerID), Body: u, Secrets: append(secrets(u.learner()), v)}, nil)
}

// Enroll enrolls the learner in a course or curriculum (both are courses
// in Absorb's id space). Already enrolled is success. See the package
// documentation for the endpoint's standing.
func (c *Connector) Enroll(ctx context.Context, learnerID string, e connector.Enrollment) error {
	const op = "absorb.enroll"
	if e.Kind != "course" && e.Kind != "curriculum" {
		return &connector.Error{Op: op, Err: fmt.Errorf("unsupported enrollment kind %q", e.Kind)}
	}
	if learnerID == "" || e.ID == "" {
		return &connector.Error{Op: op, Err: errors.New("learner and course ids are required")}
	}
	path := userPath(learnerID) + "/enrollments/" + url.PathEscape(e.ID)
	var cur struct {
		IsActive *bool `json:"isActive"`
	}
	err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: path}, &cur)
	switch {
	case err == nil && (cur.IsActive == nil || *cur.IsActive):
		return nil // already enrolled
	case err != nil && !connector.IsNotFound(err):
		return err
	}
	err = c.do(ctx, call{Op: op, Method: http.MethodPost, Path: path, Body: json.RawMessage(`{}`)}, nil)
	var ce *connector.Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		return nil // enrolled meanwhile
	}
	return err
}
