package absorb

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

const (
	pageLimit  = 1000 // Absorb's maximum _limit
	maxOffset  = 65535
	uploadMax  = 200 // rows per POST /users/upload
	idsPerRead = 40  // ids per "id eq guid'…' or …" filter
)

// textFields names the Absorb user fields a learner's Fields map onto
// under the same name.
func textFields() []string {
	return []string{
		"middleName", "jobTitle", "employeeNumber", "location", "phone",
		"address", "address2", "city", "postalCode", "dateHired", "dateTerminated",
		"notes", "referenceNumber", "provinceId", "countryId",
	}
}

// customFieldKind says which kind of custom field key names (string1..30,
// decimal1..5, datetime1..5, bool1..5).
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

// writableField reports whether key is a text field SetGroups can use.
func writableField(key string) bool {
	if cf, ok := strings.CutPrefix(key, "customFields."); ok {
		kind, ok := customFieldKind(cf)
		return ok && kind == "string"
	}
	return slices.Contains(textFields(), key) && key != "dateHired" && key != "dateTerminated" &&
		key != "provinceId" && key != "countryId"
}

// user is an Absorb user as read: every field is kept, so a PUT sends
// back what learnerlink does not manage.
type user map[string]any

func (u user) str(key string) string { return text(u[key]) }

// text renders a JSON value as the text learnerlink compares and stores.
func text(v any) string { return vendorhttp.Text(v) }

func (u user) learner() connector.Learner {
	l := connector.Learner{
		ID:         u.str("id"),
		ExternalID: u.str("externalId"),
		UserName:   u.str("username"),
		Email:      u.str("emailAddress"),
		FirstName:  u.str("firstName"),
		LastName:   u.str("lastName"),
		Active:     u.str("activeStatus") == "0",
		Fields:     map[string]string{},
	}
	for _, k := range append(textFields(), "departmentId", "supervisorId") {
		if v := u.str(k); v != "" {
			l.Fields[k] = v
		}
	}
	if cf, ok := u["customFields"].(map[string]any); ok {
		for k, v := range cf {
			if s := text(v); s != "" {
				l.Fields["customFields."+k] = s
			}
		}
	}
	return l
}

// resolved is what a learner's Fields need from Absorb before writing.
type resolved struct {
	departmentID string // "" leaves departmentId alone
	supervisor   *string
}

// resolve looks up the department and supervisor ids a learner's Fields
// name. create is true for new learners, which always need a department.
func (c *Connector) resolve(ctx context.Context, op string, l connector.Learner, create bool) (resolved, error) {
	var r resolved
	id, hasID := l.Fields["departmentId"]
	name, hasName := l.Fields["departmentName"]
	switch {
	case hasID && id != "":
		r.departmentID = id
	case hasName || create || hasID:
		d, err := c.department(ctx, op, name)
		if err != nil {
			return r, err
		}
		r.departmentID = d
	}
	if ext, ok := l.Fields["supervisorExternalId"]; ok {
		if ext == "" {
			empty := ""
			r.supervisor = &empty
		} else {
			sid, err := c.supervisor(ctx, ext)
			if err != nil {
				return r, err
			}
			if sid != "" {
				r.supervisor = &sid
			}
		}
	}
	return r, nil
}

// supervisor finds the manager's Absorb id by external id; "" when the
// manager is not (or not unambiguously) there yet.
func (c *Connector) supervisor(ctx context.Context, externalID string) (string, error) {
	found, err := c.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: externalID})
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		c.log.LogAttrs(ctx, slog.LevelDebug, "absorb: supervisor not resolved; left unset", slog.Int("matches", len(found)))
		return "", nil
	}
	return found[0].ID, nil
}

// apply writes l's values into u and returns the names of the fields that
// changed.
func (c *Connector) apply(ctx context.Context, u user, l connector.Learner, r resolved) ([]string, error) {
	var changed []string
	for _, f := range []struct{ key, v string }{
		{"username", l.UserName}, {"firstName", l.FirstName}, {"lastName", l.LastName},
		{"emailAddress", l.Email}, {"externalId", l.ExternalID},
	} {
		if f.v != "" && setField(u, f.key, f.v) { // never blank a required or key field
			changed = append(changed, f.key)
		}
	}
	status := 1 // inactive
	if l.Active {
		status = 0
	}
	if setField(u, "activeStatus", json.Number(strconv.Itoa(status))) {
		changed = append(changed, "activeStatus")
	}
	if r.departmentID != "" && setField(u, "departmentId", r.departmentID) {
		changed = append(changed, "departmentId")
	}
	if r.supervisor != nil && setField(u, "supervisorId", orNil(*r.supervisor)) {
		changed = append(changed, "supervisorId")
	}
	more, err := c.applyFields(ctx, u, l.Fields)
	return append(changed, more...), err
}

