// Package oneloginsim is an in-process fake of the OneLogin API (v2 users
// and roles, v1 events, OAuth 2.0 client-credentials tokens), for testing
// learnerlink's OneLogin connector without a tenant.
//
// It follows what OneLogin documents (see TARGETS.md §2 and the connector's
// package doc for sources and confidence tags) and picks one behaviour
// where the public material is silent (marked [I]):
//
//   - POST /auth/oauth2/v2/token with grant_type=client_credentials (JSON or
//     form body) and the credentials as HTTP Basic, as the "client_id:<id>,
//     client_secret:<secret>" header, or as form fields. The same client
//     gets the same token back until it expires (Options.TokenTTL, 10 h by
//     default) or is revoked; the answer is {access_token, created_at,
//     expires_in, refresh_token, token_type: "bearer", account_id}. Bad
//     credentials → 401 [I: status]. POST /auth/oauth2/revoke revokes.
//   - Resource calls need "Authorization: Bearer <token>" (the official
//     SDKs) or "bearer:<token>" (the docs' form); otherwise 401.
//   - Every /api call counts against an account-wide budget (Options.
//     RateLimit per RateWindow, 5,000 per hour by default) and answers
//     X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds
//     until the window resets). Over budget → 429 [I: status], with
//     Retry-After only when Options.RetryAfter is set [I]. GET
//     /auth/rate_limit reports the budget without spending it.
//   - Users (v2): GET /api/2/users (filters username, email, external_id,
//     firstname, lastname, user_ids, custom_attributes.<shortname>; "*" is a
//     wildcard; limit ≤100, default 50; page or cursor; headers Total-Count,
//     Total-Pages, Current-Page, Page-Items, Before-Cursor, After-Cursor,
//     Link; the body is a bare JSON array), GET/PUT/DELETE
//     /api/2/users/{id}, POST /api/2/users (201). PUT changes only the
//     attributes sent; custom_attributes merge key by key, and a shortname
//     that is not defined → 422 [I]. A user created without a password
//     gets status 7 (Password Pending) [D]. Duplicate username or email →
//     422 "… has already been taken" [I: wording]. Status must be one of
//     0-5, 7, 8 [C]; leaving state 3 (Unlicensed) through PUT → 422 (the v1
//     docs require set_state for that) [D v1].
//   - Roles (v2): GET /api/2/roles[?name=], GET /api/2/roles/{id},
//     GET/POST/DELETE /api/2/roles/{id}/users, the POST and DELETE bodies
//     being raw JSON arrays of user ids [D, C]; the user's role_ids are
//     returned on GET /api/2/users/{id} [C].
//   - Events (v1): every write records an event carrying the client_id of
//     the token that made it [D]; GET /api/1/events pages them (50 per page,
//     after_cursor) in the v1 envelope {status, pagination, data}.
//     EditUser makes "an admin" change a user under another client id, for
//     bidirectional tests.
//
// Errors are {statusCode, name, message} as on OneLogin's v2 pages. The Sim
// is safe for concurrent use: requests are served one at a time.
package oneloginsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event type ids the Sim records. 4 is documented, 13 seen in public
// detection rules; the others are placeholders [I] — a tenant's
// GET /api/1/events/types has the real ones.
const (
	EventUserAssignedRole   = 4  // [D] USER_ASSIGNED_ROLE
	EventUserCreated        = 13 // [C]
	EventUserUpdated        = 900
	EventUserUnassignedRole = 901
	EventUserDeleted        = 902
)

// Options configures a Sim. The zero value works.
type Options struct {
	// Now is the clock for tokens, the rate window and timestamps.
	Now func() time.Time
	// TokenTTL is how long a token lives; 0 means 10 hours [D].
	TokenTTL time.Duration
	// RateLimit is the number of /api calls admitted per RateWindow;
	// 0 means 5,000 [D]. RateWindow 0 means one hour [D].
	RateLimit  int
	RateWindow time.Duration
	// RetryAfter adds Retry-After (seconds until the window resets) to
	// 429 answers.
	RetryAfter bool
	// CustomAttributes are the custom user field shortnames defined in
	// the account.
	CustomAttributes []string
	// AccountID is reported in tokens and events; 0 means 123456.
	AccountID int
}

