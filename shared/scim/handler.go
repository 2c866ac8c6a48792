package scim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Store is the part of store.Store the SCIM API uses.
type Store interface {
	store.Identities
	store.Groups
}

// Config configures NewHandler.
type Config struct {
	// Token is the bearer token clients must send; compared in constant time.
	Token string
	// BaseURL is the absolute base for meta.location (e.g.
	// https://x.execute-api…/scim/v2). Empty: derived from the request
	// (X-Forwarded-Proto/Host, else the Host header) + "/scim/v2".
	BaseURL string
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
	NewID   func() string    // nil: random UUIDv4
	// MaxBodyBytes bounds request bodies (0: 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// MaxResults caps count in list requests (0: 200); advertised as
	// filter.maxResults.
	MaxResults int
}

const (
	defaultMaxBody    = 1 << 20
	defaultMaxResults = 200
	// maxResourceBytes keeps a stored resource well inside DynamoDB's
	// 400 KB item limit, so an oversized body is a 413, not a store error.
	maxResourceBytes = 256 << 10
	// conflictRetries bounds re-read-and-reapply on a concurrent change.
	conflictRetries = 4
	// enqueueTimeout bounds the post-write enqueue; the pending index
	// covers a failure.
	enqueueTimeout = 3 * time.Second
	// scanPage is the page size when a filter walks the whole listing.
	scanPage = 500
	basePath = "/scim/v2"
)

type handler struct {
	st     Store
	q      queue.Enqueuer
	cfg    Config
	log    *slog.Logger
	users  *resourceType
	groups *resourceType
	mux    *http.ServeMux
	// cursors makes sequential startIndex paging read each resource once.
	cursors *cursorCache
}

// NewHandler returns the SCIM API for paths under /scim/v2.
func NewHandler(st Store, q queue.Enqueuer, cfg Config) (http.Handler, error) {
	if st == nil || q == nil {
		return nil, errors.New("scim: store and enqueuer are required")
	}
	if cfg.Token == "" {
		return nil, errors.New("scim: a bearer token is required")
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxResults < 0 {
		return nil, errors.New("scim: MaxBodyBytes and MaxResults must not be negative")
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("scim: BaseURL %q must be an absolute http(s) URL", cfg.BaseURL)
		}
		cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = newUUID
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	if cfg.MaxResults == 0 {
		cfg.MaxResults = defaultMaxResults
	}
	cursors := newCursorCache(cfg.Now)
	h := &handler{
		st: invalidatingStore{Store: st, c: cursors}, q: q, cfg: cfg, log: cfg.Logger,
		users: userResourceType(), groups: groupResourceType(),
		mux: http.NewServeMux(), cursors: cursors,
	}
	h.routes()
	return h, nil
}

// apiFunc handles one method of a route. A returned *scimError is the
// client's answer; any other error is a store failure (500).
type apiFunc func(w http.ResponseWriter, r *http.Request) error

type endpoint map[string]apiFunc

func (h *handler) routes() {
	h.handle(basePath+"/Users", endpoint{"GET": h.listUsersHTTP, "POST": h.createUser})
	h.handle(basePath+"/Users/.search", endpoint{"POST": h.searchUsers})
	h.handle(basePath+"/Users/{id}", endpoint{"GET": h.getUser, "PUT": h.replaceUser, "PATCH": h.patchUser, "DELETE": h.deleteUser})
	h.handle(basePath+"/Groups", endpoint{"GET": h.listGroupsHTTP, "POST": h.createGroup})
	h.handle(basePath+"/Groups/.search", endpoint{"POST": h.searchGroups})
	h.handle(basePath+"/Groups/{id}", endpoint{"GET": h.getGroup, "PUT": h.replaceGroup, "PATCH": h.patchGroup, "DELETE": h.deleteGroup})
	h.handle(basePath+"/ServiceProviderConfig", endpoint{"GET": h.serviceProviderConfig})
	h.handle(basePath+"/ResourceTypes", endpoint{"GET": h.resourceTypes})
	h.handle(basePath+"/ResourceTypes/{name}", endpoint{"GET": h.resourceType})
	h.handle(basePath+"/Schemas", endpoint{"GET": h.schemas})
	h.handle(basePath+"/Schemas/{urn}", endpoint{"GET": h.schemaByID})
	unsupported := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h.fail(w, r, notFound("%s is not supported by this service provider (see ServiceProviderConfig)", what))
		}
	}
	h.mux.HandleFunc(basePath+"/Bulk", unsupported("/Bulk (bulk.supported=false)"))
	h.mux.HandleFunc(basePath+"/Me", unsupported("/Me"))
	h.mux.HandleFunc(basePath+"/Me/", unsupported("/Me"))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, notFound("no SCIM endpoint at this path; the API is under %s", basePath))
	})
}

