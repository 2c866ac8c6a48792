// Package absorb is learnerlink's connector for Absorb LMS, speaking the
// Integration API v2 on a regional gateway (https://rest.myabsorb.com,
// .ca, .eu, .com.au, or their rest.sandbox.* twins).
//
// # What it calls, and how sure we are
//
// Tags as in TARGETS.md: [D] documented by Absorb, [C] seen in public
// clients, [I] our inference.
//
//	POST /authenticate                       token (JSON string, 4 h)            [D]
//	GET  /users?_filter&_offset&_limit       find, list (offset = page index)     [D]
//	GET  /users/{id}, PUT /users/{id}        read, full-replacement update        [C]
//	POST /users                              create                               [C]
//	POST /users/upload                       bulk create/update, ≤200 rows        [C]
//	GET  /departments?departmentName=…       department by name                   [D]
//	POST /departments                        create department (CreateDepartments) [I]
//	GET  /users/{id}/enrollments/{courseId}  is the learner enrolled?             [D]
//	POST /users/{id}/enrollments/{courseId}  enroll in a course or curriculum     [I]
//
// Every request carries x-api-key (the private key) and x-api-version: 2;
// every one but /authenticate carries Authorization: Bearer <token>.
// Find sends `<field> eq '<value>'` (quotes doubled) and reads one page of
// up to 1000, so the reported "_filter with _offset > 0 returns empty
// pages" quirk never applies; List pages without a filter.
//
// Admin enrollment: the public v2 material we could search (the Absorb
// docs pages for enrollments and enrollment keys, the v1.5 upgrade guide,
// all-of-us/workbench's absorb.yaml, npezza93/absorb_api,
// clc2salesforce/AbsorbSync, integration guides) documents only enrollment
// reads (GET /users/{id}/enrollments[/{courseId}],
// GET /courses/{id}/enrollments) and enrollment keys; no admin write was
// found. Enroll therefore posts to the documented read resource,
// POST /users/{id}/enrollments/{courseId}, the shape of the legacy REST
// API's enroll route. Curricula share the course id space (Absorb lists
// "Curriculum" as a course type), so both kinds use it. Enroll first reads
// the enrollment, so an existing one costs no write and the call stays
// idempotent whatever the POST does on a duplicate (409 is also taken as
// success). Verify the route against the tenant's downloadable OpenAPI
// document before relying on rule-driven enrollment.
//
// Groups: v2 documents only GET /groups and GET /groups/{id}; no
// membership write was found. SetGroups writes the learner's group names,
// sorted, into the user field Config.GroupsField (e.g.
// "customFields.string30") as "|A|B|C|", so Absorb automatic groups can
// select members with a rule "<field> contains |A|" — the delimiters keep
// "Sales" from matching "Sales Ops". One user write, no member lists, no
// 50,000-member cap. Absorb applies automatic group rules asynchronously
// (reportedly up to ~10 minutes).
//
// # Tokens
//
// /authenticate allows one live token per admin user: issuing one revokes
// the previous [D]. All workers share the token through a TokenCache
// (tokencache.Dynamo in Lambda). To make exactly one of them call
// /authenticate, a worker first claims the refresh by storing a marker
// token (value prefixed "learnerlink:refreshing:", valid 20 s) with
// Replace(prevGeneration, marker); only the winner authenticates and
// replaces the marker with the real token. The others wait for it. Tokens
// are refreshed 30 minutes before their 4 hours run out, or on a 401 — but
// a 401 with the current token is first retried once with the same token,
// because Absorb's load balancer gives transient 401s [C]. A failed login
// (400/401/403) leaves a marker ("learnerlink:auth-failed:", 1 minute) so
// workers fail fast instead of locking the admin account out.
//
// # Errors
//
// Every call retries within itself first (Config.Retry,
// vendorhttp.Retry): a 429/503 waits its Retry-After and is sent again
// whatever the method (Absorb did not process it); other 5xx and
// timeouts are sent again only for GET and PUT (a full replacement), never
// for POST (a create that timed out may exist: the worker looks it up
// before creating again). What is left after Attempts tries or the
// Budget reaches the worker as is.
//
// Failures are *connector.Error: 429/503 are Retryable with the
// Retry-After hint (and reported to the Limiter's Pause), other 5xx and
// transport timeouts Retryable, 400/422 permanent with Absorb's
// {validations, code, message} in the text (quoted values and the
// learner's own values redacted), 404 NotFound, 409 or a duplicate
// username/external id Conflict. Nothing logs tokens, passwords or
// attribute values.
package absorb

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

