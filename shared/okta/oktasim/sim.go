// Package oktasim is an in-process fake of the slice of the Okta
// Management API learnerlink calls, for tests of the okta client, the
// hooks receiver and reconciliation:
//
//   - GET /api/v1/users/{id or login}
//   - GET /api/v1/apps/{appId}/users (limit, after, expand=user)
//   - GET /api/v1/groups/{groupId}/users (limit, after)
//   - POST /oauth2/v1/token (client credentials with a private-key JWT)
//
// As documented by Okta: "Authorization: SSWS <token>" or "Bearer <access
// token>" (with the okta.users.read / okta.apps.read / okta.groups.read
// scope the endpoint needs, else 403 E0000006); paging with a
// `Link: <…?after=…>; rel="next"` header (the after cursor is the last id
// of the page; ids sort as strings); X-Rate-Limit-Limit/-Remaining/-Reset
// (epoch seconds) on every API answer, per endpoint family and fixed
// window, and 429 E0000047 once a window's budget is spent; errors as
// {errorCode, errorSummary, errorLink, errorId, errorCauses}. The client
// assertion is checked structurally (alg, iss = sub = client id, aud = the
// token URL, exp/iat, a fresh jti), and its signature only when
// Options.PublicKey is set.
//
// Memory: Populate describes up to millions of generated users without
// storing them (user i is produced by a function when it is read); only
// users put with PutUser, and changes to generated ones, are stored.
package oktasim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/okta"
)

// Options configures a Sim. Zero values mean the defaults.
type Options struct {
	// APIToken is accepted as "SSWS <token>"; empty disables SSWS.
	APIToken string
	// ClientID is the OAuth service app accepted by /oauth2/v1/token;
	// empty disables OAuth.
	ClientID string
	// PublicKey, if set, verifies the client assertion's signature.
	PublicKey crypto.PublicKey
	// Scopes granted to the service app (default okta.DefaultScopes()).
	Scopes []string
	// TokenLifetime of access tokens (default 1 h, Okta's).
	TokenLifetime time.Duration
	// PageSize is the most users one page holds (default 200); a smaller
	// ?limit= is honoured.
	PageSize int
	// RateLimit is the requests each endpoint family (users, apps, groups,
	// token) admits per RateWindow (default 1 min); 0 is unlimited.
	RateLimit  int
	RateWindow time.Duration
	// Latency delays every API answer (not the token endpoint), in real
	// time, until the request is cancelled.
	Latency time.Duration
	// Now is the clock for rate windows and token expiry (default
	// time.Now); tests share a fake one with the client.
	Now func() time.Time
}

// Stats counts what the sim answered.
type Stats struct {
	Requests map[string]int // by endpoint family: users, apps, groups, token
	Limited  int            // 429s
	Tokens   int            // access tokens issued
}

// Sim is a running fake Okta org. It is safe for concurrent use.
type Sim struct {
	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	users    map[string]*record // stored users (put, or changed generated ones)
	logins   map[string]string  // folded login → id, stored users only
	deleted  map[string]bool    // deleted generated users
	genN     int
	genFn    func(i int) okta.User
	apps     map[string]*membership
	groups   map[string]*membership
	windows  map[string]*window
	tokens   map[string]accessToken
	jtis     map[string]time.Time
	stats    Stats
	errorSeq uint64
}

type record struct {
	status  string
	login   string
	profile json.RawMessage
}

type window struct {
	start time.Time
	used  int
}

type accessToken struct {
	expires time.Time
	scopes  []string
}

// membership is an app's assignments or a group's members: stored ids,
// plus, when all is set, every generated user not in removed.
type membership struct {
	ids     sortedIDs
	scope   map[string]string // app assignments: id → USER or GROUP
	all     bool
	removed map[string]bool
}

// sortedIDs is a set kept as a slice sorted lazily.
type sortedIDs struct {
	set   map[string]bool
	list  []string
	dirty bool
}

func (s *sortedIDs) add(id string) {
	if s.set == nil {
		s.set = map[string]bool{}
	}
	if !s.set[id] {
		s.set[id] = true
		s.list = append(s.list, id)
		s.dirty = true
	}
}

func (s *sortedIDs) remove(id string) {
	if s.set[id] {
		delete(s.set, id)
		s.list = slices.DeleteFunc(s.list, func(x string) bool { return x == id })
	}
}

func (s *sortedIDs) sorted() []string {
	if s.dirty {
		slices.Sort(s.list)
		s.dirty = false
	}
	return s.list
}