// handle registers a route without a method in the pattern so a wrong
// method gets a SCIM 405 body (ServeMux's own 405 is plain text).
func (h *handler) handle(pattern string, e endpoint) {
	methods := sortedKeys(e)
	allow := strings.Join(methods, ", ")
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		f, ok := e[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			h.fail(w, r, errorf(http.StatusMethodNotAllowed, "", "method not allowed here; use %s", allow))
			return
		}
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// reqInfo travels in the request context so the access log can name the
// resource a handler worked on.
type reqInfo struct {
	requestID  string
	resourceID string
}

type ctxKey struct{}

func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

func setResourceID(r *http.Request, id string) {
	if keyOK(id) {
		info(r.Context()).resourceID = id
	}
}

// recorder captures the status for the access log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.ResponseWriter.Write(b)
}

func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{requestID: requestID(r)}
	w.Header().Set("X-Request-Id", ri.requestID)
	rec := &recorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "scim: panic", "request_id", ri.requestID, "panic", fmt.Sprint(p))
			if rec.status == 0 {
				h.writeError(rec, errorf(http.StatusInternalServerError, "", "internal error"))
			}
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", ri.requestID),
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", rec.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if ri.resourceID != "" {
			attrs = append(attrs, slog.String("id", ri.resourceID))
		}
		h.log.LogAttrs(r.Context(), level, "scim request", attrs...)
	}()
	if !h.authorized(r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
		h.writeError(rec, errorf(http.StatusUnauthorized, "", "missing or invalid bearer token"))
		return
	}
	h.mux.ServeHTTP(rec, r)
}

// authorized compares the bearer token in constant time; hashing first
// also hides the token's length.
func (h *handler) authorized(r *http.Request) bool { return BearerOK(r, h.cfg.Token) }

// BearerOK reports whether the request carries "Authorization: Bearer
// <token>". Hashing both sides first makes the comparison constant-time in
// the token's length too.
func BearerOK(r *http.Request, token string) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	want := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// requestID takes the caller's id when it is a sane token, else makes one.
func requestID(r *http.Request) string {
	for _, hdr := range []string{"X-Request-Id", "X-Amzn-Trace-Id"} {
		if v := r.Header.Get(hdr); v != "" && len(v) <= 200 && printableToken(v) {
			return v
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// fail writes err: a *scimError as is, anything else as a logged 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *scimError
	if !errors.As(err, &se) {
		h.log.ErrorContext(r.Context(), "scim: store failure", "request_id", info(r.Context()).requestID, "error", err.Error())
		se = errorf(http.StatusInternalServerError, "", "internal error; the request was not applied")
	}
	h.writeError(w, se)
}

func (h *handler) writeError(w http.ResponseWriter, se *scimError) {
	writeJSON(w, se.status, se.body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own values are encoded; this is a programming error.
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorf(status, "", "internal error").body())
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// readBody reads and decodes a JSON object body, enforcing Content-Type
// and size.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/scim+json") {
			return nil, errorf(http.StatusUnsupportedMediaType, "", "Content-Type must be application/scim+json or application/json")
		}
	}
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "", "request body exceeds %d bytes", h.cfg.MaxBodyBytes)
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, badRequest(errInvalidSyntax, "could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest(errInvalidSyntax, "request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest(errInvalidSyntax, "request body has data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest(errInvalidSyntax, "request body must be a JSON object")
	}
	return m, nil
}

