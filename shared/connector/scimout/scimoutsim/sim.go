// Package scimoutsim is a far end for tests of outbound SCIM clients:
// learnerlink's own SCIM 2.0 server (shared/scim over a bolt store)
// behind a middleware that records requests, injects faults (429 with
// Retry-After, 503, 412, …, scripted or at seeded random rates), can
// accept HTTP Basic credentials in place of the bearer token, and can make
// the server look like a vendor without PATCH or ETags.
package scimoutsim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

// DefaultToken is the bearer token when Options.Token is empty.
const DefaultToken = "scimoutsim-token-0123456789"

// Options configures the middleware.
type Options struct {
	// Token is the server's bearer token ("" means DefaultToken).
	Token string
	// BasicUser and BasicPassword, when both set, are accepted as HTTP
	// Basic credentials (translated to the bearer token), as Lessonly
	// takes subdomain:key.
	BasicUser, BasicPassword string
	// NoPatch makes ServiceProviderConfig say patch.supported=false and
	// answers every PATCH with 501, as RFC 7644 §3.5.2 prescribes.
	NoPatch bool
	// NoETag makes ServiceProviderConfig say etag.supported=false.
	NoETag bool
	// MaxResults is the server's page cap (0: 200).
	MaxResults int
	// Rate429, Rate503 and Rate500 inject faults at random, seeded by
	// Seed; injected 429s and 503s carry RetryAfter (if non-empty).
	Rate429, Rate503, Rate500 float64
	RetryAfter                string
	Seed                      uint64
}

// Fault is a scripted answer for the next request it matches.
type Fault struct {
	Method     string // "" matches any
	PathSuffix string // "" matches any; e.g. "/ServiceProviderConfig", "/Users"
	Status     int
	RetryAfter string // sent as Retry-After when non-empty
	ScimType   string // the error body's scimType, e.g. "invalidFilter"
}

// Request is one recorded request.
type Request struct {
	Method   string
	Path     string // escaped path
	RawQuery string
	Auth     string // "Bearer", "Basic" or ""
	IfMatch  string
	Body     []byte
	Status   int
	Injected bool
}

// Query returns a decoded query parameter.
func (r Request) Query(name string) string {
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		return ""
	}
	return q.Get(name)
}

// Middleware wraps a SCIM handler.
type Middleware struct {
	next http.Handler
	opts Options

	mu     sync.Mutex
	rng    *rand.Rand
	script []Fault
	reqs   []Request
}

// Wrap returns the middleware around next (a SCIM handler whose bearer
// token is opts.Token).
func Wrap(next http.Handler, opts Options) *Middleware {
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	return &Middleware{next: next, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
}

// Inject queues scripted faults; each answers the first later request it
// matches, in order.
func (m *Middleware) Inject(f ...Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.script = append(m.script, f...)
}

// SetRates changes the random 429 and 503 rates.
func (m *Middleware) SetRates(r429, r503 float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.Rate429, m.opts.Rate503 = r429, r503
}

// SetRate500 changes the random 500 rate.
func (m *Middleware) SetRate500(r float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.Rate500 = r
}

// Requests returns a copy of what was recorded.
func (m *Middleware) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Request(nil), m.reqs...)
}

// Reset forgets recorded requests.
func (m *Middleware) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs = nil
}

func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, IfMatch: r.Header.Get("If-Match"), Body: body}
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	rec.Auth = scheme

	if user, pass, ok := r.BasicAuth(); ok {
		r = r.Clone(r.Context())
		if m.opts.BasicUser != "" && eq(user, m.opts.BasicUser) && eq(pass, m.opts.BasicPassword) {
			r.Header.Set("Authorization", "Bearer "+m.opts.Token)
		} else {
			r.Header.Del("Authorization")
		}
	}

	if f, ok := m.fault(r); ok {
		rec.Status, rec.Injected = f.Status, true
		m.record(rec)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, f.ScimType, "injected fault")
		return
	}
	if m.opts.NoPatch && r.Method == http.MethodPatch {
		rec.Status = http.StatusNotImplemented
		m.record(rec)
		writeError(w, http.StatusNotImplemented, "", "PATCH is not supported")
		return
	}
	rw := httptest.NewRecorder()
	m.next.ServeHTTP(rw, r)
	out := rw.Body.Bytes()
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") && rw.Code == http.StatusOK {
		out = m.rewriteSPConfig(out)
	}
	for k, v := range rw.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rw.Code)
	_, _ = w.Write(out)
	rec.Status = rw.Code
	m.record(rec)
}

func (m *Middleware) record(r Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs = append(m.reqs, r)
}

// fault picks a scripted fault, else a random one.
func (m *Middleware) fault(r *http.Request) (Fault, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, f := range m.script {
		if (f.Method == "" || f.Method == r.Method) && strings.HasSuffix(r.URL.Path, f.PathSuffix) {
			m.script = append(m.script[:i:i], m.script[i+1:]...)
			return f, true
		}
	}
	if m.opts.Rate429 > 0 || m.opts.Rate503 > 0 || m.opts.Rate500 > 0 {
		x := m.rng.Float64()
		switch {
		case x < m.opts.Rate429:
			return Fault{Status: http.StatusTooManyRequests, RetryAfter: m.opts.RetryAfter}, true
		case x < m.opts.Rate429+m.opts.Rate503:
			return Fault{Status: http.StatusServiceUnavailable, RetryAfter: m.opts.RetryAfter}, true
		case x < m.opts.Rate429+m.opts.Rate503+m.opts.Rate500:
			return Fault{Status: http.StatusInternalServerError}, true
		}
	}
	return Fault{}, false
}

func (m *Middleware) rewriteSPConfig(b []byte) []byte {
	if !m.opts.NoPatch && !m.opts.NoETag {
		return b
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return b
	}
	if m.opts.NoPatch {
		doc["patch"] = map[string]any{"supported": false}
	}
	if m.opts.NoETag {
		doc["etag"] = map[string]any{"supported": false}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return b
	}
	return out
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  strconv.Itoa(status),
		"detail":  detail,
	}
	if scimType != "" {
		body["scimType"] = scimType
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Sim is the SCIM server over a fresh bolt store, behind the middleware,
// on a loopback httptest server.
type Sim struct {
	*Middleware
	// URL is the SCIM base (…/scim/v2).
	URL   string
	Token string
	srv   *httptest.Server
	st    *bolt.Store
}

// Start opens a bolt store in dir and serves it. Close it when done.
func Start(dir string, opts Options) (*Sim, error) {
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	st, err := bolt.Open(filepath.Join(dir, "scimoutsim.db"))
	if err != nil {
		return nil, fmt.Errorf("scimoutsim: open store: %w", err)
	}
	h, err := scim.NewHandler(st, discard{}, scim.Config{Token: opts.Token, MaxResults: opts.MaxResults})
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("scimoutsim: %w", err)
	}
	mw := Wrap(h, opts)
	srv := httptest.NewServer(mw)
	return &Sim{Middleware: mw, URL: srv.URL + "/scim/v2", Token: opts.Token, srv: srv, st: st}, nil
}

// Close stops the server and closes the store.
func (s *Sim) Close() error {
	s.srv.Close()
	return s.st.Close()
}

// discard is the queue the server enqueues sync intents to: nobody syncs
// from the far end.
type discard struct{}

func (discard) Enqueue(context.Context, ...queue.Intent) error { return nil }