// User is a OneLogin user as the Sim keeps it.
type User struct {
	ID                  int
	Username            string
	Email               string
	Firstname           string
	Lastname            string
	Title               string
	Department          string
	Company             string
	Comment             string
	Phone               string
	ExternalID          string
	PreferredLocaleCode string
	ManagerUserID       int // 0: none
	State               int
	Status              int
	RoleIDs             []int
	CustomAttributes    map[string]string
	HasPassword         bool
	CreatedAt           time.Time
	UpdatedAt           time.Time
	ActivatedAt         time.Time
}

func (u User) clone() User {
	u.RoleIDs = append([]int(nil), u.RoleIDs...)
	ca := make(map[string]string, len(u.CustomAttributes))
	for k, v := range u.CustomAttributes {
		ca[k] = v
	}
	u.CustomAttributes = ca
	return u
}

// Role is a OneLogin role.
type Role struct {
	ID   int
	Name string
}

// Event is one entry of the events log.
type Event struct {
	ID            int
	EventTypeID   int
	CreatedAt     time.Time
	UserID        int
	UserName      string // "First Last", as OneLogin reports it
	ActorSystem   string
	ClientID      string
	RoleID        int
	RoleName      string
	CustomMessage string
}

// Request is one request the Sim answered. Authorization headers and
// /auth/ bodies (credentials, tokens) are never kept.
type Request struct {
	Method   string
	Path     string
	Query    string
	Body     string
	Status   int
	ClientID string // of the bearer token, "" if none or invalid
}

type token struct {
	value    string
	clientID string
	issued   time.Time
	expires  time.Time
}

type failure struct {
	status int
	header http.Header
	body   string
}

// Sim is a fake OneLogin account behind an httptest.Server.
type Sim struct {
	srv  *httptest.Server
	opts Options

	mu            sync.Mutex
	clients       map[string]string // client id → secret
	tokens        map[string]*token // value → token
	tokenRequests int
	users         map[int]*User
	nextUser      int
	roles         map[int]*Role
	nextRole      int
	attrs         map[string]bool
	events        []Event
	nextEvent     int
	requests      []Request
	limit         int
	window        time.Duration
	windowStart   time.Time
	used          int
	fail          []failure
}

// New starts a Sim; Close stops it.
func New(opts Options) *Sim {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 10 * time.Hour
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 5000
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = time.Hour
	}
	if opts.AccountID == 0 {
		opts.AccountID = 123456
	}
	s := &Sim{
		opts:      opts,
		clients:   map[string]string{},
		tokens:    map[string]*token{},
		users:     map[int]*User{},
		nextUser:  1000,
		roles:     map[int]*Role{},
		nextRole:  500,
		attrs:     map[string]bool{},
		nextEvent: 1,
		limit:     opts.RateLimit,
		window:    opts.RateWindow,
	}
	for _, a := range opts.CustomAttributes {
		s.attrs[a] = true
	}
	s.windowStart = opts.Now()
	s.srv = httptest.NewServer(s.routes())
	return s
}

// URL is the base URL, standing in for https://<subdomain>.onelogin.com.
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Sim) Close() { s.srv.Close() }

// AddClient registers an API credential pair.
func (s *Sim) AddClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// AddRole creates a role and returns its id.
func (s *Sim) AddRole(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextRole++
	s.roles[s.nextRole] = &Role{ID: s.nextRole, Name: name}
	return s.nextRole
}

// DefineCustomAttribute defines a custom user field.
func (s *Sim) DefineCustomAttribute(shortname string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs[shortname] = true
}

// SeedUser stores u as if it had always been there (no event) and returns
// its id. Status defaults to 1 (Active), state to 1 (Approved).
func (s *Sim) SeedUser(u User) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUser++
	u = u.clone()
	u.ID = s.nextUser
	if u.Status == 0 {
		u.Status = 1
	}
	if u.State == 0 {
		u.State = 1
	}
	now := s.now()
	u.CreatedAt, u.UpdatedAt = now, now
	s.users[u.ID] = &u
	return u.ID
}

// EditUser changes a user the way an admin (or another integration) would,
// recording an update event under clientID ("" for the admin portal).
func (s *Sim) EditUser(clientID string, id int, edit func(u *User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return fmt.Errorf("oneloginsim: no user %d", id)
	}
	edit(u)
	u.ID = id
	u.UpdatedAt = s.now()
	s.record(Event{EventTypeID: EventUserUpdated, UserID: id, UserName: displayName(u), ClientID: clientID})
	return nil
}