// baseURL is the absolute /scim/v2 URL for meta.location and $ref.
func (h *handler) baseURL(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return h.cfg.BaseURL
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		proto = p
	}
	host := r.Host
	if fh := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(fh) {
		host = fh
	}
	if !validHost(host) {
		host = "localhost"
	}
	return proto + "://" + host + basePath
}

func firstValue(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return strings.TrimSpace(first)
}

// validHost accepts host[:port] (including bracketed IPv6) and nothing
// that could break out of a URL.
func validHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

func (h *handler) now() time.Time { return h.cfg.Now().UTC() }

// enqueue queues a sync intent per changed identity after a successful
// store write. Failure is logged, not returned: the pending index is the
// durable outbox (see the package doc).
func (h *handler) enqueue(ctx context.Context, reason string, changed ...store.Changed) {
	if len(changed) == 0 {
		return
	}
	rid := info(ctx).requestID
	intents := make([]queue.Intent, len(changed))
	for i, c := range changed {
		intents[i] = queue.Intent{IdentityID: c.ID, Version: c.Version, Reason: reason, RequestID: rid}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enqueueTimeout)
	defer cancel()
	if err := h.q.Enqueue(ctx, intents...); err != nil {
		h.log.WarnContext(ctx, "scim: enqueue failed after the store write; the sweeper will re-queue from the pending index",
			"request_id", rid, "reason", reason, "identities", len(intents), "error", err.Error())
	}
}

// ETags and If-Match (RFC 7644 §3.14): weak tags carrying the store version.

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// tagsMatch reports whether a comma-separated If-Match/If-None-Match list
// names version v ("*" matches any).
func tagsMatch(header string, v int64) bool {
	want := strconv.FormatInt(v, 10)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if strings.Trim(t, `"`) == want {
			return true
		}
	}
	return false
}

// checkIfMatch fails with 412 when If-Match is present and names another version.
func checkIfMatch(r *http.Request, v int64) error {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 || tagsMatch(strings.Join(vals, ","), v) {
		return nil
	}
	return errorf(http.StatusPreconditionFailed, "", "If-Match does not match the current version %s", etag(v))
}

func notModified(r *http.Request, v int64) bool {
	inm := r.Header.Values("If-None-Match")
	return len(inm) > 0 && tagsMatch(strings.Join(inm, ","), v)
}

func errConflict(kind string) error {
	return errorf(http.StatusConflict, "", "the %s was changed concurrently %d times in a row; retry the request", kind, conflictRetries+1)
}

// writeResource answers a single resource with its ETag.
func writeResource(w http.ResponseWriter, status int, res map[string]any, version int64) {
	w.Header().Set("ETag", etag(version))
	writeJSON(w, status, res)
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func meta(resourceType, location string, created, modified time.Time, version int64) map[string]any {
	return map[string]any{
		"resourceType": resourceType,
		"created":      formatTime(created),
		"lastModified": formatTime(modified),
		"location":     location,
		"version":      etag(version),
	}
}

// decodeResource parses a stored resource (numbers kept exact).
func decodeResource(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("stored resource is not a JSON object: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// encodeResource serialises a canonical resource for the store.
func encodeResource(res map[string]any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, badRequest(errInvalidValue, "resource cannot be encoded: %v", err)
	}
	if buf.Len() > maxResourceBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "", "resource exceeds %d bytes", maxResourceBytes)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// pathID reads and records the {id} path value.
func pathID(r *http.Request) string {
	id := r.PathValue("id")
	setResourceID(r, id)
	return id
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}
