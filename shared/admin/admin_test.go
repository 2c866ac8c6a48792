package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/admin"
	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

const token = "admin-secret"

// fakeReviews records resolutions and answers a fixed list.
type fakeReviews struct {
	mu       sync.Mutex
	entries  []review.Entry
	resolved []string // "identity target resolution by"
	err      error
}

func (f *fakeReviews) List(_ context.Context, target string) ([]review.Entry, error) {
	var out []review.Entry
	for _, e := range f.entries {
		if target == "" || e.Target == target {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeReviews) Get(_ context.Context, target, id string) (*review.Entry, error) {
	for _, e := range f.entries {
		if e.Target == target && e.IdentityID == id {
			return &e, nil
		}
	}
	return nil, fmt.Errorf("%s/%s: %w", target, id, review.ErrNotFound)
}

func (f *fakeReviews) Resolve(_ context.Context, id, target string, r review.Resolution, by string) (*review.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.resolved = append(f.resolved, fmt.Sprintf("%s %s %s %s", id, target, r, by))
	return &review.Entry{IdentityID: id, Target: target}, nil
}

type fixture struct {
	srv     *httptest.Server
	reviews *fakeReviews
	dry     []bool
	runErr  error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()
	if err := st.AppendAudit(ctx, &store.AuditRecord{IdentityID: "id-1", Time: time.Now(), Actor: "worker", Action: "learner.create", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for i, at := range []string{"20261120T030000.000Z", "20261121T030000.000Z"} {
		fin, _ := time.Parse("20060102T150405.000Z", at)
		b, _ := json.Marshal(reconcile.Report{Target: "absorb", RunID: fmt.Sprint("run-", i), Complete: true, Finished: fin, Drift: i})
		if err := st.PutDoc(ctx, &store.Doc{Key: reconcile.ReportKind + "/absorb-" + at, Value: b}, 0); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{reviews: &fakeReviews{entries: []review.Entry{
		{IdentityID: "id-1", Target: "absorb", Status: review.Open, Reason: "2 learners match by email", Candidates: []string{"L1", "L2"}},
	}}}
	run := func(_ context.Context, dry bool) (*reconcile.Report, error) {
		f.dry = append(f.dry, dry)
		if f.runErr != nil {
			return nil, f.runErr
		}
		return &reconcile.Report{Target: "absorb", DryRun: dry, Complete: true}, nil
	}
	f.srv = httptest.NewServer(admin.NewHandler(admin.Deps{Store: st, Reviews: f.reviews, Reconcile: run}, token))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	bearer := "Bearer " + token
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		want                           string // substring of the answer
	}{
		{"no token", "GET", "/admin/reviews", "", "", 401, "bearer token"},
		{"wrong token", "GET", "/admin/reviews", "Bearer nope", "", 401, "bearer token"},
		{"basic auth", "GET", "/admin/reviews", "Basic " + token, "", 401, ""},
		{"list reviews", "GET", "/admin/reviews", bearer, "", 200, `"candidates": [`},
		{"list other target", "GET", "/admin/reviews?target=onelogin", bearer, "", 200, `"reviews": []`},
		{"one review", "GET", "/admin/reviews/absorb/id-1", bearer, "", 200, `"identityId": "id-1"`},
		{"unknown review", "GET", "/admin/reviews/absorb/id-9", bearer, "", 404, "no such review entry"},
		{"resolve link", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"link","learnerId":"L2","by":"ann"}`, 200, `"resolution": "link learner L2"`},
		{"resolve create", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"create"}`, 200, "create a new learner"},
		{"resolve ignore", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"IGNORE"}`, 200, `"resolution": "ignore"`},
		{"link without learner", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"link"}`, 400, "learnerId"},
		{"bad action", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"merge"}`, 400, "link, create or ignore"},
		{"bad body", "POST", "/admin/reviews/absorb/id-1/resolve", bearer, `{"action":"link","extra":1}`, 400, "body must be"},
		{"reconcile", "POST", "/admin/reconcile", bearer, "", 200, `"dryRun": false`},
		{"reconcile dry", "POST", "/admin/reconcile?dryRun=true", bearer, "", 200, `"dryRun": true`},
		{"reconcile bad flag", "POST", "/admin/reconcile?dryRun=maybe", bearer, "", 400, "true or false"},
		{"reconcile is POST", "GET", "/admin/reconcile", bearer, "", 405, ""},
		{"latest report", "GET", "/admin/reports", bearer, "", 200, `"runId": "run-1"`},
		{"two reports", "GET", "/admin/reports?target=absorb&limit=2", bearer, "", 200, `"runId": "run-0"`},
		{"bad limit", "GET", "/admin/reports?limit=0", bearer, "", 400, "limit"},
		{"audit", "GET", "/admin/audit?identity=id-1", bearer, "", 200, `"Action": "learner.create"`},
		{"audit needs identity", "GET", "/admin/audit", bearer, "", 400, "identity is required"},
		{"unknown route", "GET", "/admin/nothing", bearer, "", 404, "no such admin route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			status, body := f.do(t, tt.method, tt.path, tt.auth, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tt.method, tt.path, status, body, tt.status, tt.want)
			}
		})
	}
}

func TestResolvePassesTheDecision(t *testing.T) {
	f := newFixture(t)
	if status, body := f.do(t, "POST", "/admin/reviews/absorb/id-1/resolve", "Bearer "+token, `{"action":"link","learnerId":"L2","by":"ann\n<script>"}`); status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if got := f.reviews.resolved; len(got) != 1 || got[0] != "id-1 absorb link learner L2 ann<script>" {
		t.Fatalf("resolved = %q", got)
	}
}

func TestErrorStatuses(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"learner taken", fmt.Errorf("x: %w", review.ErrLearnerTaken), 409},
		{"learner unknown", review.ErrLearnerUnknown, 422},
		{"invalid", review.ErrInvalid, 400},
		{"unsupported", review.ErrUnsupported, 501},
		{"target conflict", &connector.Error{Op: "create", Conflict: true, Err: errors.New("username taken")}, 409},
		{"target validation", &connector.Error{Op: "create", Status: 422, Err: errors.New("bad")}, 422},
		{"target down", &connector.Error{Op: "create", Retryable: true, Err: errors.New("503")}, 502},
		{"other", errors.New("disk on fire"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.reviews.err = tt.err
			status, body := f.do(t, "POST", "/admin/reviews/absorb/id-1/resolve", "Bearer "+token, `{"action":"create"}`)
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, body, tt.status)
			}
			if status == 500 && strings.Contains(body, "fire") {
				t.Fatalf("internal error leaked: %s", body)
			}
		})
	}
	f := newFixture(t)
	f.runErr = fmt.Errorf("%w (run x)", reconcile.ErrBusy)
	if status, _ := f.do(t, "POST", "/admin/reconcile", "Bearer "+token, ""); status != 409 {
		t.Fatalf("busy reconcile: %d", status)
	}
}
