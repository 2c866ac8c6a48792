package oneloginsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	defaultLimit = 50
	maxLimit     = 100
	eventsPage   = 50
)

// userIDs lists user ids in ascending order; called with mu held.
func (s *Sim) userIDs() []int {
	ids := make([]int, 0, len(s.users))
	for id := range s.users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func displayName(u *User) string {
	if n := strings.TrimSpace(u.Firstname + " " + u.Lastname); n != "" {
		return n
	}
	return u.Email
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// wire renders u as the v2 API does; called with mu held.
func (s *Sim) wire(u *User) map[string]any {
	ca := map[string]any{}
	for a := range s.attrs {
		ca[a] = nullable(u.CustomAttributes[a])
	}
	roles := append([]int{}, u.RoleIDs...)
	slices.Sort(roles)
	var manager any
	if u.ManagerUserID != 0 {
		manager = u.ManagerUserID
	}
	return map[string]any{
		"id":                     u.ID,
		"username":               nullable(u.Username),
		"email":                  nullable(u.Email),
		"firstname":              nullable(u.Firstname),
		"lastname":               nullable(u.Lastname),
		"title":                  nullable(u.Title),
		"department":             nullable(u.Department),
		"company":                nullable(u.Company),
		"comment":                nullable(u.Comment),
		"phone":                  nullable(u.Phone),
		"external_id":            nullable(u.ExternalID),
		"preferred_locale_code":  nullable(u.PreferredLocaleCode),
		"manager_user_id":        manager,
		"manager_ad_id":          nil,
		"directory_id":           nil,
		"group_id":               nil,
		"trusted_idp_id":         nil,
		"samaccountname":         nil,
		"userprincipalname":      nil,
		"distinguished_name":     nil,
		"member_of":              nil,
		"state":                  u.State,
		"status":                 u.Status,
		"role_ids":               roles,
		"custom_attributes":      ca,
		"created_at":             timeOrNil(u.CreatedAt),
		"updated_at":             timeOrNil(u.UpdatedAt),
		"activated_at":           timeOrNil(u.ActivatedAt),
		"last_login":             nil,
		"invitation_sent_at":     nil,
		"locked_until":           nil,
		"password_changed_at":    nil,
		"invalid_login_attempts": 0,
	}
}

// matchValue applies OneLogin's search rule: case-insensitive equality,
// with "*" matching any run of characters [I: case rule].
func matchValue(pattern, v string) bool {
	pattern, v = strings.ToLower(pattern), strings.ToLower(v)
	if !strings.Contains(pattern, "*") {
		return pattern == v
	}
	m, err := path.Match(strings.NewReplacer("[", "\\[", "]", "\\]", "?", "\\?", "\\", "\\\\").Replace(pattern), v)
	return err == nil && m
}

func (s *Sim) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var out []*User
	for _, id := range s.userIDs() {
		u := s.users[id]
		ok := true
		for key, vals := range q {
			want := vals[0]
			switch {
			case key == "username":
				ok = ok && matchValue(want, u.Username)
			case key == "email":
				ok = ok && matchValue(want, u.Email)
			case key == "external_id":
				ok = ok && matchValue(want, u.ExternalID)
			case key == "firstname":
				ok = ok && matchValue(want, u.Firstname)
			case key == "lastname":
				ok = ok && matchValue(want, u.Lastname)
			case key == "user_ids":
				found := false
				for _, part := range strings.Split(want, ",") {
					if strings.TrimSpace(part) == strconv.Itoa(u.ID) {
						found = true
					}
				}
				ok = ok && found
			case strings.HasPrefix(key, "custom_attributes."):
				name := strings.TrimPrefix(key, "custom_attributes.")
				if !s.attrs[name] {
					writeError(w, http.StatusBadRequest, "BadRequestError", "Unknown custom attribute")
					return
				}
				ok = ok && matchValue(want, u.CustomAttributes[name])
			}
		}
		if ok {
			out = append(out, u)
		}
	}
	items := make([]any, 0)
	if _, ok := s.page(w, r, len(out), func(i int) { items = append(items, s.wire(out[i])) }); ok {
		writeJSON(w, http.StatusOK, items)
	}
}

// page selects one page of n items (calling add for each index on it) and
// sets OneLogin's pagination headers. It answers 400 itself on a bad cursor.
func (s *Sim) page(w http.ResponseWriter, r *http.Request, n int, add func(i int)) (int, bool) {
	q := r.URL.Query()
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 {
			writeError(w, http.StatusBadRequest, "BadRequestError", "limit must be a positive integer")
			return 0, false
		}
		limit = min(l, maxLimit)
	}
	offset := 0
	switch {
	case q.Get("cursor") != "":
		o, ok := parseCursor(q.Get("cursor"))
		if !ok {
			writeError(w, http.StatusBadRequest, "BadRequestError", "Invalid cursor")
			return 0, false
		}
		offset = o
	case q.Get("page") != "":
		p, err := strconv.Atoi(q.Get("page"))
		if err != nil || p < 1 {
			writeError(w, http.StatusBadRequest, "BadRequestError", "page must be a positive integer")
			return 0, false
		}
		offset = (p - 1) * limit
	}
	end := min(offset+limit, n)
	for i := offset; i < end; i++ {
		add(i)
	}
	h := w.Header()
	pages := (n + limit - 1) / limit
	h.Set("Total-Count", strconv.Itoa(n))
	h.Set("Total-Pages", strconv.Itoa(pages))
	h.Set("Current-Page", strconv.Itoa(offset/limit+1))
	h.Set("Page-Items", strconv.Itoa(max(end-offset, 0)))
	var links []string
	base := *r.URL
	if end < n {
		c := cursor(end)
		h.Set("After-Cursor", c)
		links = append(links, fmt.Sprintf("<%s>; rel=\"next\"", withCursor(base, c)))
	}
	if offset > 0 {
		c := cursor(max(offset-limit, 0))
		h.Set("Before-Cursor", c)
		links = append(links, fmt.Sprintf("<%s>; rel=\"prev\"", withCursor(base, c)))
	}
	if len(links) > 0 {
		h.Set("Link", strings.Join(links, ", "))
	}
	return offset/limit + 1, true
}