// New starts a Sim; Close stops it.
func New(opts Options) *Sim {
	if len(opts.Scopes) == 0 {
		opts.Scopes = okta.DefaultScopes()
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 200
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sim{
		opts: opts, users: map[string]*record{}, logins: map[string]string{}, deleted: map[string]bool{},
		apps: map[string]*membership{}, groups: map[string]*membership{}, windows: map[string]*window{},
		tokens: map[string]accessToken{}, jtis: map[string]time.Time{},
		stats: Stats{Requests: map[string]int{}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users/{id}", s.api("users", "okta.users.read", s.getUser))
	mux.HandleFunc("GET /api/v1/apps/{id}/users", s.api("apps", "okta.apps.read", s.listAppUsers))
	mux.HandleFunc("GET /api/v1/groups/{id}/users", s.api("groups", "okta.groups.read", s.listGroupUsers))
	mux.HandleFunc("POST /oauth2/v1/token", s.tokenEndpoint)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, "E0000022", "The endpoint does not support the provided HTTP method")
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the org URL (what okta.Config.OrgURL wants).
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Sim) Close() { s.srv.Close() }

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Requests = make(map[string]int, len(s.stats.Requests))
	for k, v := range s.stats.Requests {
		st.Requests[k] = v
	}
	return st
}

// SetRateLimit changes the per-window budget (0: unlimited) and clears
// the current windows.
func (s *Sim) SetRateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RateLimit = n
	s.windows = map[string]*window{}
}

// api wraps an API handler with latency, the rate limit and auth.
func (s *Sim) api(family, scope string, h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Latency > 0 {
			t := time.NewTimer(s.opts.Latency)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.admit(w, family) {
			return
		}
		switch s.authorize(r, scope) {
		case http.StatusUnauthorized:
			s.writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
			return
		case http.StatusForbidden:
			s.writeError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
			return
		}
		h(w, r)
	}
}

// admit counts the request in its family's window, sets the
// X-Rate-Limit-* headers and answers 429 when the budget is spent.
func (s *Sim) admit(w http.ResponseWriter, family string) bool {
	s.stats.Requests[family]++
	if s.opts.RateLimit <= 0 {
		return true
	}
	now := s.opts.Now()
	start := now.Truncate(s.opts.RateWindow)
	win := s.windows[family]
	if win == nil || !win.start.Equal(start) {
		win = &window{start: start}
		s.windows[family] = win
	}
	reset := start.Add(s.opts.RateWindow)
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(s.opts.RateLimit))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(ceilUnix(reset), 10))
	if win.used >= s.opts.RateLimit {
		h.Set("X-Rate-Limit-Remaining", "0")
		s.stats.Limited++
		s.writeError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return false
	}
	win.used++
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(s.opts.RateLimit-win.used))
	return true
}

func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.After(time.Unix(sec, 0)) {
		sec++
	}
	return sec
}

// authorize returns 0 when the credentials allow scope, else 401 or 403.
func (s *Sim) authorize(r *http.Request, scope string) int {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case strings.EqualFold(scheme, "SSWS") && s.opts.APIToken != "" && cred == s.opts.APIToken:
		return 0
	case strings.EqualFold(scheme, "Bearer"):
		tok, ok := s.tokens[cred]
		if !ok || !s.opts.Now().Before(tok.expires) {
			return http.StatusUnauthorized
		}
		if !slices.Contains(tok.scopes, scope) {
			return http.StatusForbidden
		}
		return 0
	}
	return http.StatusUnauthorized
}

// writeError writes Okta's error body. Callers hold s.mu.
func (s *Sim) writeError(w http.ResponseWriter, status int, code, summary string) {
	s.errorSeq++
	writeJSON(w, status, map[string]any{
		"errorCode": code, "errorSummary": summary, "errorLink": code,
		"errorId": fmt.Sprintf("oaesim%014d", s.errorSeq), "errorCauses": []any{},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errorCode":"E0000009","errorSummary":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Timestamps are fixed: nothing in learnerlink reads them, and fixed
// values keep answers byte-for-byte repeatable.
const stamp = "2026-01-01T00:00:00.000Z"

// writeUser renders an Okta user object.
func writeUser(b *bytes.Buffer, base, id string, rec *record) {
	b.WriteString(`{"id":`)
	writeString(b, id)
	b.WriteString(`,"status":`)
	writeString(b, rec.status)
	b.WriteString(`,"created":"` + stamp + `","activated":"` + stamp + `","statusChanged":"` + stamp +
		`","lastLogin":null,"lastUpdated":"` + stamp + `","passwordChanged":null,"type":{"id":"otysim0000000000000"},"profile":`)
	b.Write(rec.profile)
	b.WriteString(`,"credentials":{"provider":{"type":"OKTA","name":"OKTA"}},"_links":{"self":{"href":`)
	writeString(b, base+"/api/v1/users/"+id)
	b.WriteString(`}}}`)
}

// writeString writes s as a JSON string (plain ASCII as is: the sim
// renders 100,000s of them per run).
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s)
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec := s.user(id)
	if rec == nil {
		if byLogin, ok := s.logins[strings.ToLower(id)]; ok {
			id, rec = byLogin, s.users[byLogin]
		}
	}
	if rec == nil {
		s.writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+id+" (User)")
		return
	}
	var b bytes.Buffer
	writeUser(&b, baseURL(r), id, rec)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

func baseURL(r *http.Request) string { return "http://" + r.Host }

func (s *Sim) listAppUsers(w http.ResponseWriter, r *http.Request) {
	appID := r.PathValue("id")
	m := s.apps[appID]
	if m == nil {
		s.writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+appID+" (AppInstance)")
		return
	}
	expand := r.URL.Query().Get("expand") == "user"
	base := baseURL(r)
	s.page(w, r, m, func(b *bytes.Buffer, id string, rec *record) {
		scope := m.scope[id]
		if scope == "" {
			scope = "USER"
		}
		b.WriteString(`{"id":`)
		writeString(b, id)
		b.WriteString(`,"externalId":null,"created":"` + stamp + `","lastUpdated":"` + stamp + `","scope":`)
		writeString(b, scope)
		b.WriteString(`,"status":"PROVISIONED","statusChanged":"` + stamp + `","passwordChanged":null,"syncState":"DISABLED","credentials":{"userName":`)
		writeString(b, rec.login)
		b.WriteString(`},"profile":{},"_links":{"app":{"href":`)
		writeString(b, base+"/api/v1/apps/"+appID)
		b.WriteString(`},"user":{"href":`)
		writeString(b, base+"/api/v1/users/"+id)
		b.WriteString(`}}`)
		if expand {
			b.WriteString(`,"_embedded":{"user":`)
			writeUser(b, base, id, rec)
			b.WriteString(`}`)
		}
		b.WriteString(`}`)
	})
}