// setField sets u[key] to v and reports whether the value changed.
func setField(u user, key string, v any) bool {
	if text(u[key]) == text(v) {
		return false
	}
	u[key] = v
	return true
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// applyFields writes the plain and custom fields of a learner's Fields
// into u ("" clears) and returns the names of those that changed. Keys
// resolved elsewhere (department, supervisor) are skipped; unknown keys
// are logged by name and ignored.
func (c *Connector) applyFields(ctx context.Context, u user, fields map[string]string) ([]string, error) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var changed, unknown []string
	for _, k := range keys {
		v := fields[k]
		switch {
		case k == "departmentName" || k == "departmentId" || k == "supervisorExternalId":
		case slices.Contains(textFields(), k):
			if setField(u, k, orNil(v)) {
				changed = append(changed, k)
			}
		case strings.HasPrefix(k, "customFields."):
			cfKey := strings.TrimPrefix(k, "customFields.")
			kind, ok := customFieldKind(cfKey)
			if !ok {
				unknown = append(unknown, k)
				continue
			}
			val, err := customValue(kind, v)
			if err != nil {
				return nil, &connector.Error{Op: "absorb.map", Err: fmt.Errorf("field %s: %w", k, err)}
			}
			cf, _ := u["customFields"].(map[string]any)
			if cf == nil {
				cf = map[string]any{}
				u["customFields"] = cf
			}
			if text(cf[cfKey]) != text(val) {
				cf[cfKey] = val
				changed = append(changed, k)
			}
		default:
			unknown = append(unknown, k)
		}
	}
	c.warned.Log(ctx, c.log, "absorb: ignoring fields Absorb does not have", unknown)
	return changed, nil
}

func customValue(kind, v string) (any, error) {
	if v == "" {
		return nil, nil
	}
	switch kind {
	case "decimal":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return nil, errors.New("not a number")
		}
		return json.Number(v), nil
	case "bool":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errors.New("not a boolean")
		}
		return b, nil
	}
	return v, nil
}

// secrets lists a learner's values to keep out of error text.
func secrets(l connector.Learner) []string {
	s := []string{l.UserName, l.Email, l.FirstName, l.LastName, l.ExternalID}
	for _, v := range l.Fields {
		s = append(s, v)
	}
	return s
}

func userPath(id string) string { return "/users/" + url.PathEscape(id) }

// Get reads a learner by Absorb id.
func (c *Connector) Get(ctx context.Context, id string) (*connector.Learner, error) {
	u, err := c.getUser(ctx, "absorb.get", id)
	if err != nil {
		return nil, err
	}
	l := u.learner()
	return &l, nil
}

func (c *Connector) getUser(ctx context.Context, op, id string) (user, error) {
	if id == "" {
		return nil, &connector.Error{Op: op, NotFound: true, Err: errors.New("empty learner id")}
	}
	var u user
	if err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: userPath(id)}, &u); err != nil {
		return nil, err
	}
	if u == nil {
		return nil, &connector.Error{Op: op, Err: errors.New("empty user in response")}
	}
	return u, nil
}

// Quote renders s as an OData string literal: single quotes, each quote
// inside doubled.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Find returns the learners whose key field equals the value.
func (c *Connector) Find(ctx context.Context, key connector.Key) ([]connector.Learner, error) {
	const op = "absorb.find"
	fields := map[connector.KeyKind]string{
		connector.KeyExternalID:     "externalId",
		connector.KeyUserName:       "username",
		connector.KeyEmail:          "emailAddress",
		connector.KeyEmployeeNumber: "employeeNumber",
	}
	f, ok := fields[key.Kind]
	if !ok {
		return nil, &connector.Error{Op: op, Err: fmt.Errorf("unsupported key kind %q", key.Kind)}
	}
	if key.Value == "" {
		return nil, nil
	}
	// One page: a key matching more than 1000 learners is a data problem
	// the caller reports as ambiguous anyway.
	users, _, err := c.listUsers(ctx, op, f+" eq "+Quote(key.Value), 0, []string{key.Value})
	if err != nil {
		return nil, err
	}
	out := make([]connector.Learner, 0, len(users))
	for _, u := range users {
		out = append(out, u.learner())
	}
	return out, nil
}