func withCursor(u url.URL, c string) string {
	q := u.Query()
	q.Del("page")
	q.Set("cursor", c)
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Sim) userByPath(w http.ResponseWriter, r *http.Request) (*User, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "NotFoundError", "Not Found")
		return nil, false
	}
	u, ok := s.users[id]
	if !ok {
		writeError(w, http.StatusNotFound, "NotFoundError", "Not Found")
		return nil, false
	}
	return u, true
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	if u, ok := s.userByPath(w, r); ok {
		writeJSON(w, http.StatusOK, s.wire(u))
	}
}

func (s *Sim) createUser(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeObject(w, r)
	if !ok {
		return
	}
	u := &User{State: 1, Status: 7, CustomAttributes: map[string]string{}}
	if msg := s.apply(u, body, true); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: "+msg)
		return
	}
	if u.Username == "" && u.Email == "" {
		writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: username or email is required")
		return
	}
	if msg := s.unique(u); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: "+msg)
		return
	}
	if _, set := body["status"]; !set && u.HasPassword {
		u.Status = 1
	}
	s.nextUser++
	u.ID = s.nextUser
	now := s.now()
	u.CreatedAt, u.UpdatedAt = now, now
	if u.Status == 1 {
		u.ActivatedAt = now
	}
	s.users[u.ID] = u
	s.record(Event{EventTypeID: EventUserCreated, UserID: u.ID, UserName: displayName(u), ClientID: clientOf(r)})
	writeJSON(w, http.StatusCreated, s.wire(u))
}

