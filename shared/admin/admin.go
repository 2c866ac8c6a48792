// Package admin serves learnerlink's admin endpoints: the review list and
// its resolutions, on-demand reconciliation, reconciliation reports and
// the audit trail. Every route needs "Authorization: Bearer <token>".
//
//	GET  /admin/reviews[?target=T]                       review entries
//	GET  /admin/reviews/{target}/{identityId}             one entry
//	POST /admin/reviews/{target}/{identityId}/resolve     {"action":"link","learnerId":"…"} | {"action":"create"} | {"action":"ignore"}, optional "by"
//	POST /admin/reconcile?dryRun=true|false               run now; answers the report (dryRun defaults to false)
//	GET  /admin/reports[?target=T&limit=N]                newest reports first (limit 1 by default)
//	GET  /admin/audit?identity=ID[&limit=N]               an identity's audit trail, newest first
//
// Mount the handler at "/admin/" without stripping the prefix. Answers are
// JSON; errors are {"error": "..."} with a fitting status.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Store is what the handler reads directly.
type Store interface {
	ListAudit(ctx context.Context, identityID string, limit int) ([]store.AuditRecord, error)
	ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error)
}

// Reviews is the review list (*review.List).
type Reviews interface {
	List(ctx context.Context, target string) ([]review.Entry, error)
	Get(ctx context.Context, target, identityID string) (*review.Entry, error)
	Resolve(ctx context.Context, identityID, target string, r review.Resolution, by string) (*review.Entry, error)
}

// ReconcileFunc runs a reconciliation now (reconcile.RunAll over the
// deployment's targets, with its deps and options).
type ReconcileFunc func(ctx context.Context, dryRun bool) (*reconcile.Report, error)

var _ Reviews = (*review.List)(nil)

// Deps are what the handler serves.
type Deps struct {
	Store   Store
	Reviews Reviews
	// Reconcile, if nil, makes POST /admin/reconcile answer 501.
	Reconcile ReconcileFunc
	Logger    *slog.Logger
}

// ResolveRequest is the body of a resolve call.
type ResolveRequest struct {
	Action    string `json:"action"` // link, create or ignore
	LearnerID string `json:"learnerId,omitempty"`
	By        string `json:"by,omitempty"` // who decides, for the audit trail
}

// ResolveResponse answers a resolve call.
type ResolveResponse struct {
	Resolved   review.Entry `json:"resolved"`
	Resolution string       `json:"resolution"`
}

type handler struct {
	d     Deps
	token string
}

