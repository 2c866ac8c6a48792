// Package absorbsim is an in-process fake of the Absorb LMS Integration
// API v2 (https://rest.myabsorb.com), for testing learnerlink's Absorb
// connector without a tenant.
//
// It follows what is documented (see TARGETS.md §1 for the sources and
// their confidence) and is deliberately strict where real clients got
// burned:
//
//   - every request needs x-api-key (the private key) and x-api-version: 2,
//     else 401;
//   - POST /authenticate {username,password,privateKey} answers a JSON
//     string token valid for 4 hours, and issuing a token invalidates the
//     admin's previous one (the one-live-token rule): an old token gets 401;
//   - Authorization accepts "Bearer <token>" and the bare token;
//   - collections page with _offset (a page index) and _limit (default 20,
//     more than 1000 → 422), wrapped as {totalItems, returnedItems, limit,
//     offset, <name>: […]}, and filter with an OData _filter (see filter.go);
//   - PUT /users/{id} replaces the whole record: fields the body omits are
//     cleared (the password, write-only, is kept);
//   - users are never deleted (there is no DELETE route);
//   - errors carry {validations, code, message, term, _meta}.
//
// Where the public material is silent the sim picks one behaviour and says
// so; the endpoints marked [I] below are inferences:
//
//   - POST /users creates (duplicate username or externalId → 422); the
//     "upsert on username/externalId" wording one client quotes is not
//     modelled for single creates;
//   - POST /users/upload (≤200 rows) upserts: a row with an id, or whose
//     username matches, updates (full replacement), others create; the
//     answer lists {key: id, value: username} for the rows that succeeded;
//   - POST /departments {name, externalId, parentId} creates a department
//     [I] (Options.NoDepartmentWrites turns it off);
//   - groups are read-only (GET /groups, GET /groups/{id}); automatic
//     groups compute their members from a user field rule, manual ones
//     from SeedGroup;
//   - POST /users/{userId}/enrollments/{courseId} enrolls [I] (409 if the
//     user already has an active enrollment); GET /users/{userId}/enrollments
//     and GET /users/{userId}/enrollments/{courseId} read them [D].
//
// Rate limiting (Options.RateLimit) and faults (Options.Faults) are
// applied before authentication, like a gateway would.
package absorbsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// TokenLifetime is how long an /authenticate token is valid.
const TokenLifetime = 4 * time.Hour

// Options configures a Sim.
type Options struct {
	Username, Password, PrivateKey string
	// RateLimit is the number of requests admitted per sliding 1-second
	// window; the rest get 429 with Retry-After: 1. 0 means unlimited.
	RateLimit float64
	Faults    Faults
	// NoDepartmentWrites makes POST /departments unknown (404), for
	// portals or API versions without department writes.
	NoDepartmentWrites bool
	// Now is the clock for token expiry, the rate window and timestamps.
	Now func() time.Time
}

// Faults injects failures, chosen by a generator seeded with Seed so runs
// repeat.
type Faults struct {
	P429     float64       // probability of a 429 with Retry-After: 1
	P5xx     float64       // probability of a 500
	PTimeout float64       // probability of never answering (until the client gives up)
	Latency  time.Duration // added to every request
	Seed     int64
}

// RequestRecord is one request as the sim saw it. Status 0 means it was
// never answered (an injected timeout).
type RequestRecord struct {
	Time   time.Time
	Method string
	Path   string
	Status int
}

// Sim is a running fake Absorb API. It is safe for concurrent use.
type Sim struct {
	opts Options
	srv  *httptest.Server
	done chan struct{}
	once sync.Once

	mu          sync.Mutex
	rng         *rand.Rand
	seq         uint64
	idPrefix    uint32
	token       string
	tokenIssued time.Time
	auths       int
	unauth      int // transient 401s still to inject
	window      []time.Time
	requests    []RequestRecord
	users       map[string]*User
	userOrder   []string
	depts       map[string]*Department
	deptOrder   []string
	defaultDept string
	groups      map[string]*Group
	groupOrder  []string
	courses     map[string]*Course
	enrolls     map[string][]*Enrollment // by user id
}

// New starts a sim on a loopback port. Close it when done.
func New(opts Options) *Sim {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sim{
		opts:    opts,
		done:    make(chan struct{}),
		rng:     rand.New(rand.NewPCG(uint64(opts.Faults.Seed), 0x5eed)),
		users:   map[string]*User{},
		depts:   map[string]*Department{},
		groups:  map[string]*Group{},
		courses: map[string]*Course{},
		enrolls: map[string][]*Enrollment{},
	}
	s.idPrefix = s.rng.Uint32()
	s.defaultDept = s.SeedDepartment(Department{Name: "Root"})
	s.srv = httptest.NewServer(s.routes())
	return s
}

