// Package hooks receives Okta Event Hooks at /okta/hooks and turns them
// into desired-state changes plus sync intents, between SCIM pushes.
//
// Okta verifies the endpoint once with a GET carrying
// X-Okta-Verification-Challenge (and, like every delivery, the configured
// auth header: Okta support's sample verification request shows it), to be
// echoed as {"verification": "<value>"}. Deliveries are POSTs of
// {"data":{"events":[…]}}, at least once, possibly batched, and Okta gives
// up after about 3 s (then retries once). So a delivery is authenticated
// (a shared secret in a configurable header, compared in constant time),
// bounded (1 MiB), parsed and checked whole before anything is written
// (a bad body is a 400 that changes nothing), and then, event by event:
// skipped if its uuid was seen ("hookevent/<uuid>" documents with a TTL),
// applied, and its uuid recorded. Apply-then-record means a crash in
// between only re-applies an event, which is harmless: every change is an
// idempotent "set" of desired state. The LMS is never called here; the
// intents go to the queue once, at the end. An event may need the user's
// Okta profile: the Directory is asked with a tight time budget, and if it
// is slow or down the event's own data is recorded and reconciliation
// fills in the rest.
//
// Identities are matched by externalId = Okta user id. Hook-made changes
// keep the stored SCIM User in exactly the canonical form the SCIM API
// stores, so Okta's later pushes and the hooks agree.
package hooks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Path is where Okta sends verification requests and deliveries.
const Path = "/okta/hooks"

// Store is the part of store.Store the receiver uses.
type Store interface {
	CreateIdentity(ctx context.Context, id *store.Identity) error
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	UpdateIdentity(ctx context.Context, id *store.Identity, expectedVersion int64) error
	DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*store.Identity, error)
	CreateGroup(ctx context.Context, g *store.Group, members []string) ([]store.Changed, error)
	GetGroup(ctx context.Context, id string) (*store.Group, error)
	GetGroupByDisplayName(ctx context.Context, displayName string) (*store.Group, error)
	UpdateGroup(ctx context.Context, g *store.Group, expectedVersion int64, add, remove []string) ([]store.Changed, error)
	GetDoc(ctx context.Context, key string) (*store.Doc, error)
	PutDoc(ctx context.Context, d *store.Doc, expectedVersion int64) error
}

// Directory looks up Okta users (an *okta.Client).
type Directory interface {
	GetUser(ctx context.Context, id string) (*okta.User, error)
}

// Config configures NewHandler. Secret is required.
type Config struct {
	// Secret is the value Okta sends in AuthHeader (the event hook's
	// authScheme value), compared in constant time.
	Secret string
	// AuthHeader defaults to "Authorization".
	AuthHeader string
	// AppID is learnerlink's own Okta app: removing a user's assignment
	// to it deactivates the identity; assigning it creates (with a
	// Directory) or reactivates one.
	AppID  string
	Logger *slog.Logger // nil: discard
	// MaxBodyBytes bounds a delivery (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// DedupTTL is how long a seen event uuid is remembered (default 7 days;
	// Okta retries within minutes).
	DedupTTL time.Duration
	// DirectoryTimeout bounds one Directory call (default 800 ms) and
	// DirectoryBudget all of a delivery's calls together (default 1.5 s),
	// so a delivery is answered well within Okta's 3 s.
	DirectoryTimeout time.Duration
	DirectoryBudget  time.Duration
	Now              func() time.Time // nil: time.Now
	NewID            func() string    // nil: random UUIDv4
}

const (
	defaultMaxBody   = 1 << 20
	defaultDedupTTL  = 7 * 24 * time.Hour
	defaultDirTO     = 800 * time.Millisecond
	defaultDirBudget = 1500 * time.Millisecond
	// enqueueTimeout bounds the final enqueue; the pending index (the
	// sweeper) covers a failure.
	enqueueTimeout = 2 * time.Second
	// conflictRetries bounds re-read-and-reapply on concurrent writes.
	conflictRetries = 4
	seenKind        = "hookevent"
)

type handler struct {
	st  Store
	q   queue.Enqueuer
	dir Directory // nil: no look-ups
	cfg Config
	log *slog.Logger
}