// NewHandler returns the admin API guarded by the bearer token (an empty
// token refuses everything).
func NewHandler(d Deps, token string) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{d: d, token: token}
	mux := http.NewServeMux()
	for _, rt := range []struct {
		method, path string
		fn           http.HandlerFunc
	}{
		{http.MethodGet, "/admin/reviews", h.listReviews},
		{http.MethodGet, "/admin/reviews/{target}/{identityId}", h.getReview},
		{http.MethodPost, "/admin/reviews/{target}/{identityId}/resolve", h.resolve},
		{http.MethodPost, "/admin/reconcile", h.reconcile},
		{http.MethodGet, "/admin/reports", h.reports},
		{http.MethodGet, "/admin/audit", h.audit},
	} {
		mux.HandleFunc(rt.method+" "+rt.path, rt.fn)
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", rt.method)
			writeError(w, http.StatusMethodNotAllowed, "use "+rt.method)
		})
	}
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin route")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !scim.BearerOK(r, h.token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="learnerlink-admin"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (h *handler) listReviews(w http.ResponseWriter, r *http.Request) {
	if h.d.Reviews == nil {
		writeError(w, http.StatusNotImplemented, "no review list configured")
		return
	}
	es, err := h.d.Reviews.List(r.Context(), r.URL.Query().Get("target"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if es == nil {
		es = []review.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reviews": es})
}

func (h *handler) getReview(w http.ResponseWriter, r *http.Request) {
	if h.d.Reviews == nil {
		writeError(w, http.StatusNotImplemented, "no review list configured")
		return
	}
	e, err := h.d.Reviews.Get(r.Context(), r.PathValue("target"), r.PathValue("identityId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (h *handler) resolve(w http.ResponseWriter, r *http.Request) {
	if h.d.Reviews == nil {
		writeError(w, http.StatusNotImplemented, "no review list configured")
		return
	}
	var req ResolveRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be {\"action\": \"link\"|\"create\"|\"ignore\", \"learnerId\": …}")
		return
	}
	var res review.Resolution
	switch strings.ToLower(req.Action) {
	case "link":
		if req.LearnerID == "" {
			writeError(w, http.StatusBadRequest, "link needs a learnerId")
			return
		}
		res.Link = req.LearnerID
	case "create":
		res.CreateNew = true
	case "ignore":
		res.Ignore = true
	default:
		writeError(w, http.StatusBadRequest, "action must be link, create or ignore")
		return
	}
	by := req.By
	if by == "" {
		by = r.Header.Get("X-Admin-User")
	}
	by = sanitize(by)
	e, err := h.d.Reviews.Resolve(r.Context(), r.PathValue("identityId"), r.PathValue("target"), res, by)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "admin: review resolved", "identity", e.IdentityID, "target", e.Target, "resolution", res.String())
	writeJSON(w, http.StatusOK, ResolveResponse{Resolved: *e, Resolution: res.String()})
}

// sanitize keeps an admin name printable and short: it lands in the
// audit trail.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

func (h *handler) reconcile(w http.ResponseWriter, r *http.Request) {
	if h.d.Reconcile == nil {
		writeError(w, http.StatusNotImplemented, "reconciliation is not configured here")
		return
	}
	dry := false
	if v := r.URL.Query().Get("dryRun"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "dryRun must be true or false")
			return
		}
		dry = b
	}
	rep, err := h.d.Reconcile(r.Context(), dry)
	if err != nil && rep == nil {
		h.fail(w, r, err)
		return
	}
	if err != nil {
		// Stopped part way (it resumes on the next run): say so with the
		// partial report.
		h.d.Logger.WarnContext(r.Context(), "admin: reconciliation interrupted", "err", err)
		writeJSON(w, http.StatusAccepted, map[string]any{"report": rep, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (h *handler) reports(w http.ResponseWriter, r *http.Request) {
	if h.d.Store == nil {
		writeError(w, http.StatusNotImplemented, "no store configured")
		return
	}
	n, ok := limit(w, r, 1, 100)
	if !ok {
		return
	}
	reps, err := reconcile.LatestReports(r.Context(), h.d.Store, r.URL.Query().Get("target"), n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if reps == nil {
		reps = []reconcile.Report{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reports": reps})
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	if h.d.Store == nil {
		writeError(w, http.StatusNotImplemented, "no store configured")
		return
	}
	id := r.URL.Query().Get("identity")
	if id == "" {
		writeError(w, http.StatusBadRequest, "identity is required")
		return
	}
	n, ok := limit(w, r, 100, 1000)
	if !ok {
		return
	}
	recs, err := h.d.Store.ListAudit(r.Context(), id, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if recs == nil {
		recs = []store.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": id, "records": recs})
}

func limit(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to "+strconv.Itoa(most))
		return 0, false
	}
	return n, true
}

// fail maps known errors to statuses; anything else is logged and
// answered as a bare 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var ce *connector.Error
	switch {
	case errors.As(err, &ce) && ce.Conflict:
		status = http.StatusConflict
	case errors.As(err, &ce) && ce.Retryable:
		status = http.StatusBadGateway
	case errors.As(err, &ce):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, review.ErrNotFound), errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, review.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, review.ErrLearnerUnknown):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, review.ErrLearnerTaken), errors.Is(err, reconcile.ErrBusy):
		status = http.StatusConflict
	case errors.Is(err, review.ErrUnsupported):
		status = http.StatusNotImplemented
	}
	if status == http.StatusInternalServerError {
		h.d.Logger.ErrorContext(r.Context(), "admin: request failed", "path", r.URL.Path, "err", err)
		writeError(w, status, "internal error")
		return
	}
	writeError(w, status, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