// Limiter gates every request to Absorb (shared/throttle provides them).
type Limiter = vendorhttp.Limiter

// TokenCache shares the token between workers (shared/tokencache).
type TokenCache = vendorhttp.TokenCache

// Config configures a Connector.
type Config struct {
	// BaseURL is the regional gateway, e.g. https://rest.myabsorb.com.
	// http is accepted only for loopback hosts (tests).
	BaseURL string
	// Username and Password are the API admin's; PrivateKey is the REST
	// API private key, sent as x-api-key too.
	Username, Password, PrivateKey string
	// HTTPClient is used for every call; nil means a client with sane
	// timeouts.
	HTTPClient *http.Client
	// Limiter is waited on before every HTTP request, /authenticate and
	// reads included.
	Limiter Limiter
	// Tokens holds the shared token.
	Tokens TokenCache
	// DefaultDepartmentID is used when a learner has no department, or
	// one Absorb does not know (and cannot be created).
	DefaultDepartmentID string
	// CreateDepartments creates departments missing by name
	// (POST /departments, an inferred endpoint); when Absorb refuses, the
	// default department is used and a warning logged.
	CreateDepartments bool
	// GroupsField is the user field SetGroups writes the group names to,
	// in Fields syntax ("customFields.string30"). Empty: SetGroups fails.
	GroupsField string
	// Retry bounds the in-request retries of every call (see
	// vendorhttp.Retry: 429/503 for any method, other 5xx and timeouts
	// for GET and PUT only); the zero value is 4 tries within 20 s,
	// Attempts 1 turns retries off. A 401 is handled apart (below).
	Retry  vendorhttp.Retry
	Logger *slog.Logger
	Now    func() time.Time
}

// Connector talks to one Absorb portal. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	api    *vendorhttp.API
	log    *slog.Logger
	now    func() time.Time
	warned vendorhttp.Warned // unsupported Fields keys

	mu    sync.Mutex
	depts map[string]deptEntry // folded department name → id
}

type deptEntry struct {
	id       string
	fallback bool // the default, used because the name is unknown
	at       time.Time
}

var (
	_ connector.Connector   = (*Connector)(nil)
	_ connector.GroupSetter = (*Connector)(nil)
	_ connector.Enroller    = (*Connector)(nil)
	_ connector.Lister      = (*Connector)(nil)
)

// New checks cfg and returns a Connector. It makes no request.
func New(cfg Config) (*Connector, error) {
	base, err := vendorhttp.BaseURL("absorb", cfg.BaseURL, true)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Username == "" || cfg.Password == "" || cfg.PrivateKey == "":
		return nil, errors.New("absorb: Username, Password and PrivateKey are required")
	case cfg.Tokens == nil:
		return nil, errors.New("absorb: Tokens is required")
	case cfg.Limiter == nil:
		return nil, errors.New("absorb: Limiter is required")
	}
	if cfg.GroupsField != "" && !writableField(cfg.GroupsField) {
		return nil, fmt.Errorf("absorb: GroupsField %q is not a text user field (e.g. customFields.string30)", cfg.GroupsField)
	}
	c := &Connector{cfg: cfg, depts: map[string]deptEntry{}}
	c.api = vendorhttp.NewAPI(vendorhttp.API{Vendor: "absorb", Base: base, HTTP: cfg.HTTPClient, Limiter: cfg.Limiter,
		Log: cfg.Logger, Now: cfg.Now, Retry: cfg.Retry, Decorate: c.decorate, Classify: c.classify,
		Auth: vendorhttp.Auth{Tokens: cfg.Tokens, Login: c.authenticate, Lifetime: tokenLifetime, RefreshBefore: refreshBefore,
			RetrySame: unauthPause, Attempts: maxAttempts,
			Held: "absorb refused the API login recently (check username, password and private key); not trying again yet"}})
	c.log, c.now = c.api.Log, c.api.Now
	return c, nil
}
