package onelogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

const (
	pageLimit    = 100 // OneLogin's maximum limit for users [D]
	maxFindPages = 5   // a lookup answering more is ambiguous anyway

	statusUnactivated = 0
	statusActive      = 1
	statusSuspended   = 2
)

// textFields are the user attributes Fields map onto under their own name.
func textFields() []string {
	return []string{"title", "department", "company", "comment", "phone", "preferred_locale_code"}
}

// aliases maps the mapping defaults' names to OneLogin's.
func aliases() map[string]string {
	return map[string]string{"jobTitle": "title", "departmentName": "department"}
}

// user is a OneLogin user as read.
type user map[string]any

func (u user) str(key string) string { return text(u[key]) }

// text renders a JSON value as the text learnerlink compares and stores.
func text(v any) string { return vendorhttp.Text(v) }

// status returns the user's status, -1 when absent.
func (u user) status() int {
	n, err := strconv.Atoi(u.str("status"))
	if err != nil {
		return -1
	}
	return n
}

func (u user) customAttributes() map[string]any {
	ca, _ := u["custom_attributes"].(map[string]any)
	return ca
}

// active says whether a status counts as a provisioned learner: every
// status but 0 (Unactivated) and 2 (Suspended); 3-8 are password and
// lockout states OneLogin manages on its own.
func active(status int) bool { return status != statusUnactivated && status != statusSuspended }

func (c *Connector) learner(u user) connector.Learner {
	l := connector.Learner{
		ID:         u.str("id"),
		ExternalID: u.str("external_id"),
		UserName:   u.str("username"),
		Email:      u.str("email"),
		FirstName:  u.str("firstname"),
		LastName:   u.str("lastname"),
		Active:     active(u.status()),
		Fields:     map[string]string{},
	}
	for _, k := range append(textFields(), "manager_user_id") {
		if v := u.str(k); v != "" {
			l.Fields[k] = v
		}
	}
	for k, v := range u.customAttributes() {
		s := text(v)
		switch {
		case s == "":
		case k == c.marker:
			l.Fields[OriginKey] = s
		case k == c.cfg.EmployeeNumberField:
			l.Fields["employeeNumber"] = s
		default:
			l.Fields["custom_attributes."+k] = s
		}
	}
	return l
}

// secrets lists a learner's values to keep out of error text.
func secrets(l connector.Learner) []string {
	s := []string{l.UserName, l.Email, l.FirstName, l.LastName, l.ExternalID}
	for _, v := range l.Fields {
		s = append(s, v)
	}
	return s
}

// userID checks a learner id is a OneLogin user id (a positive integer).
func userID(op, id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, &connector.Error{Op: op, NotFound: true, Err: errors.New("learner id is not a OneLogin user id")}
	}
	return n, nil
}

func userPath(id int64) string { return "/api/2/users/" + strconv.FormatInt(id, 10) }

// Get reads a learner by OneLogin id.
func (c *Connector) Get(ctx context.Context, id string) (*connector.Learner, error) {
	u, err := c.getUser(ctx, "onelogin.get", id)
	if err != nil {
		return nil, err
	}
	l := c.learner(u)
	return &l, nil
}

func (c *Connector) getUser(ctx context.Context, op, id string) (user, error) {
	n, err := userID(op, id)
	if err != nil {
		return nil, err
	}
	var u user
	if _, err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: userPath(n)}, &u); err != nil {
		return nil, err
	}
	if u == nil {
		return nil, &connector.Error{Op: op, Err: errors.New("empty user in response")}
	}
	return u, nil
}

// Find returns the learners whose key equals the value. OneLogin treats
// "*" as a wildcard, so answers are kept only when they match exactly
// (case-insensitively, as OneLogin compares).
func (c *Connector) Find(ctx context.Context, key connector.Key) ([]connector.Learner, error) {
	const op = "onelogin.find"
	var param, attr string
	switch key.Kind {
	case connector.KeyExternalID:
		param, attr = "external_id", "external_id"
	case connector.KeyUserName:
		param, attr = "username", "username"
	case connector.KeyEmail:
		param, attr = "email", "email"
	case connector.KeyEmployeeNumber:
		if c.cfg.EmployeeNumberField == "" {
			return nil, &connector.Error{Op: op, Err: errors.New("employee number lookups need Config.EmployeeNumberField (OneLogin has no such attribute)")}
		}
		param = "custom_attributes." + c.cfg.EmployeeNumberField
	default:
		return nil, &connector.Error{Op: op, Err: fmt.Errorf("unsupported key kind %q", key.Kind)}
	}
	if key.Value == "" {
		return nil, nil
	}
	var out []connector.Learner
	cursor := ""
	for range maxFindPages {
		q := url.Values{param: {key.Value}, "limit": {strconv.Itoa(pageLimit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var users []user
		h, err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: "/api/2/users", Query: q, Secrets: []string{key.Value}}, &users)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			got := u.str(attr)
			if attr == "" {
				got = text(u.customAttributes()[c.cfg.EmployeeNumberField])
			}
			if strings.EqualFold(got, key.Value) {
				out = append(out, c.learner(u))
			}
		}
		if cursor = h.Get("After-Cursor"); cursor == "" || len(users) < pageLimit {
			break
		}
	}
	return out, nil
}

