package absorbsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// User is an Absorb user as the v2 UserResource describes it.
type User struct {
	ID               string         `json:"id"`
	DepartmentID     string         `json:"departmentId"`
	FirstName        string         `json:"firstName"`
	MiddleName       string         `json:"middleName"`
	LastName         string         `json:"lastName"`
	Username         string         `json:"username"`
	Password         string         `json:"-"` // write-only; never answered
	EmailAddress     string         `json:"emailAddress"`
	CCEmailAddresses []string       `json:"ccEmailAddresses"`
	ExternalID       string         `json:"externalId"`
	LanguageID       *int           `json:"languageId"`
	Gender           int            `json:"gender"`
	Address          string         `json:"address"`
	Address2         string         `json:"address2"`
	City             string         `json:"city"`
	ProvinceID       string         `json:"provinceId"`
	CountryID        string         `json:"countryId"`
	PostalCode       string         `json:"postalCode"`
	Phone            string         `json:"phone"`
	EmployeeNumber   string         `json:"employeeNumber"`
	Location         string         `json:"location"`
	JobTitle         string         `json:"jobTitle"`
	ReferenceNumber  string         `json:"referenceNumber"`
	DateHired        string         `json:"dateHired"`
	DateTerminated   string         `json:"dateTerminated"`
	Notes            string         `json:"notes"`
	CustomFields     map[string]any `json:"customFields"`
	RoleIDs          []string       `json:"roleIds"`
	ActiveStatus     int            `json:"activeStatus"` // 0 active, 1 inactive
	IsLearner        bool           `json:"isLearner"`
	IsAdmin          bool           `json:"isAdmin"`
	IsInstructor     bool           `json:"isInstructor"`
	IsManager        bool           `json:"isManager"`
	SupervisorID     string         `json:"supervisorId"`
	DateAdded        time.Time      `json:"dateAdded"`
	DateEdited       time.Time      `json:"dateEdited"`
}

// userIn is a user as written: the password is accepted, read-only fields
// are ignored.
type userIn struct {
	User
	Password *string `json:"password"`
}

// customFieldKind says which kind of custom field key names (string1..30,
// decimal1..5, datetime1..5, bool1..5), ok false for none.
func customFieldKind(key string) (string, bool) {
	for _, k := range []struct {
		prefix string
		max    int
	}{{"string", 30}, {"decimal", 5}, {"datetime", 5}, {"bool", 5}} {
		rest, ok := strings.CutPrefix(key, k.prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > k.max || strconv.Itoa(n) != rest {
			return "", false
		}
		return k.prefix, true
	}
	return "", false
}

// wire renders u as Absorb answers it: empty text is null.
func (u *User) wire() map[string]any {
	b, _ := json.Marshal(u)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	nullEmpty(m)
	if cf, ok := m["customFields"].(map[string]any); ok {
		nullEmpty(cf)
	}
	m["hasUsername"] = u.Username != ""
	return m
}

func nullEmpty(m map[string]any) {
	for k, v := range m {
		if s, ok := v.(string); ok && s == "" {
			m[k] = nil
		}
	}
}

// field answers a user's filterable field by lower-cased name.
func (u *User) field(name string) (any, bool) {
	str := func(s string) (any, bool) {
		if s == "" {
			return nil, true
		}
		return s, true
	}
	if key, ok := strings.CutPrefix(name, "customfields/"); ok {
		if _, known := customFieldKind(key); !known {
			return nil, false
		}
		switch v := u.CustomFields[key].(type) {
		case nil:
			return nil, true
		case string:
			return str(v)
		case json.Number:
			f, _ := v.Float64()
			return f, true
		default:
			return v, true
		}
	}
	switch name {
	case "id":
		return str(u.ID)
	case "username":
		return str(u.Username)
	case "emailaddress":
		return str(u.EmailAddress)
	case "externalid":
		return str(u.ExternalID)
	case "employeenumber":
		return str(u.EmployeeNumber)
	case "departmentid":
		return str(u.DepartmentID)
	case "firstname":
		return str(u.FirstName)
	case "lastname":
		return str(u.LastName)
	case "middlename":
		return str(u.MiddleName)
	case "jobtitle":
		return str(u.JobTitle)
	case "location":
		return str(u.Location)
	case "supervisorid":
		return str(u.SupervisorID)
	case "activestatus":
		return float64(u.ActiveStatus), true
	case "isadmin":
		return u.IsAdmin, true
	case "islearner":
		return u.IsLearner, true
	case "dateadded":
		return u.DateAdded.UTC().Format(time.RFC3339), true
	case "dateedited":
		return u.DateEdited.UTC().Format(time.RFC3339), true
	}
	return nil, false
}

// textField answers a string field for automatic group rules.
func (u *User) textField(name string) string {
	v, ok := u.field(strings.ToLower(name))
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

// SeedUser stores a user as is (no validation), as if it existed before
// the integration. It fills ID, DepartmentID (the Root department) and the
// dates when empty, and returns the id.
func (s *Sim) SeedUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.ID = strings.ToLower(u.ID)
	if u.ID == "" {
		u.ID = s.newID()
	}
	if u.DepartmentID == "" {
		u.DepartmentID = s.defaultDept
	}
	if u.DateAdded.IsZero() {
		u.DateAdded = s.now().UTC()
	}
	if u.DateEdited.IsZero() {
		u.DateEdited = u.DateAdded
	}
	if _, ok := s.users[u.ID]; !ok {
		s.userOrder = append(s.userOrder, u.ID)
	}
	cp := u
	s.users[u.ID] = &cp
	return u.ID
}

// Users returns a snapshot of every user, in creation order.
func (s *Sim) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.userOrder))
	for _, id := range s.userOrder {
		out = append(out, clone(s.users[id]))
	}
	return out
}