func (s *Sim) updateUser(w http.ResponseWriter, r *http.Request) {
	u, ok := s.userByPath(w, r)
	if !ok {
		return
	}
	body, ok := decodeObject(w, r)
	if !ok {
		return
	}
	next := u.clone()
	if msg := s.apply(&next, body, false); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: "+msg)
		return
	}
	if msg := s.unique(&next); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: "+msg)
		return
	}
	now := s.now()
	if next.Status == 1 && u.Status != 1 && next.ActivatedAt.IsZero() {
		next.ActivatedAt = now
	}
	next.UpdatedAt = now
	*u = next
	s.record(Event{EventTypeID: EventUserUpdated, UserID: u.ID, UserName: displayName(u), ClientID: clientOf(r)})
	writeJSON(w, http.StatusOK, s.wire(u))
}

func (s *Sim) deleteUser(w http.ResponseWriter, r *http.Request) {
	u, ok := s.userByPath(w, r)
	if !ok {
		return
	}
	delete(s.users, u.ID)
	s.record(Event{EventTypeID: EventUserDeleted, UserID: u.ID, UserName: displayName(u), ClientID: clientOf(r)})
	w.WriteHeader(http.StatusNoContent)
}

func decodeObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	var body map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil || body == nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "Input JSON is not valid")
		return nil, false
	}
	return body, true
}

// apply writes the attributes of body into u and returns a validation
// message ("" when fine); called with mu held.
func (s *Sim) apply(u *User, body map[string]json.RawMessage, create bool) string {
	strField := func(key string, dst *string) string {
		raw, ok := body[key]
		if !ok {
			return ""
		}
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			return key + " must be a string"
		}
		if v == nil {
			*dst = ""
		} else {
			*dst = *v
		}
		return ""
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"username", &u.Username}, {"email", &u.Email}, {"firstname", &u.Firstname}, {"lastname", &u.Lastname},
		{"title", &u.Title}, {"department", &u.Department}, {"company", &u.Company}, {"comment", &u.Comment},
		{"phone", &u.Phone}, {"external_id", &u.ExternalID}, {"preferred_locale_code", &u.PreferredLocaleCode},
	} {
		if msg := strField(f.key, f.dst); msg != "" {
			return msg
		}
	}
	if raw, ok := body["email"]; ok && string(raw) != "null" && u.Email != "" && !strings.Contains(u.Email, "@") {
		return "Email is invalid"
	}
	if !create && u.Username == "" && u.Email == "" {
		return "username or email is required"
	}
	if raw, ok := body["status"]; ok {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || v > 8 || v == 6 {
			return "status is not valid"
		}
		u.Status = v
	}
	if raw, ok := body["state"]; ok {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || v > 3 {
			return "state is not valid"
		}
		if u.State == 3 && v != 3 && !create {
			return "use set_state to change the state of an unlicensed user"
		}
		u.State = v
	}
	if raw, ok := body["manager_user_id"]; ok {
		var v *int
		if err := json.Unmarshal(raw, &v); err != nil {
			return "manager_user_id must be an integer"
		}
		switch {
		case v == nil:
			u.ManagerUserID = 0
		case s.users[*v] == nil:
			return "manager_user_id does not exist"
		default:
			u.ManagerUserID = *v
		}
	}
	if raw, ok := body["role_ids"]; ok {
		var ids []int
		if err := json.Unmarshal(raw, &ids); err != nil {
			return "role_ids must be an array of integers"
		}
		for _, id := range ids {
			if s.roles[id] == nil {
				return "role " + strconv.Itoa(id) + " does not exist"
			}
		}
		u.RoleIDs = slices.Compact(slices.Sorted(slices.Values(ids)))
	}
	if raw, ok := body["custom_attributes"]; ok {
		var ca map[string]*string
		if err := json.Unmarshal(raw, &ca); err != nil {
			return "custom_attributes must be an object of strings"
		}
		if u.CustomAttributes == nil {
			u.CustomAttributes = map[string]string{}
		}
		for k, v := range ca {
			if !s.attrs[k] {
				return "custom attribute " + k + " does not exist"
			}
			if v == nil || *v == "" {
				delete(u.CustomAttributes, k)
			} else {
				u.CustomAttributes[k] = *v
			}
		}
	}
	if raw, ok := body["password"]; ok {
		var pw string
		if err := json.Unmarshal(raw, &pw); err != nil || pw == "" {
			return "password must be a string"
		}
		var confirm string
		_ = json.Unmarshal(body["password_confirmation"], &confirm)
		if confirm != pw {
			return "password_confirmation does not match"
		}
		u.HasPassword = true
		if u.Status == 7 {
			u.Status = 1
		}
	}
	return ""
}

