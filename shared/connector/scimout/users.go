package scimout

import (
	"context"
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
)

// ErrMissingAttribute marks a learner that lacks an attribute the profile
// requires; such errors are permanent (fix the mapping or the IdP data).
var ErrMissingAttribute = errors.New("scimout: required attribute missing")

// DuplicateError is the Err of the Conflict *connector.Error that Create
// returns when the service provider answers 409 (uniqueness). Create has
// already re-run the lookups (externalId, then userName, then email) and
// reports what it found, so the worker can adopt Existing[0] when By is
// KeyExternalID, or after checking it otherwise; an empty Existing means
// the holder of the unique value is invisible to this client (e.g. a
// soft-deleted or archived account) and needs a human.
type DuplicateError struct {
	By       connector.KeyKind   // the key that matched ("" if none did)
	Existing []connector.Learner // what the lookup found
}

func (e *DuplicateError) Error() string {
	if len(e.Existing) == 0 {
		return "the service provider reports a duplicate, but no learner matches by externalId, userName or email"
	}
	ids := make([]string, len(e.Existing))
	for i, l := range e.Existing {
		ids[i] = l.ID
	}
	return fmt.Sprintf("the service provider reports a duplicate; learner(s) %s match by %s", strings.Join(ids, ", "), e.By)
}

// listResponse is RFC 7644 §3.4.2.
type listResponse struct {
	TotalResults int              `json:"totalResults"`
	StartIndex   int              `json:"startIndex"`
	ItemsPerPage int              `json:"itemsPerPage"`
	Resources    []map[string]any `json:"Resources"`
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

type patchBody struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

func newPatch(ops []patchOp) patchBody {
	return patchBody{Schemas: []string{urnPatchOp}, Operations: ops}
}

func userPath(id string) string { return "/Users/" + url.PathEscape(id) }

// Get reads a learner by the service provider's id.
func (c *Connector) Get(ctx context.Context, id string) (*connector.Learner, error) {
	res, err := c.getUser(ctx, "scimout.get", id)
	if err != nil {
		return nil, err
	}
	l := c.toLearner(res)
	return &l, nil
}

// getUser reads the raw resource and remembers its version.
func (c *Connector) getUser(ctx context.Context, op, id string) (map[string]any, error) {
	if id == "" {
		return nil, &connector.Error{Op: op, NotFound: true, Err: errors.New("empty learner id")}
	}
	var res map[string]any
	resp, err := c.do(ctx, call{op: op, method: http.MethodGet, path: userPath(id)}, &res)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, &connector.Error{Op: op, Status: resp.status, Retryable: true, Err: errors.New("empty user resource")}
	}
	c.rememberVersion(id, versionOf(res, resp.header))
	return res, nil
}

// Find returns the learners matching key. userName and email compare
// case-insensitively, externalId exactly (RFC 7643 caseExact). Results are
// checked client-side as well, because some servers ignore filters they
// do not support and return everyone. Servers that refuse an email or
// employeeNumber filter (400 invalidFilter, 501) yield no match, logged
// once: adoption by that key is then skipped rather than blocking syncs.
func (c *Connector) Find(ctx context.Context, key connector.Key) ([]connector.Learner, error) {
	const op = "scimout.find"
	if key.Value == "" {
		return nil, &connector.Error{Op: op, Err: fmt.Errorf("empty %s to look up", key.Kind)}
	}
	var path string
	switch key.Kind {
	case connector.KeyExternalID:
		path = "externalId"
	case connector.KeyUserName:
		path = "userName"
	case connector.KeyEmail:
		path = "emails.value"
	case connector.KeyEmployeeNumber:
		path = URNEnterprise + ":employeeNumber"
		if ap, ok := c.fields["employeeNumber"]; ok {
			path = ap.raw
		}
	default:
		return nil, &connector.Error{Op: op, Err: fmt.Errorf("unsupported key kind %q", key.Kind)}
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	found, err := c.search(ctx, op, eqFilter(path, key.Value), caps.pageSize(), []string{key.Value})
	var ce *connector.Error
	if errors.As(err, &ce) && (key.Kind == connector.KeyEmail || key.Kind == connector.KeyEmployeeNumber) &&
		(ce.Status == http.StatusNotImplemented || (ce.Status == http.StatusBadRequest && strings.EqualFold(scimTypeOf(err), "invalidFilter"))) {
		c.warnOnce(ctx, "filter:"+string(key.Kind), "scimout: the service provider refuses this lookup filter; no learner is adopted by it",
			slog.String("profile", c.cfg.Profile.Name), slog.String("key", string(key.Kind)))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]connector.Learner, 0, len(found))
	for _, res := range found {
		l := c.toLearner(res)
		if c.matches(res, l, key) {
			out = append(out, l)
		}
	}
	return out, nil
}