// User returns one user.
func (s *Sim) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[strings.ToLower(id)]
	if !ok {
		return User{}, false
	}
	return clone(u), true
}

func clone(u *User) User {
	c := *u
	c.CCEmailAddresses = append([]string(nil), u.CCEmailAddresses...)
	c.RoleIDs = append([]string(nil), u.RoleIDs...)
	if u.CustomFields != nil {
		c.CustomFields = make(map[string]any, len(u.CustomFields))
		for k, v := range u.CustomFields {
			c.CustomFields[k] = v
		}
	}
	if u.LanguageID != nil {
		l := *u.LanguageID
		c.LanguageID = &l
	}
	return c
}

func (s *Sim) listUsers(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	f, ok := filterOf(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var hits []*User
	var ferr error
	for _, id := range s.userOrder {
		u := s.users[id]
		in, err := keep(r.Context(), f, u.field)
		if err != nil {
			ferr = err
			break
		}
		if in {
			hits = append(hits, u)
		}
	}
	env := envelope("users", hits, offset, limit)
	pageUsers := env["users"].([]*User)
	out := make([]map[string]any, len(pageUsers))
	for i, u := range pageUsers {
		out[i] = u.wire()
	}
	env["users"] = out
	s.mu.Unlock()
	if ferr != nil {
		writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The filter is invalid.")
		return
	}
	writeJSON(w, http.StatusOK, env)
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u, ok := s.users[strings.ToLower(r.PathValue("id"))]
	var m map[string]any
	if ok {
		m = u.wire()
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "User not found.")
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// readUser decodes one user body; a type mismatch is a 400.
func readUser(r *http.Request) (*userIn, error) {
	var in userIn
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

func (s *Sim) createUser(w http.ResponseWriter, r *http.Request) {
	in, err := readUser(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "The request body is invalid.")
		return
	}
	s.mu.Lock()
	u, verrs := s.store(in, nil, true)
	var m map[string]any
	if u != nil {
		m = u.wire()
	}
	s.mu.Unlock()
	if len(verrs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "One or more validation errors occurred.", verrs...)
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

func (s *Sim) putUser(w http.ResponseWriter, r *http.Request) {
	in, err := readUser(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "The request body is invalid.")
		return
	}
	s.mu.Lock()
	old, ok := s.users[strings.ToLower(r.PathValue("id"))]
	var u *User
	var verrs []string
	if ok {
		u, verrs = s.store(in, old, false)
	}
	var m map[string]any
	if u != nil {
		m = u.wire()
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "User not found.")
	case len(verrs) > 0:
		writeError(w, http.StatusUnprocessableEntity, "One or more validation errors occurred.", verrs...)
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// uploadUsers is POST /users/upload: up to 200 rows, each created or
// updated; the answer names the rows that succeeded.
func (s *Sim) uploadUsers(w http.ResponseWriter, r *http.Request) {
	var rows []json.RawMessage
	if err := decodeBody(r, &rows); err != nil {
		writeError(w, http.StatusBadRequest, "The request body is invalid.")
		return
	}
	if len(rows) > 200 {
		writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "A maximum of 200 users can be uploaded at once.")
		return
	}
	type kv struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	out := []kv{}
	s.mu.Lock()
	for _, raw := range rows {
		var in userIn
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			continue // a malformed row fails alone
		}
		var old *User
		if in.ID != "" {
			old = s.users[strings.ToLower(in.ID)]
			if old == nil {
				continue
			}
		} else if in.Username != "" {
			old = s.byUsername(in.Username)
		}
		u, verrs := s.store(&in, old, old == nil)
		if len(verrs) == 0 && u != nil {
			out = append(out, kv{Key: u.ID, Value: u.Username})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) byUsername(name string) *User {
	for _, id := range s.userOrder {
		if u := s.users[id]; strings.EqualFold(u.Username, name) {
			return u
		}
	}
	return nil
}

// store validates in and writes it: a new user when old is nil, else a
// full replacement of old. The caller holds s.mu.
func (s *Sim) store(in *userIn, old *User, create bool) (*User, []string) {
	u := in.User
	var verrs []string
	req := func(v, name string) {
		if strings.TrimSpace(v) == "" {
			verrs = append(verrs, "The "+name+" field is required.")
		}
	}
	req(u.Username, "Username")
	req(u.FirstName, "FirstName")
	req(u.LastName, "LastName")
	req(u.DepartmentID, "DepartmentId")
	if u.DepartmentID != "" {
		if _, ok := s.depts[strings.ToLower(u.DepartmentID)]; !ok {
			verrs = append(verrs, "The department does not exist.")
		}
	}
	if u.SupervisorID != "" {
		if _, ok := s.users[strings.ToLower(u.SupervisorID)]; !ok {
			verrs = append(verrs, "The supervisor does not exist.")
		}
	}
	if u.EmailAddress != "" {
		if _, err := mail.ParseAddress(u.EmailAddress); err != nil {
			verrs = append(verrs, "The EmailAddress field is not a valid e-mail address.")
		}
	}
	if u.ActiveStatus != 0 && u.ActiveStatus != 1 {
		verrs = append(verrs, "The ActiveStatus field is invalid.")
	}
	if len(u.CCEmailAddresses) > 5 {
		verrs = append(verrs, "A maximum of 5 CC email addresses is allowed.")
	}
	for k, v := range u.CustomFields {
		kind, ok := customFieldKind(k)
		if !ok {
			verrs = append(verrs, "Unknown custom field "+k+".")
			continue
		}
		if v == nil {
			continue
		}
		switch kind {
		case "string":
			if sv, ok := v.(string); !ok || len(sv) > 255 {
				verrs = append(verrs, "Custom field "+k+" must be text of at most 255 characters.")
			}
		case "decimal":
			if _, ok := v.(json.Number); !ok {
				verrs = append(verrs, "Custom field "+k+" must be a number.")
			}
		case "bool":
			if _, ok := v.(bool); !ok {
				verrs = append(verrs, "Custom field "+k+" must be a boolean.")
			}
		case "datetime":
			if sv, ok := v.(string); !ok || !validDate(sv) {
				verrs = append(verrs, "Custom field "+k+" must be a date.")
			}
		}
	}
	for _, d := range []struct{ name, v string }{{"DateHired", u.DateHired}, {"DateTerminated", u.DateTerminated}} {
		if d.v != "" && !validDate(d.v) {
			verrs = append(verrs, "The "+d.name+" field is not a valid date.")
		}
	}
	if in.Password != nil && *in.Password != "" && !strongPassword(*in.Password) {
		verrs = append(verrs, "The password does not meet the complexity requirements.")
	}
	self := ""
	if old != nil {
		self = old.ID
	}
	for _, id := range s.userOrder {
		o := s.users[id]
		if o.ID == self {
			continue
		}
		if u.Username != "" && strings.EqualFold(o.Username, u.Username) {
			verrs = append(verrs, "Username is already in use.")
		}
		if u.ExternalID != "" && strings.EqualFold(o.ExternalID, u.ExternalID) {
			verrs = append(verrs, "External ID is already in use.")
		}
	}
	if len(verrs) > 0 {
		return nil, verrs
	}
	now := s.now().UTC()
	if old == nil {
		if !create {
			return nil, []string{"The user does not exist."}
		}
		u.ID = s.newID()
		u.DateAdded = now
		s.userOrder = append(s.userOrder, u.ID)
	} else {
		u.ID = old.ID
		u.DateAdded = old.DateAdded
		u.Password = old.Password // write-only: kept unless sent
	}
	if in.Password != nil && *in.Password != "" {
		u.Password = *in.Password
	}
	u.DateEdited = now
	stored := clone(&u)
	s.users[u.ID] = &stored
	return &stored, nil
}

func validDate(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// strongPassword is the sim's portal policy: 8+ characters with upper,
// lower case and a digit.
func strongPassword(p string) bool {
	var up, low, dig bool
	for _, c := range p {
		switch {
		case unicode.IsUpper(c):
			up = true
		case unicode.IsLower(c):
			low = true
		case unicode.IsDigit(c):
			dig = true
		}
	}
	return len(p) >= 8 && up && low && dig
}