// unique checks username and email uniqueness (case-insensitive) [I].
func (s *Sim) unique(u *User) string {
	for _, o := range s.users {
		if o.ID == u.ID {
			continue
		}
		if u.Username != "" && strings.EqualFold(o.Username, u.Username) {
			return "Username has already been taken"
		}
		if u.Email != "" && strings.EqualFold(o.Email, u.Email) {
			return "Email has already been taken"
		}
	}
	return ""
}

func roleWire(r *Role) map[string]any {
	return map[string]any{"id": r.ID, "name": r.Name}
}

func (s *Sim) listRoles(w http.ResponseWriter, r *http.Request) {
	ids := make([]int, 0, len(s.roles))
	for id := range s.roles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	name := r.URL.Query().Get("name")
	var sel []*Role
	for _, id := range ids {
		if name == "" || matchValue(name, s.roles[id].Name) {
			sel = append(sel, s.roles[id])
		}
	}
	items := make([]any, 0)
	if _, ok := s.page(w, r, len(sel), func(i int) { items = append(items, roleWire(sel[i])) }); ok {
		writeJSON(w, http.StatusOK, items)
	}
}

func (s *Sim) roleByPath(w http.ResponseWriter, r *http.Request) (*Role, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || s.roles[id] == nil {
		writeError(w, http.StatusNotFound, "NotFoundError", "Not Found")
		return nil, false
	}
	return s.roles[id], true
}

func (s *Sim) getRole(w http.ResponseWriter, r *http.Request) {
	if role, ok := s.roleByPath(w, r); ok {
		writeJSON(w, http.StatusOK, roleWire(role))
	}
}

func (s *Sim) roleUsers(w http.ResponseWriter, r *http.Request) {
	role, ok := s.roleByPath(w, r)
	if !ok {
		return
	}
	var sel []*User
	for _, id := range s.userIDs() {
		if slices.Contains(s.users[id].RoleIDs, role.ID) {
			sel = append(sel, s.users[id])
		}
	}
	items := make([]any, 0)
	if _, ok := s.page(w, r, len(sel), func(i int) {
		u := sel[i]
		items = append(items, map[string]any{"id": u.ID, "name": displayName(u), "username": nullable(u.Username), "email": nullable(u.Email)})
	}); ok {
		writeJSON(w, http.StatusOK, items)
	}
}

// userList decodes a raw JSON array of user ids and checks they exist.
func (s *Sim) userList(w http.ResponseWriter, r *http.Request) ([]int, bool) {
	var ids []int
	if err := json.NewDecoder(r.Body).Decode(&ids); err != nil || len(ids) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequestError", "Body must be a JSON array of user ids")
		return nil, false
	}
	for _, id := range ids {
		if s.users[id] == nil {
			writeError(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "Validation failed: user "+strconv.Itoa(id)+" does not exist")
			return nil, false
		}
	}
	return ids, true
}