// maxFindPages bounds a lookup: a key matching more than a few pages of
// learners is a configuration problem, not something to page through.
const maxFindPages = 5

func (c *Connector) search(ctx context.Context, op, filterExpr string, count int, secrets []string) ([]map[string]any, error) {
	var all []map[string]any
	start := 1
	for page := 0; page < maxFindPages; page++ {
		var lr listResponse
		_, err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/Users", secrets: secrets, query: [][2]string{
			{"filter", filterExpr}, {"startIndex", strconv.Itoa(start)}, {"count", strconv.Itoa(count)},
		}}, &lr)
		if err != nil {
			return nil, err
		}
		for _, r := range lr.Resources {
			if r != nil {
				c.rememberVersion(idOf(r), versionOf(r, nil))
				all = append(all, r)
			}
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			break
		}
	}
	return all, nil
}

// matches checks a found resource against the key.
func (c *Connector) matches(res map[string]any, l connector.Learner, key connector.Key) bool {
	switch key.Kind {
	case connector.KeyExternalID:
		return l.ExternalID == key.Value
	case connector.KeyUserName:
		return strings.EqualFold(l.UserName, key.Value)
	case connector.KeyEmail:
		_, all := c.emails(res)
		return slices.ContainsFunc(all, func(s string) bool { return strings.EqualFold(s, key.Value) })
	case connector.KeyEmployeeNumber:
		return l.Fields["employeeNumber"] == key.Value || c.enterpriseEmployeeNumber(res) == key.Value
	}
	return false
}

// enterpriseEmployeeNumber reads the enterprise extension's employeeNumber
// (where Find looks when the profile does not map the field).
func (c *Connector) enterpriseEmployeeNumber(res map[string]any) string {
	ext, _ := getFold(res, URNEnterprise)
	m, _ := ext.(map[string]any)
	v, _ := getFold(m, "employeeNumber")
	s, _ := scalar(v)
	return s
}

// Create validates the learner against the profile and POSTs it. On 409
// it re-runs the lookups and returns a Conflict *connector.Error whose Err
// is a *DuplicateError (see there).
func (c *Connector) Create(ctx context.Context, l connector.Learner) (string, error) {
	const op = "scimout.create"
	if err := c.validate(op, l); err != nil {
		return "", err
	}
	res := map[string]any{"schemas": []any{URNUser}}
	c.merge(ctx, res, l)
	var out map[string]any
	resp, err := c.do(ctx, call{op: op, method: http.MethodPost, path: "/Users", body: res, secrets: learnerValues(l)}, &out)
	var ce *connector.Error
	if errors.As(err, &ce) && ce.Conflict {
		return "", c.duplicate(ctx, ce, l)
	}
	if err != nil {
		return "", err
	}
	id := idOf(out)
	if id == "" {
		return "", &connector.Error{Op: op, Status: resp.status, Err: errors.New("created user has no id")}
	}
	c.rememberVersion(id, versionOf(out, resp.header))
	return id, nil
}

// duplicate re-runs the lookups after a 409 and wraps what they find.
func (c *Connector) duplicate(ctx context.Context, ce *connector.Error, l connector.Learner) error {
	dup := &DuplicateError{}
	for _, k := range []connector.Key{
		{Kind: connector.KeyExternalID, Value: l.ExternalID},
		{Kind: connector.KeyUserName, Value: l.UserName},
		{Kind: connector.KeyEmail, Value: l.Email},
	} {
		if k.Value == "" {
			continue
		}
		found, err := c.Find(ctx, k)
		if err != nil {
			// The lookup failing is no reason to lose the conflict: report
			// it as a retryable duplicate, the next attempt looks again.
			return &connector.Error{Op: ce.Op, Status: ce.Status, Conflict: true, Retryable: connector.IsRetryable(err),
				Err: fmt.Errorf("%w; looking up the holder failed: %w", ce.Err, err)}
		}
		if len(found) > 0 {
			dup.By, dup.Existing = k.Kind, found
			break
		}
	}
	return &connector.Error{Op: ce.Op, Status: ce.Status, Conflict: true, Err: fmt.Errorf("%w: %w", ce.Err, dup)}
}