type userPage struct {
	TotalItems    int    `json:"totalItems"`
	ReturnedItems int    `json:"returnedItems"`
	Limit         int    `json:"limit"`
	Offset        int    `json:"offset"`
	Users         []user `json:"users"`
}

// listUsers reads one page (offset is a page index) of users matching
// filter ("" for all) and says whether more pages follow.
func (c *Connector) listUsers(ctx context.Context, op, filter string, offset int, secrets []string) ([]user, bool, error) {
	q := url.Values{"_limit": {strconv.Itoa(pageLimit)}, "_offset": {strconv.Itoa(offset)}}
	if filter != "" {
		q.Set("_filter", filter)
	}
	var p userPage
	if err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: "/users", Query: q, Secrets: secrets}, &p); err != nil {
		return nil, false, err
	}
	// Absorb's rule is "increment _offset until an empty page"; a short
	// page, or totalItems when present, saves that last call.
	more := len(p.Users) >= pageLimit && offset < maxOffset && (p.TotalItems == 0 || (offset+1)*pageLimit < p.TotalItems)
	return p.Users, more, nil
}

// List returns one page of learners; the cursor is Absorb's page index.
func (c *Connector) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	const op = "absorb.list"
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 || n > maxOffset {
			return nil, "", &connector.Error{Op: op, Err: fmt.Errorf("bad cursor %q", cursor)}
		}
		offset = n
	}
	users, more, err := c.listUsers(ctx, op, "", offset, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]connector.Learner, 0, len(users))
	for _, u := range users {
		out = append(out, u.learner())
	}
	next := ""
	if more {
		next = strconv.Itoa(offset + 1)
	}
	return out, next, nil
}

// Create creates the learner with a strong random password (SSO portals
// never use it; Absorb may require one) and returns the Absorb id.
func (c *Connector) Create(ctx context.Context, l connector.Learner) (string, error) {
	const op = "absorb.create"
	if l.UserName == "" || l.FirstName == "" || l.LastName == "" {
		return "", &connector.Error{Op: op, Err: errors.New("username, first name and last name are required")}
	}
	r, err := c.resolve(ctx, op, l, true)
	if err != nil {
		return "", err
	}
	u := user{}
	if _, err := c.apply(ctx, u, l, r); err != nil {
		return "", err
	}
	pw, err := password()
	if err != nil {
		return "", &connector.Error{Op: op, Err: err}
	}
	u["password"] = pw
	var created any
	sec := append(secrets(l), pw)
	if err := c.do(ctx, call{Op: op, Method: http.MethodPost, Path: "/users", Body: u, Secrets: sec}, &created); err != nil {
		return "", err
	}
	if id := idOf(created); id != "" {
		return id, nil
	}
	// The answer's shape is not documented; find what we just made.
	found, err := c.Find(ctx, connector.Key{Kind: connector.KeyUserName, Value: l.UserName})
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", &connector.Error{Op: op, Retryable: true, Err: errors.New("created, but the new learner's id is unknown")}
	}
	return found[0].ID, nil
}

// idOf reads an id from an answer that is either the id (a JSON string)
// or an object carrying it.
func idOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		for _, k := range []string{"id", "Id", "ID", "userId"} {
			if s, ok := x[k].(string); ok && s != "" {
				return s
			}
		}
	}
	return ""
}

// Update reads the learner, merges l into it and, when something changed,
// PUTs the whole record back: Absorb's PUT replaces, so fields learnerlink
// does not manage must be sent as they are.
func (c *Connector) Update(ctx context.Context, l connector.Learner) error {
	const op = "absorb.update"
	u, err := c.getUser(ctx, op, l.ID)
	if err != nil {
		return err
	}
	r, err := c.resolve(ctx, op, l, false)
	if err != nil {
		return err
	}
	changed, err := c.apply(ctx, u, l, r)
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "absorb: updating learner", slog.String("id", l.ID), slog.Any("fields", changed))
	return c.do(ctx, call{Op: op, Method: http.MethodPut, Path: userPath(l.ID), Body: u, Secrets: secrets(l)}, nil)
}

// UpsertBatch creates or updates many learners with POST /users/upload,
// 200 per call. Learners with an ID are updated (merged onto their current
// record, read in batches); the others are created and must not exist yet.
// It returns the Absorb id of every row that succeeded, by index into ls,
// and per-row errors (errs[i] nil when row i succeeded). Absorb does not
// say why a row failed: retry such rows one by one (Create/Update) for the
// reason.
func (c *Connector) UpsertBatch(ctx context.Context, ls []connector.Learner) (map[int]string, []error) {
	const op = "absorb.upload"
	ids := map[int]string{}
	errs := make([]error, len(ls))
	for start := 0; start < len(ls); start += uploadMax {
		end := min(start+uploadMax, len(ls))
		c.uploadChunk(ctx, op, ls, start, end, ids, errs)
	}
	return ids, errs
}