// NewHandler returns the receiver for Path. dir may be nil.
func NewHandler(st Store, q queue.Enqueuer, dir Directory, cfg Config) (http.Handler, error) {
	if st == nil || q == nil {
		return nil, errors.New("hooks: store and enqueuer are required")
	}
	if cfg.Secret == "" {
		return nil, errors.New("hooks: a shared secret is required")
	}
	if cfg.AuthHeader == "" {
		cfg.AuthHeader = "Authorization"
	}
	if !token(cfg.AuthHeader, 128) || strings.ContainsAny(cfg.AuthHeader, `"(),/:;<=>?@[\]{}`) {
		return nil, fmt.Errorf("hooks: AuthHeader %q is not an HTTP header name", cfg.AuthHeader)
	}
	if cfg.MaxBodyBytes < 0 || cfg.DedupTTL < 0 || cfg.DirectoryTimeout < 0 || cfg.DirectoryBudget < 0 {
		return nil, errors.New("hooks: limits must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	if cfg.DedupTTL == 0 {
		cfg.DedupTTL = defaultDedupTTL
	}
	if cfg.DirectoryTimeout == 0 {
		cfg.DirectoryTimeout = defaultDirTO
	}
	if cfg.DirectoryBudget == 0 {
		cfg.DirectoryBudget = defaultDirBudget
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = newUUID
	}
	return &handler{st: st, q: q, dir: dir, cfg: cfg, log: cfg.Logger}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		writeError(w, http.StatusNotFound, "no event hook endpoint at this path; use "+Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "use GET (verification) or POST (delivery)")
		return
	}
	if !h.authorized(r) {
		h.log.WarnContext(r.Context(), "hooks: rejected a request without the shared secret", "method", r.Method)
		writeError(w, http.StatusUnauthorized, "missing or invalid "+h.cfg.AuthHeader+" header")
		return
	}
	if r.Method == http.MethodGet {
		h.verify(w, r)
		return
	}
	h.deliver(w, r)
}

// authorized compares the configured header with the secret; hashing
// both first keeps the comparison constant-time in the length too.
func (h *handler) authorized(r *http.Request) bool {
	got := sha256.Sum256([]byte(strings.TrimSpace(r.Header.Get(h.cfg.AuthHeader))))
	want := sha256.Sum256([]byte(h.cfg.Secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (h *handler) verify(w http.ResponseWriter, r *http.Request) {
	challenge := r.Header.Get("X-Okta-Verification-Challenge")
	if challenge == "" || len(challenge) > 1024 {
		writeError(w, http.StatusBadRequest, "missing X-Okta-Verification-Challenge header")
		return
	}
	h.log.InfoContext(r.Context(), "hooks: answered Okta's verification challenge")
	writeJSON(w, http.StatusOK, map[string]string{"verification": challenge})
}

func (h *handler) deliver(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "delivery exceeds "+strconv.FormatInt(h.cfg.MaxBodyBytes, 10)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read the body")
		return
	}
	evs, err := parseDelivery(body)
	if err != nil {
		h.log.WarnContext(ctx, "hooks: rejected a malformed delivery", "error", err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	run := &batch{h: h, dirDeadline: time.Now().Add(h.cfg.DirectoryBudget), users: map[string]lookup{}}
	var failed error
	stats := map[string]int{}
	for i := range evs {
		res, err := run.handle(ctx, &evs[i])
		if err != nil {
			failed = err
			break
		}
		stats[res]++
	}
	h.enqueue(ctx, run.intents)
	attrs := []any{"events", len(evs), "applied", stats[resApplied], "unchanged", stats[resUnchanged],
		"duplicates", stats[resDuplicate], "ignored", stats[resIgnored], "intents", len(run.intents),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if failed != nil {
		// Okta retries the delivery; events done so far are recorded and
		// will be skipped.
		h.log.ErrorContext(ctx, "hooks: delivery failed; Okta will retry", append(attrs, "error", failed.Error())...)
		writeError(w, http.StatusInternalServerError, "the delivery could not be applied; retry")
		return
	}
	h.log.InfoContext(ctx, "hooks: delivery processed", attrs...)
	// Okta wants an empty 200 or 204.
	w.WriteHeader(http.StatusOK)
}

func (h *handler) enqueue(ctx context.Context, intents []queue.Intent) {
	if len(intents) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enqueueTimeout)
	defer cancel()
	if err := h.q.Enqueue(ctx, intents...); err != nil {
		h.log.WarnContext(ctx, "hooks: enqueue failed after the store writes; the sweeper will re-queue from the pending index",
			"intents", len(intents), "error", err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // string maps always encode
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