// Users returns a snapshot of every user, by id.
func (s *Sim) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, id := range s.userIDs() {
		out = append(out, s.users[id].clone())
	}
	return out
}

// User returns one user.
func (s *Sim) User(id int) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// Events returns the events log, oldest first.
func (s *Sim) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Requests returns every request answered so far.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the request log and the token request count.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.tokenRequests = 0
}

// TokenRequests counts calls to the token endpoint.
func (s *Sim) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// RevokeAll revokes every token.
func (s *Sim) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]*token{}
}

// SetRateLimit changes the budget and starts a fresh window.
func (s *Sim) SetRateLimit(limit int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.window, s.used, s.windowStart = limit, window, 0, s.now()
}

// FailNext makes the next /api call answer status with header and body
// (after authentication and rate limiting). Calls queue up.
func (s *Sim) FailNext(status int, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, failure{status: status, header: header.Clone(), body: body})
}

func (s *Sim) now() time.Time { return s.opts.Now() }

// record appends an event; called with mu held.
func (s *Sim) record(e Event) {
	e.ID = s.nextEvent
	s.nextEvent++
	e.CreatedAt = s.now().UTC()
	if e.ActorSystem == "" && e.ClientID != "" {
		e.ActorSystem = "API"
	}
	s.events = append(s.events, e)
}

type ctxKey struct{}

// recorder keeps the status for the request log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Sim) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/2/users", s.listUsers)
	api.HandleFunc("POST /api/2/users", s.createUser)
	api.HandleFunc("GET /api/2/users/{id}", s.getUser)
	api.HandleFunc("PUT /api/2/users/{id}", s.updateUser)
	api.HandleFunc("DELETE /api/2/users/{id}", s.deleteUser)
	api.HandleFunc("GET /api/2/roles", s.listRoles)
	api.HandleFunc("GET /api/2/roles/{id}", s.getRole)
	api.HandleFunc("GET /api/2/roles/{id}/users", s.roleUsers)
	api.HandleFunc("POST /api/2/roles/{id}/users", s.addRoleUsers)
	api.HandleFunc("DELETE /api/2/roles/{id}/users", s.removeRoleUsers)
	api.HandleFunc("GET /api/1/events", s.listEvents)
	api.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "NotFoundError", "Not Found")
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		s.mu.Lock()
		defer s.mu.Unlock()
		entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body)}
		if strings.HasPrefix(r.URL.Path, "/auth/") {
			entry.Body = "" // may hold client secrets or tokens
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/auth/oauth2/v2/token":
			s.issueToken(rec, r, body)
		case r.Method == http.MethodPost && r.URL.Path == "/auth/oauth2/revoke":
			s.revoke(rec, r, body)
		case r.Method == http.MethodGet && r.URL.Path == "/auth/rate_limit":
			if t := s.bearer(r); t == nil {
				writeError(rec, http.StatusUnauthorized, "UnauthorizedError", "Unauthorized")
			} else {
				entry.ClientID = t.clientID
				s.rollWindow()
				writeJSON(rec, http.StatusOK, map[string]int{
					"X-RateLimit-Limit": s.limit, "X-RateLimit-Remaining": max(s.limit-s.used, 0), "X-RateLimit-Reset": s.resetSeconds(),
				})
			}
		case strings.HasPrefix(r.URL.Path, "/api/"):
			t := s.bearer(r)
			if t == nil {
				writeError(rec, http.StatusUnauthorized, "UnauthorizedError", "Unauthorized")
				break
			}
			entry.ClientID = t.clientID
			if !s.spend(rec) {
				break
			}
			if len(s.fail) > 0 {
				f := s.fail[0]
				s.fail = s.fail[1:]
				for k, vs := range f.header {
					for _, v := range vs {
						rec.Header().Add(k, v)
					}
				}
				rec.Header().Set("Content-Type", "application/json")
				rec.WriteHeader(f.status)
				_, _ = io.WriteString(rec, f.body)
				break
			}
			api.ServeHTTP(rec, r.WithContext(contextWithClient(r, t.clientID)))
		default:
			writeError(rec, http.StatusNotFound, "NotFoundError", "Not Found")
		}
		entry.Status = rec.status
		s.requests = append(s.requests, entry)
	})
}

// rollWindow starts a new rate window when the current one is over.
func (s *Sim) rollWindow() {
	now := s.now()
	for !now.Before(s.windowStart.Add(s.window)) {
		s.windowStart = s.windowStart.Add(s.window)
		s.used = 0
	}
}