// List returns one page of learners; the cursor is OneLogin's
// After-Cursor.
func (c *Connector) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	const op = "onelogin.list"
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var users []user
	h, err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: "/api/2/users", Query: q}, &users)
	if err != nil {
		return nil, "", err
	}
	out := make([]connector.Learner, 0, len(users))
	for _, u := range users {
		out = append(out, c.learner(u))
	}
	next := h.Get("After-Cursor")
	if len(users) == 0 || next == cursor {
		next = "" // guard against a cursor that does not advance
	}
	return out, next, nil
}

// mappingsQuery carries Config.Mappings.
func (c *Connector) mappingsQuery() url.Values {
	if c.cfg.Mappings == "" {
		return nil
	}
	return url.Values{"mappings": {c.cfg.Mappings}}
}

// Create creates the learner without a password (it signs in through SSO;
// OneLogin sets status 7 and sends no invitation [D]) and returns its id.
func (c *Connector) Create(ctx context.Context, l connector.Learner) (string, error) {
	const op = "onelogin.create"
	if l.UserName == "" || l.Email == "" {
		return "", &connector.Error{Op: op, Err: errors.New("username and email are required")}
	}
	body, _, err := c.changes(ctx, op, user{}, l, true)
	if err != nil {
		return "", err
	}
	c.stamp(ctx, body, l)
	var created user
	if _, err := c.do(ctx, call{Op: op, Method: http.MethodPost, Path: "/api/2/users", Query: c.mappingsQuery(), Body: body, Secrets: secrets(l)}, &created); err != nil {
		return "", err
	}
	id := created.str("id")
	if _, err := userID(op, id); err != nil {
		return "", &connector.Error{Op: op, Retryable: true, Err: errors.New("created, but the answer carries no user id")}
	}
	return id, nil
}

// Update reads the learner and PUTs only the attributes that differ from
// l (with the origin marker). When nothing differs nothing is written, so
// no OneLogin event (and no echo) follows.
func (c *Connector) Update(ctx context.Context, l connector.Learner) error {
	const op = "onelogin.update"
	cur, err := c.getUser(ctx, op, l.ID)
	if err != nil {
		return err
	}
	body, changed, err := c.changes(ctx, op, cur, l, false)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	c.stamp(ctx, body, l)
	c.log.LogAttrs(ctx, slog.LevelDebug, "onelogin: updating learner", slog.String("id", l.ID), slog.Any("attributes", changed))
	id, _ := userID(op, l.ID)
	_, err = c.do(ctx, call{Op: op, Method: http.MethodPut, Path: userPath(id), Query: c.mappingsQuery(), Body: body, Secrets: secrets(l)}, nil)
	return err
}

// stamp adds the origin marker to a write.
func (c *Connector) stamp(ctx context.Context, body map[string]any, l connector.Learner) {
	ca, _ := body["custom_attributes"].(map[string]any)
	if ca == nil {
		ca = map[string]any{}
		body["custom_attributes"] = ca
	}
	ca[c.marker] = markerFor(ctx, l)
}