// Update makes learner l.ID carry l's values. With PATCH it sends explicit
// paths (If-Match when the version is known and ETags are supported);
// without, it reads, merges and PUTs the full resource, always carrying
// active. A 412 re-reads and re-applies once. Deactivation is active=false,
// never DELETE.
func (c *Connector) Update(ctx context.Context, l connector.Learner) error {
	const op = "scimout.update"
	if l.ID == "" {
		return &connector.Error{Op: op, Err: errors.New("learner has no id")}
	}
	// A deactivation must go through even when the identity lost a
	// required attribute; nothing empty is written anyway.
	if l.Active {
		if err := c.validate(op, l); err != nil {
			return err
		}
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	if caps.patch {
		return c.patchUser(ctx, op, l.ID, caps, c.patchOps(ctx, l), learnerValues(l))
	}
	return c.replaceUser(ctx, op, l.ID, caps, learnerValues(l), func(res map[string]any) error {
		c.merge(ctx, res, l)
		return nil
	})
}

// patchUser PATCHes id, re-reading once on 412 for a fresh version.
func (c *Connector) patchUser(ctx context.Context, op, id string, caps capabilities, ops []patchOp, secrets []string) error {
	for attempt := 0; ; attempt++ {
		cl := call{op: op, method: http.MethodPatch, path: userPath(id), body: newPatch(ops), secrets: secrets}
		if caps.etag {
			cl.ifMatch = c.knownVersion(id)
		}
		var out map[string]any
		resp, err := c.do(ctx, cl, &out)
		if err == nil {
			c.rememberVersion(id, versionOf(out, resp.header))
			return nil
		}
		if resp == nil || resp.status != http.StatusPreconditionFailed || attempt > 0 {
			return err
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "scimout: 412 on PATCH; re-reading the version", slog.String("op", op))
		if _, err := c.getUser(ctx, op, id); err != nil {
			return err
		}
	}
}

// replaceUser reads id, applies edit and PUTs the result with If-Match
// (when ETags are supported), re-reading and re-applying once on 412.
func (c *Connector) replaceUser(ctx context.Context, op, id string, caps capabilities, secrets []string, edit func(map[string]any) error) error {
	for attempt := 0; ; attempt++ {
		res, err := c.getUser(ctx, op, id)
		if err != nil {
			return err
		}
		version := versionOf(res, nil)
		for _, k := range []string{"meta", "groups", "password"} {
			if rk, ok := keyFold(res, k); ok {
				delete(res, rk) // read-only or write-only: not ours to send back
			}
		}
		if err := edit(res); err != nil {
			return err
		}
		cl := call{op: op, method: http.MethodPut, path: userPath(id), body: res, secrets: secrets}
		if caps.etag {
			cl.ifMatch = version
		}
		var out map[string]any
		resp, err := c.do(ctx, cl, &out)
		if err == nil {
			c.rememberVersion(id, versionOf(out, resp.header))
			return nil
		}
		if resp == nil || resp.status != http.StatusPreconditionFailed || attempt > 0 {
			return err
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "scimout: 412 on PUT; re-reading and re-applying", slog.String("op", op))
	}
}

// List returns one page of learners; the cursor is the next 1-based
// startIndex.
func (c *Connector) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	const op = "scimout.list"
	start := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return nil, "", &connector.Error{Op: op, Err: fmt.Errorf("invalid cursor %q", cursor)}
		}
		start = n
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, "", err
	}
	var lr listResponse
	if _, err := c.do(ctx, call{op: op, method: http.MethodGet, path: "/Users", query: [][2]string{
		{"startIndex", strconv.Itoa(start)}, {"count", strconv.Itoa(caps.pageSize())},
	}}, &lr); err != nil {
		return nil, "", err
	}
	out := make([]connector.Learner, 0, len(lr.Resources))
	for _, r := range lr.Resources {
		if r == nil {
			continue
		}
		out = append(out, c.toLearner(r))
	}
	next := start + len(lr.Resources)
	if len(lr.Resources) == 0 || next > lr.TotalResults {
		return out, "", nil
	}
	return out, strconv.Itoa(next), nil
}