func (s *Sim) listGroupUsers(w http.ResponseWriter, r *http.Request) {
	groupID := r.PathValue("id")
	m := s.groups[groupID]
	if m == nil {
		s.writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+groupID+" (UserGroup)")
		return
	}
	base := baseURL(r)
	s.page(w, r, m, func(b *bytes.Buffer, id string, rec *record) { writeUser(b, base, id, rec) })
}

// page writes one page of m's live members after the cursor, with Link
// headers.
func (s *Sim) page(w http.ResponseWriter, r *http.Request, m *membership, render func(*bytes.Buffer, string, *record)) {
	q := r.URL.Query()
	limit := s.opts.PageSize
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 && v < limit {
		limit = v
	}
	after := q.Get("after")
	var b bytes.Buffer
	b.WriteByte('[')
	n, last, more := 0, "", false
	s.members(m, after, func(id string, rec *record) bool {
		if n == limit {
			more = true
			return false
		}
		if n > 0 {
			b.WriteByte(',')
		}
		render(&b, id, rec)
		n++
		last = id
		return true
	})
	b.WriteByte(']')
	self := *r.URL
	self.Scheme, self.Host = "http", r.Host
	w.Header().Add("Link", "<"+self.String()+`>; rel="self"`)
	if more {
		next := self
		nq := next.Query()
		nq.Set("after", last)
		nq.Set("limit", strconv.Itoa(limit))
		next.RawQuery = nq.Encode()
		w.Header().Add("Link", "<"+next.String()+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// members calls yield for m's live members with ids after the cursor, in
// id order, until yield returns false. Stored and generated ids are merged.
func (s *Sim) members(m *membership, after string, yield func(string, *record) bool) {
	stored := m.ids.sorted()
	i, _ := slices.BinarySearch(stored, after)
	if i < len(stored) && stored[i] == after {
		i++
	}
	g, genEnd := 0, 0
	if m.all {
		genEnd = s.genN
		g = firstGenAfter(after, s.genN)
	}
	for i < len(stored) || g < genEnd {
		var id string
		switch {
		case g >= genEnd:
			id, i = stored[i], i+1
		case i >= len(stored):
			id, g = GeneratedID(g), g+1
		default:
			sid, gid := stored[i], GeneratedID(g)
			switch {
			case sid < gid:
				id, i = sid, i+1
			case gid < sid:
				id, g = gid, g+1
			default:
				id, i, g = sid, i+1, g+1
			}
		}
		if !m.ids.set[id] && m.removed[id] {
			continue
		}
		rec := s.user(id)
		if rec == nil {
			continue
		}
		if !yield(id, rec) {
			return
		}
	}
}

// tokenEndpoint is POST /oauth2/v1/token for the client credentials grant.
func (s *Sim) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.admit(w, "token") {
		return
	}
	oauthErr := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if s.opts.ClientID == "" {
		oauthErr(http.StatusUnauthorized, "invalid_client", "OAuth is not configured on this org")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
		return
	}
	if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		oauthErr(http.StatusUnauthorized, "invalid_client", "client_assertion_type must be jwt-bearer")
		return
	}
	if err := s.checkAssertion(r.PostForm.Get("client_assertion"), s.URL()+"/oauth2/v1/token"); err != nil {
		oauthErr(http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	if len(scopes) == 0 {
		oauthErr(http.StatusBadRequest, "invalid_scope", "scope is required")
		return
	}
	for _, sc := range scopes {
		if !slices.Contains(s.opts.Scopes, sc) {
			oauthErr(http.StatusBadRequest, "invalid_scope", "The following scopes are not allowed: "+sc)
			return
		}
	}
	tok := newToken()
	s.tokens[tok] = accessToken{expires: s.opts.Now().Add(s.opts.TokenLifetime), scopes: scopes}
	s.stats.Tokens++
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(s.opts.TokenLifetime / time.Second),
		"access_token": tok, "scope": strings.Join(scopes, " "),
	})
}

// RevokeTokens invalidates every access token issued so far.
func (s *Sim) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]accessToken{}
}