func (s *Sim) resetSeconds() int {
	d := s.windowStart.Add(s.window).Sub(s.now())
	secs := int((d + time.Second - 1) / time.Second)
	return max(secs, 0)
}

// spend takes one call from the budget, setting the rate-limit headers,
// or answers 429.
func (s *Sim) spend(w http.ResponseWriter) bool {
	s.rollWindow()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
	h.Set("X-RateLimit-Reset", strconv.Itoa(s.resetSeconds()))
	if s.used >= s.limit {
		h.Set("X-RateLimit-Remaining", "0")
		if s.opts.RetryAfter {
			h.Set("Retry-After", strconv.Itoa(s.resetSeconds()))
		}
		writeError(w, http.StatusTooManyRequests, "TooManyRequestsError", "Too Many Requests")
		return false
	}
	s.used++
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.limit-s.used))
	return true
}

// bearer returns the valid token the request carries, or nil.
func (s *Sim) bearer(r *http.Request) *token {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	var v string
	switch lower := strings.ToLower(h); {
	case strings.HasPrefix(lower, "bearer:"):
		v = strings.TrimSpace(h[len("bearer:"):])
	case strings.HasPrefix(lower, "bearer "):
		v = strings.TrimSpace(h[len("bearer "):])
	default:
		return nil
	}
	t, ok := s.tokens[v]
	if !ok || !s.now().Before(t.expires) {
		return nil
	}
	return t
}

// credentials reads the client credentials of a token or revoke request.
func credentials(r *http.Request, body []byte) (id, secret string) {
	if id, secret, ok := r.BasicAuth(); ok {
		return id, secret
	}
	if h := r.Header.Get("Authorization"); strings.Contains(h, "client_id:") {
		for _, part := range strings.Split(h, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), ":")
			switch strings.TrimSpace(k) {
			case "client_id":
				id = strings.TrimSpace(v)
			case "client_secret":
				secret = strings.TrimSpace(v)
			}
		}
		return id, secret
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		q, _ := url.ParseQuery(string(body))
		return q.Get("client_id"), q.Get("client_secret")
	}
	return "", ""
}

func (s *Sim) issueToken(w http.ResponseWriter, r *http.Request, body []byte) {
	s.tokenRequests++
	grant := ""
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		q, _ := url.ParseQuery(string(body))
		grant = q.Get("grant_type")
	} else {
		var b struct {
			GrantType string `json:"grant_type"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequestError", "Input JSON is not valid")
			return
		}
		grant = b.GrantType
	}
	if grant != "client_credentials" {
		writeError(w, http.StatusBadRequest, "BadRequestError", "grant_type must be client_credentials")
		return
	}
	id, secret := credentials(r, body)
	if want, ok := s.clients[id]; !ok || id == "" || want != secret {
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Invalid client credentials")
		return
	}
	now := s.now()
	var t *token
	for _, cand := range s.tokens {
		if cand.clientID == id && now.Before(cand.expires) {
			t = cand // same pair, same token until it expires or is revoked [D]
			break
		}
	}
	if t == nil {
		t = &token{value: randomHex(20), clientID: id, issued: now, expires: now.Add(s.opts.TokenTTL)}
		s.tokens[t.value] = t
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  t.value,
		"created_at":    t.issued.UTC().Format(time.RFC3339Nano),
		"expires_in":    int(t.expires.Sub(now) / time.Second),
		"refresh_token": "",
		"token_type":    "bearer",
		"account_id":    s.opts.AccountID,
	})
}

func (s *Sim) revoke(w http.ResponseWriter, r *http.Request, body []byte) {
	id, secret := credentials(r, body)
	if want, ok := s.clients[id]; !ok || want != secret {
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Invalid client credentials")
		return
	}
	var b struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(body, &b)
	if t, ok := s.tokens[b.AccessToken]; ok && t.clientID == id {
		delete(s.tokens, b.AccessToken)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": map[string]any{"error": false, "code": 200, "type": "success", "message": "Success"}})
}

func contextWithClient(r *http.Request, clientID string) context.Context {
	return context.WithValue(r.Context(), ctxKey{}, clientID)
}

func clientOf(r *http.Request) string {
	if v, ok := r.Context().Value(ctxKey{}).(string); ok {
		return v
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, name, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "name": name, "message": msg})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cursor encodes an offset as an opaque page cursor.
func cursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(offset)))
}

func parseCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "o:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}