// URL is the sim's base URL (the regional gateway's stand-in).
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the server, releasing requests held by injected timeouts.
func (s *Sim) Close() {
	s.once.Do(func() { close(s.done) })
	s.srv.Close()
}

// Requests returns every request seen since the last ResetCounters.
func (s *Sim) Requests() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RequestRecord(nil), s.requests...)
}

// Authentications counts tokens issued since the last ResetCounters.
func (s *Sim) Authentications() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// ResetCounters forgets recorded requests and the authentication count.
func (s *Sim) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.auths = 0
}

// InjectUnauthorized makes the next n authenticated requests answer 401
// even with the live token, like the transient 401s clients report from
// Absorb's load balancer.
func (s *Sim) InjectUnauthorized(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unauth = n
}

// InvalidateToken kills the live token, as if the admin had authenticated
// elsewhere.
func (s *Sim) InvalidateToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = ""
}

// SetRates changes the fault probabilities (Faults.P429, P5xx and
// PTimeout) from the next request on; the latency and the seeded
// sequence stay.
func (s *Sim) SetRates(p429, p5xx, pTimeout float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Faults.P429, s.opts.Faults.P5xx, s.opts.Faults.PTimeout = p429, p5xx, pTimeout
}

// DefaultDepartmentID is the id of the "Root" department every sim has.
func (s *Sim) DefaultDepartmentID() string { return s.defaultDept }

// newID returns a fresh GUID-shaped id; ids are deterministic per sim.
// The caller holds s.mu or is the constructor.
func (s *Sim) newID() string {
	s.seq++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", s.idPrefix, s.seq)
}

func (s *Sim) now() time.Time { return s.opts.Now() }

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authenticate", s.authenticate)
	mux.HandleFunc("GET /users", s.authed(s.listUsers))
	mux.HandleFunc("POST /users", s.authed(s.createUser))
	mux.HandleFunc("POST /users/upload", s.authed(s.uploadUsers))
	mux.HandleFunc("GET /users/{id}", s.authed(s.getUser))
	mux.HandleFunc("PUT /users/{id}", s.authed(s.putUser))
	mux.HandleFunc("GET /users/{id}/enrollments", s.authed(s.listEnrollments))
	mux.HandleFunc("GET /users/{id}/enrollments/{courseId}", s.authed(s.getEnrollment))
	mux.HandleFunc("POST /users/{id}/enrollments/{courseId}", s.authed(s.enroll))
	mux.HandleFunc("GET /departments", s.authed(s.listDepartments))
	mux.HandleFunc("GET /departments/{id}", s.authed(s.getDepartment))
	mux.HandleFunc("POST /departments", s.authed(s.createDepartment))
	mux.HandleFunc("GET /groups", s.authed(s.listGroups))
	mux.HandleFunc("GET /groups/{id}", s.authed(s.getGroup))
	mux.HandleFunc("/", s.authed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Resource not found.")
	}))
	return s.gateway(mux)
}

// recorder remembers the status written.
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

// gateway applies latency, faults, the rate limit and the key and version
// checks, and records every request.
func (s *Sim) gateway(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		at := s.now()
		defer func() {
			s.mu.Lock()
			s.requests = append(s.requests, RequestRecord{Time: at, Method: r.Method, Path: r.URL.Path, Status: rec.status})
			s.mu.Unlock()
		}()
		if d := s.opts.Faults.Latency; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.done:
				t.Stop()
				return
			}
		}
		s.mu.Lock()
		f := s.opts.Faults
		var roll429, roll5xx, rollTimeout bool
		if f.P429 > 0 || f.P5xx > 0 || f.PTimeout > 0 {
			x := s.rng.Float64()
			roll429 = x < f.P429
			roll5xx = !roll429 && x < f.P429+f.P5xx
			rollTimeout = !roll429 && !roll5xx && x < f.P429+f.P5xx+f.PTimeout
		}
		limited := false
		if !roll429 && !roll5xx && !rollTimeout && s.opts.RateLimit > 0 {
			cut := at.Add(-time.Second)
			keep := s.window[:0]
			for _, t := range s.window {
				if t.After(cut) {
					keep = append(keep, t)
				}
			}
			s.window = keep
			limit := int(s.opts.RateLimit)
			if limit < 1 {
				limit = 1
			}
			if len(s.window) >= limit {
				limited = true
			} else {
				s.window = append(s.window, at)
			}
		}
		s.mu.Unlock()
		switch {
		case rollTimeout:
			select { // hold the request until the client gives up
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		case roll429 || limited:
			rec.Header().Set("Retry-After", "1")
			writeError(rec, http.StatusTooManyRequests, "Too many requests.")
			return
		case roll5xx:
			writeError(rec, http.StatusInternalServerError, "An unexpected error occurred.")
			return
		}
		if key := r.Header.Get("x-api-key"); key == "" || key != s.opts.PrivateKey {
			writeError(rec, http.StatusUnauthorized, "Invalid or missing API key.")
			return
		}
		if v := r.Header.Get("x-api-version"); v != "2" {
			writeError(rec, http.StatusUnauthorized, "Unsupported or missing API version.")
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// authed checks the bearer token.
func (s *Sim) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimSpace(r.Header.Get("Authorization"))
		if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
			tok = strings.TrimSpace(tok[7:])
		}
		s.mu.Lock()
		ok := tok != "" && tok == s.token && s.now().Before(s.tokenIssued.Add(TokenLifetime))
		if ok && s.unauth > 0 {
			s.unauth--
			ok = false
		}
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusUnauthorized, "Authorization has been denied for this request.")
			return
		}
		h(w, r)
	}
}