func (s *Sim) addRoleUsers(w http.ResponseWriter, r *http.Request) {
	role, ok := s.roleByPath(w, r)
	if !ok {
		return
	}
	ids, ok := s.userList(w, r)
	if !ok {
		return
	}
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		u := s.users[id]
		if !slices.Contains(u.RoleIDs, role.ID) {
			u.RoleIDs = append(u.RoleIDs, role.ID)
			slices.Sort(u.RoleIDs)
			u.UpdatedAt = s.now()
			s.record(Event{EventTypeID: EventUserAssignedRole, UserID: id, UserName: displayName(u), RoleID: role.ID, RoleName: role.Name, ClientID: clientOf(r)})
		}
		out = append(out, map[string]any{"id": id})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) removeRoleUsers(w http.ResponseWriter, r *http.Request) {
	role, ok := s.roleByPath(w, r)
	if !ok {
		return
	}
	ids, ok := s.userList(w, r)
	if !ok {
		return
	}
	for _, id := range ids {
		u := s.users[id]
		if i := slices.Index(u.RoleIDs, role.ID); i >= 0 {
			u.RoleIDs = slices.Delete(u.RoleIDs, i, i+1)
			u.UpdatedAt = s.now()
			s.record(Event{EventTypeID: EventUserUnassignedRole, UserID: id, UserName: displayName(u), RoleID: role.ID, RoleName: role.Name, ClientID: clientOf(r)})
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func eventWire(e Event, account int) map[string]any {
	opt := func(n int) any {
		if n == 0 {
			return nil
		}
		return n
	}
	return map[string]any{
		"id":              e.ID,
		"created_at":      e.CreatedAt.Format("2006-01-02T15:04:05.000Z"),
		"account_id":      account,
		"user_id":         opt(e.UserID),
		"user_name":       nullable(e.UserName),
		"event_type_id":   e.EventTypeID,
		"actor_user_id":   nil,
		"actor_user_name": nil,
		"actor_system":    nullable(e.ActorSystem),
		"client_id":       nullable(e.ClientID),
		"role_id":         opt(e.RoleID),
		"role_name":       nullable(e.RoleName),
		"custom_message":  nullable(e.CustomMessage),
		"ipaddr":          "127.0.0.1",
	}
}

// listEvents serves GET /api/1/events (v1 envelope, 50 per page).
func (s *Sim) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since, until time.Time
	for _, p := range []struct {
		key string
		dst *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeV1Error(w, http.StatusBadRequest, p.key+" must be an ISO8601 timestamp")
				return
			}
			*p.dst = t
		}
	}
	var sel []Event
	for _, e := range s.events {
		switch {
		case q.Get("client_id") != "" && e.ClientID != q.Get("client_id"):
		case q.Get("user_id") != "" && strconv.Itoa(e.UserID) != q.Get("user_id"):
		case q.Get("event_type_id") != "" && !slices.Contains(strings.Split(q.Get("event_type_id"), ","), strconv.Itoa(e.EventTypeID)):
		case !since.IsZero() && e.CreatedAt.Before(since):
		case !until.IsZero() && e.CreatedAt.After(until):
		default:
			sel = append(sel, e)
		}
	}
	offset := 0
	if c := q.Get("after_cursor"); c != "" {
		o, ok := parseCursor(c)
		if !ok {
			writeV1Error(w, http.StatusBadRequest, "Invalid cursor")
			return
		}
		offset = o
	}
	end := min(offset+eventsPage, len(sel))
	data := make([]any, 0, max(end-offset, 0))
	for i := offset; i < end; i++ {
		data = append(data, eventWire(sel[i], s.opts.AccountID))
	}
	pg := map[string]any{"before_cursor": nil, "after_cursor": nil, "previous_link": nil, "next_link": nil}
	if end < len(sel) {
		pg["after_cursor"] = cursor(end)
	}
	if offset > 0 {
		pg["before_cursor"] = cursor(max(offset-eventsPage, 0))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":     map[string]any{"error": false, "code": 200, "type": "success", "message": "Success"},
		"pagination": pg,
		"data":       data,
	})
}

func writeV1Error(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": map[string]any{"error": true, "code": status, "type": "bad request", "message": msg}})
}