// changes returns the attributes to send so that cur carries l's values
// (every non-empty one when create), and their names. Empty core values
// are never sent; empty Fields values clear.
func (c *Connector) changes(ctx context.Context, op string, cur user, l connector.Learner, create bool) (map[string]any, []string, error) {
	body := map[string]any{}
	var names []string
	set := func(key string, v any) {
		if create && text(v) == "" {
			return
		}
		if text(cur[key]) != text(v) {
			body[key] = v
			names = append(names, key)
		}
	}
	for _, f := range []struct{ key, v string }{
		{"username", l.UserName}, {"email", l.Email}, {"firstname", l.FirstName},
		{"lastname", l.LastName}, {"external_id", l.ExternalID},
	} {
		if f.v != "" {
			set(f.key, f.v)
		}
	}
	switch st := cur.status(); {
	case !l.Active && (create || st != statusSuspended):
		body["status"] = statusSuspended // [I] PUT/POST accept status
		names = append(names, "status")
	case l.Active && !create && (st == statusUnactivated || st == statusSuspended):
		body["status"] = statusActive
		names = append(names, "status")
	}

	curCA := cur.customAttributes()
	ca := map[string]any{}
	setCA := func(name, v string) {
		if create && v == "" {
			return
		}
		if text(curCA[name]) != v {
			ca[name] = v // "" clears a custom attribute [D v1]
			names = append(names, "custom_attributes."+name)
		}
	}
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(l.Fields)) {
		v := l.Fields[k]
		native := k
		if a, ok := aliases()[k]; ok {
			native = a
		}
		switch {
		case k == OriginKey:
			// The caller's marker; written by stamp, never compared.
		case slices.Contains(textFields(), native):
			set(native, orNil(v))
		case k == "manager_user_id":
			if v != "" {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return nil, nil, &connector.Error{Op: op, Err: errors.New("manager_user_id is not a OneLogin user id")}
				}
			}
			set("manager_user_id", orNumber(v))
		case k == "supervisorExternalId":
			id, ok, err := c.manager(ctx, v)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				set("manager_user_id", orNumber(id))
			}
		case k == "employeeNumber" && c.cfg.EmployeeNumberField != "":
			setCA(c.cfg.EmployeeNumberField, v)
		case strings.HasPrefix(k, "custom_attributes."):
			name := strings.TrimPrefix(k, "custom_attributes.")
			if !isShortname(name) || name == c.marker {
				unknown = append(unknown, k)
				continue
			}
			setCA(name, v)
		default:
			unknown = append(unknown, k)
		}
	}
	if len(ca) > 0 {
		body["custom_attributes"] = ca
	}
	c.warned.Log(ctx, c.log, "onelogin: ignoring fields OneLogin does not have", unknown)
	return body, names, nil
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orNumber(s string) any {
	if s == "" {
		return nil
	}
	return json.Number(s)
}

// manager resolves a manager's external id to a OneLogin id. ok is false
// when the manager is not (or not unambiguously) there yet: the attribute
// is then left alone. An empty external id clears the manager.
func (c *Connector) manager(ctx context.Context, externalID string) (string, bool, error) {
	if externalID == "" {
		return "", true, nil
	}
	found, err := c.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: externalID})
	if err != nil {
		return "", false, err
	}
	if len(found) != 1 {
		c.log.LogAttrs(ctx, slog.LevelDebug, "onelogin: manager not resolved; left unset", slog.Int("matches", len(found)))
		return "", false, nil
	}
	return found[0].ID, true, nil
}

// SetGroups makes the learner hold exactly the roles its groups map to,
// among the roles in Config.RoleMap; other roles are left alone.
func (c *Connector) SetGroups(ctx context.Context, learnerID string, groups []string) error {
	const op = "onelogin.groups"
	id, err := userID(op, learnerID)
	if err != nil {
		return err
	}
	want := map[int]bool{}
	unmapped := 0
	for _, g := range groups {
		if rid, ok := c.roles[strings.ToLower(g)]; ok {
			want[rid] = true
		} else {
			unmapped++
		}
	}
	if unmapped > 0 {
		c.log.LogAttrs(ctx, slog.LevelDebug, "onelogin: groups without a role", slog.Int("count", unmapped))
	}
	cur, err := c.getUser(ctx, op, learnerID)
	if err != nil {
		return err
	}
	has, known := roleIDs(cur["role_ids"])
	var add, remove []int
	for _, rid := range c.managedRoles() {
		switch {
		case want[rid] && !has[rid]:
			add = append(add, rid)
		case !want[rid] && (has[rid] || !known):
			// Without role_ids in the answer the current roles are
			// unknown: removing a role the user lacks is harmless.
			remove = append(remove, rid)
		}
	}
	body := []int64{id}
	for _, rid := range add {
		if _, err := c.do(ctx, call{Op: op, Method: http.MethodPost, Path: rolePath(rid), Body: body}, nil); err != nil {
			return err
		}
	}
	for _, rid := range remove {
		if _, err := c.do(ctx, call{Op: op, Method: http.MethodDelete, Path: rolePath(rid), Body: body}, nil); err != nil {
			return err
		}
	}
	if len(add)+len(remove) > 0 {
		c.log.LogAttrs(ctx, slog.LevelDebug, "onelogin: roles changed", slog.String("id", learnerID), slog.Any("added", add), slog.Any("removed", remove))
	}
	return nil
}

func rolePath(roleID int) string { return "/api/2/roles/" + strconv.Itoa(roleID) + "/users" }

// managedRoles lists the distinct role ids of the RoleMap, sorted.
func (c *Connector) managedRoles() []int {
	ids := make([]int, 0, len(c.roles))
	for _, id := range c.roles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// roleIDs reads a role_ids value; known is false when it is absent.
func roleIDs(v any) (map[int]bool, bool) {
	arr, ok := v.([]any)
	if !ok {
		return map[int]bool{}, false
	}
	out := make(map[int]bool, len(arr))
	for _, x := range arr {
		if n, err := strconv.Atoi(text(x)); err == nil {
			out[n] = true
		}
	}
	return out, true
}