// validate checks the profile's required attributes. The error names
// attributes, never values.
func (c *Connector) validate(op string, l connector.Learner) error {
	var missing []string
	for _, r := range c.cfg.Profile.Required {
		var v string
		switch r {
		case "userName":
			v = l.UserName
		case "givenName":
			v = l.FirstName
		case "familyName":
			v = l.LastName
		case "email":
			v = l.Email
		case "externalId":
			v = l.ExternalID
		default:
			v = l.Fields[r]
		}
		if strings.TrimSpace(v) == "" {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return &connector.Error{Op: op, Err: fmt.Errorf("%w: profile %s requires %s", ErrMissingAttribute, c.cfg.Profile.Name, strings.Join(missing, ", "))}
	}
	return nil
}

// merge writes l onto res (a full resource for POST or PUT): core values
// when non-empty, active always, mapped fields ("" removes).
func (c *Connector) merge(ctx context.Context, res map[string]any, l connector.Learner) {
	if l.UserName != "" {
		putFold(res, "userName", l.UserName)
	}
	if l.ExternalID != "" {
		putFold(res, "externalId", l.ExternalID)
	}
	if l.FirstName != "" || l.LastName != "" {
		k, _ := keyFold(res, "name")
		if k == "" {
			k = "name"
		}
		name, _ := res[k].(map[string]any)
		name = maps.Clone(name)
		if name == nil {
			name = map[string]any{}
		}
		if l.FirstName != "" {
			putFold(name, "givenName", l.FirstName)
		}
		if l.LastName != "" {
			putFold(name, "familyName", l.LastName)
		}
		res[k] = name
	}
	if d := displayName(l); d != "" && !c.displayMapped {
		putFold(res, "displayName", d)
	}
	putFold(res, "active", l.Active)
	if l.Email != "" {
		c.setEmail(res, l.Email)
	}
	for _, k := range slices.Sorted(maps.Keys(l.Fields)) {
		ap, ok := c.fields[k]
		if !ok {
			c.unmapped(ctx, k)
			continue
		}
		if v := l.Fields[k]; v == "" {
			ap.del(res)
		} else {
			ap.set(res, v)
			addSchema(res, ap.urn)
		}
	}
}

// setEmail makes the email of the profile's type (else the primary one,
// else a new one) carry v, as the primary address.
func (c *Connector) setEmail(res map[string]any, v string) {
	typ := c.cfg.Profile.emailType()
	k, _ := keyFold(res, "emails")
	if k == "" {
		k = "emails"
	}
	arr, _ := res[k].([]any)
	arr = slices.Clone(arr)
	pick := -1
	for i, e := range arr {
		m, _ := e.(map[string]any)
		if t, _ := getFold(m, "type"); t != nil && strings.EqualFold(fmt.Sprint(t), typ) {
			pick = i
			break
		}
	}
	if pick < 0 {
		for i, e := range arr {
			m, _ := e.(map[string]any)
			if p, _ := getFold(m, "primary"); p == true {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		arr = append(arr, map[string]any{"type": typ})
		pick = len(arr) - 1
	}
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		m = maps.Clone(m)
		if i == pick {
			putFold(m, "value", v)
			putFold(m, "primary", true)
		} else if p, _ := getFold(m, "primary"); p == true {
			putFold(m, "primary", false) // RFC 7643: at most one primary
		}
		arr[i] = m
	}
	res[k] = arr
}

// patchOps builds explicit-path operations for l: core values when
// non-empty, active always, mapped fields ("" removes).
func (c *Connector) patchOps(ctx context.Context, l connector.Learner) []patchOp {
	var ops []patchOp
	if l.UserName != "" {
		ops = append(ops, patchOp{Op: "replace", Path: "userName", Value: l.UserName})
	}
	if l.ExternalID != "" {
		ops = append(ops, patchOp{Op: "replace", Path: "externalId", Value: l.ExternalID})
	}
	if l.FirstName != "" {
		ops = append(ops, patchOp{Op: "replace", Path: "name.givenName", Value: l.FirstName})
	}
	if l.LastName != "" {
		ops = append(ops, patchOp{Op: "replace", Path: "name.familyName", Value: l.LastName})
	}
	if d := displayName(l); d != "" && !c.displayMapped {
		ops = append(ops, patchOp{Op: "replace", Path: "displayName", Value: d})
	}
	if l.Email != "" {
		// "add" creates the element when the user has no email of that type.
		ops = append(ops, patchOp{Op: "add", Path: `emails[type eq ` + quote(c.cfg.Profile.emailType()) + `].value`, Value: l.Email})
	}
	ops = append(ops, patchOp{Op: "replace", Path: "active", Value: l.Active})
	for _, k := range slices.Sorted(maps.Keys(l.Fields)) {
		ap, ok := c.fields[k]
		if !ok {
			c.unmapped(ctx, k)
			continue
		}
		ops = append(ops, ap.patchOp(l.Fields[k]))
	}
	return ops
}

func (c *Connector) unmapped(ctx context.Context, key string) {
	c.warnOnce(ctx, "field:"+key, "scimout: learner field not mapped by the profile; ignored",
		slog.String("profile", c.cfg.Profile.Name), slog.String("field", key))
}

func displayName(l connector.Learner) string {
	return strings.TrimSpace(l.FirstName + " " + l.LastName)
}

// addSchema lists an extension URN in schemas, as RFC 7643 §3 requires
// for a resource carrying the extension.
func addSchema(res map[string]any, urn string) {
	if urn == "" {
		return
	}
	k, _ := keyFold(res, "schemas")
	if k == "" {
		k = "schemas"
	}
	arr, _ := res[k].([]any)
	for _, s := range arr {
		if str, ok := s.(string); ok && strings.EqualFold(str, urn) {
			return
		}
	}
	res[k] = append(slices.Clone(arr), urn)
}

// toLearner reads a SCIM User.
func (c *Connector) toLearner(res map[string]any) connector.Learner {
	str := func(m map[string]any, k string) string {
		v, _ := getFold(m, k)
		s, _ := scalar(v)
		return s
	}
	l := connector.Learner{
		ID:         idOf(res),
		ExternalID: str(res, "externalId"),
		UserName:   str(res, "userName"),
		Active:     true, // absent: RFC 7643 gives no default; Okta and most servers treat absent as active
		Fields:     map[string]string{},
	}
	if name, ok := getFold(res, "name"); ok {
		if m, ok := name.(map[string]any); ok {
			l.FirstName, l.LastName = str(m, "givenName"), str(m, "familyName")
		}
	}
	if a, ok := getFold(res, "active"); ok {
		switch v := a.(type) {
		case bool:
			l.Active = v
		case string: // some servers send "True"/"False"
			if b, err := strconv.ParseBool(strings.ToLower(v)); err == nil {
				l.Active = b
			}
		}
	}
	l.Email, _ = c.emails(res)
	for k, ap := range c.fields {
		if v, ok := ap.get(res); ok && v != "" {
			l.Fields[k] = v
		}
	}
	return l
}

// emails returns the learner's email (the profile's type, else the
// primary, else the first) and all addresses.
func (c *Connector) emails(res map[string]any) (string, []string) {
	v, _ := getFold(res, "emails")
	arr, _ := v.([]any)
	typ := c.cfg.Profile.emailType()
	var all []string
	byType, primary, first := "", "", ""
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		val, _ := getFold(m, "value")
		s, _ := val.(string)
		if s == "" {
			continue
		}
		all = append(all, s)
		if first == "" {
			first = s
		}
		if t, _ := getFold(m, "type"); byType == "" && t != nil && strings.EqualFold(fmt.Sprint(t), typ) {
			byType = s
		}
		if p, _ := getFold(m, "primary"); primary == "" && p == true {
			primary = s
		}
	}
	for _, s := range []string{byType, primary, first} {
		if s != "" {
			return s, all
		}
	}
	return "", all
}

func idOf(res map[string]any) string {
	v, _ := getFold(res, "id")
	s, _ := scalar(v)
	return s
}

// versionOf is meta.version, else the ETag header.
func versionOf(res map[string]any, h http.Header) string {
	if m, ok := getFold(res, "meta"); ok {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := getFold(mm, "version"); ok {
				if s, ok := v.(string); ok && s != "" {
					return s
				}
			}
		}
	}
	if h != nil {
		return h.Get("ETag")
	}
	return ""
}

// learnerValues are the learner's values, kept out of error text.
func learnerValues(l connector.Learner) []string {
	vals := []string{l.ExternalID, l.UserName, l.Email, l.FirstName, l.LastName}
	for _, v := range l.Fields {
		vals = append(vals, v)
	}
	return slices.DeleteFunc(vals, func(s string) bool { return s == "" })
}