func (c *Connector) uploadChunk(ctx context.Context, op string, ls []connector.Learner, start, end int, ids map[int]string, errs []error) {
	failAll := func(idx []int, err error) {
		for _, i := range idx {
			errs[i] = err
		}
	}
	var existing []string
	for i := start; i < end; i++ {
		if ls[i].ID != "" {
			existing = append(existing, ls[i].ID)
		}
	}
	current, err := c.usersByID(ctx, op, existing)
	if err != nil {
		idx := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			idx = append(idx, i)
		}
		failAll(idx, err)
		return
	}
	var rows []user
	var rowIdx []int
	var sec []string
	for i := start; i < end; i++ {
		l := ls[i]
		u := user{}
		if l.ID != "" {
			cur, ok := current[strings.ToLower(l.ID)]
			if !ok {
				errs[i] = &connector.Error{Op: op, NotFound: true, Err: errors.New("learner not found")}
				continue
			}
			u = cur
		} else if l.UserName == "" || l.FirstName == "" || l.LastName == "" {
			errs[i] = &connector.Error{Op: op, Err: errors.New("username, first name and last name are required")}
			continue
		}
		r, err := c.resolve(ctx, op, l, l.ID == "")
		if err != nil {
			errs[i] = err
			continue
		}
		if _, err := c.apply(ctx, u, l, r); err != nil {
			errs[i] = err
			continue
		}
		if l.ID == "" {
			pw, err := password()
			if err != nil {
				errs[i] = &connector.Error{Op: op, Err: err}
				continue
			}
			u["password"] = pw
			sec = append(sec, pw)
		}
		rows = append(rows, u)
		rowIdx = append(rowIdx, i)
		sec = append(sec, secrets(l)...)
	}
	if len(rows) == 0 {
		return
	}
	var answer []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	if err := c.do(ctx, call{Op: op, Method: http.MethodPost, Path: "/users/upload", Body: rows, Secrets: sec}, &answer); err != nil {
		failAll(rowIdx, err)
		return
	}
	byID, byName := map[string]string{}, map[string]string{}
	for _, kv := range answer {
		byID[strings.ToLower(kv.Key)] = kv.Key
		byName[strings.ToLower(kv.Value)] = kv.Key
	}
	for n, i := range rowIdx {
		id := ""
		if ls[i].ID != "" {
			id = byID[strings.ToLower(ls[i].ID)]
		} else {
			id = byName[strings.ToLower(text(rows[n]["username"]))]
		}
		if id == "" {
			errs[i] = &connector.Error{Op: op, Err: errors.New("absorb rejected the row without saying why")}
			continue
		}
		ids[i] = id
	}
}

// usersByID reads the current records of the given learners, keyed by
// lower-cased id, with filters of idsPerRead ids each.
func (c *Connector) usersByID(ctx context.Context, op string, ids []string) (map[string]user, error) {
	out := map[string]user{}
	for start := 0; start < len(ids); start += idsPerRead {
		chunk := ids[start:min(start+idsPerRead, len(ids))]
		terms := make([]string, len(chunk))
		for i, id := range chunk {
			terms[i] = "id eq guid" + Quote(id)
		}
		users, _, err := c.listUsers(ctx, op, strings.Join(terms, " or "), 0, nil)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			out[strings.ToLower(u.str("id"))] = u
		}
	}
	return out, nil
}

// password returns a random 24-character password with upper and lower
// case letters, digits and symbols, to satisfy portal complexity rules.
func password() (string, error) {
	sets := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!#$%*+-=?@^_"}
	all := strings.Join(sets, "")
	pick := func(s string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(s))))
		if err != nil {
			return 0, fmt.Errorf("random password: %w", err)
		}
		return s[n.Int64()], nil
	}
	b := make([]byte, 24)
	for i := range b {
		set := all
		if i < len(sets) {
			set = sets[i] // one of each kind
		}
		ch, err := pick(set)
		if err != nil {
			return "", err
		}
		b[i] = ch
	}
	for i := len(b) - 1; i > 0; i-- { // Fisher–Yates, so the kinds are not in fixed places
		n, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("random password: %w", err)
		}
		j := n.Int64()
		b[i], b[j] = b[j], b[i]
	}
	return string(b), nil
}