func (s *Sim) authenticate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Username   string `json:"username"`
		Password   string `json:"password"`
		PrivateKey string `json:"privateKey"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "The request body is invalid.")
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"username", body.Username}, {"password", body.Password}, {"privateKey", body.PrivateKey}} {
		if f.v == "" {
			missing = append(missing, "The "+f.name+" field is required.")
		}
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, "The required body parameters were not included.", missing...)
		return
	}
	if body.Username != s.opts.Username || body.Password != s.opts.Password || body.PrivateKey != s.opts.PrivateKey {
		writeError(w, http.StatusUnauthorized, "Invalid credentials.")
		return
	}
	s.mu.Lock()
	s.token = fmt.Sprintf("tok-%d-%s", s.auths+1, s.newID())
	s.tokenIssued = s.now()
	s.auths++
	tok := s.token
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, tok)
}

// decodeBody reads a JSON body of at most 8 MiB.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	dec.UseNumber()
	return dec.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is Absorb's error body.
type apiError struct {
	Validations []string          `json:"validations"`
	Code        int               `json:"code"`
	Message     string            `json:"message"`
	Term        string            `json:"term"`
	Meta        map[string]string `json:"_meta"`
}

func writeError(w http.ResponseWriter, status int, msg string, validations ...string) {
	if validations == nil {
		validations = []string{}
	}
	writeJSON(w, status, apiError{Validations: validations, Code: status, Message: msg, Term: http.StatusText(status), Meta: map[string]string{}})
}

// page reads _offset/_limit (or the deprecated offset/limit) and answers
// the page bounds, or writes a 422 and answers ok false.
func page(w http.ResponseWriter, r *http.Request) (offset, limit int, ok bool) {
	q := r.URL.Query()
	get := func(k, old string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		return q.Get(old)
	}
	offset, limit = 0, 20
	if v := get("_offset", "offset"); v != "" {
		if _, err := fmt.Sscan(v, &offset); err != nil || offset < 0 || offset > 65535 {
			writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The offset must be between 0 and 65535.")
			return 0, 0, false
		}
	}
	if v := get("_limit", "limit"); v != "" {
		if _, err := fmt.Sscan(v, &limit); err != nil || limit < 1 || limit > 1000 {
			writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The limit must be between 1 and 1000.")
			return 0, 0, false
		}
	}
	return offset, limit, true
}

// envelope pages items (already filtered and ordered) into Absorb's
// collection shape.
func envelope[T any](name string, items []T, offset, limit int) map[string]any {
	start := offset * limit
	if start > len(items) {
		start = len(items)
	}
	end := min(start+limit, len(items))
	out := items[start:end]
	if out == nil {
		out = []T{}
	}
	return map[string]any{
		"totalItems":    len(items),
		"returnedItems": len(out),
		"limit":         limit,
		"offset":        offset,
		name:            out,
	}
}

// filterOf parses the request's _filter, writing a 422 if it is bad.
func filterOf(w http.ResponseWriter, r *http.Request) (node, bool) {
	f := r.URL.Query().Get("_filter")
	if f == "" {
		return nil, true
	}
	n, err := parseFilter(f)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "A validation error occurred.", "The filter is invalid.")
		return nil, false
	}
	return n, true
}

// keep reports whether rec passes n, writing a 422 on evaluation errors.
func keep(ctx context.Context, n node, rec record) (bool, error) {
	if n == nil {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return matches(n, rec)
}
