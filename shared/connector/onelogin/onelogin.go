// Package onelogin is learnerlink's connector for OneLogin, speaking the
// API v2 (users, roles) with OAuth 2.0 client-credentials tokens, plus the
// v1 events API for loop prevention.
//
// # What it calls, and how sure we are
//
// Tags as in TARGETS.md: [D] documented on developers.onelogin.com, [C]
// seen in OneLogin's own SDKs (onelogin-go-sdk, onelogin-python-sdk, both
// generated from or written against the real API), [I] our inference.
//
//	POST   /auth/oauth2/v2/token             token, Basic id:secret, {"grant_type":"client_credentials"} [D, C]
//	POST   /auth/oauth2/revoke               revoke a token (early roll-over only)            [D]
//	GET    /api/2/users?external_id=…        find (also username=, email=,
//	                                         custom_attributes.<shortname>=); "*" is a wildcard,
//	                                         so answers are filtered for exact matches          [D, C]
//	GET    /api/2/users?limit=100&cursor=…   list; next page from the After-Cursor header      [D, C]
//	GET    /api/2/users/{id}                 read, role_ids included                            [D, C]
//	POST   /api/2/users                      create → 201 with the user                         [D]
//	PUT    /api/2/users/{id}                 partial update: only the attributes sent change,
//	                                         custom_attributes included                         [D]
//	POST   /api/2/roles/{role}/users         add users to a role, body a raw array [id, …]      [D, C]
//	DELETE /api/2/roles/{role}/users         remove users from a role, same body                [C]
//	GET    /api/1/events?since=…             events, each with the client_id of the token
//	                                         whose API call caused it                           [D]
//
// The docs spell the resource header "Authorization: bearer:<token>"; the
// official SDKs send "Bearer <token>", which is what this package does [C].
// Create and update accept ?mappings=async|sync|disabled [D]; Config.
// Mappings passes it on (OneLogin's default is async: mappings run after
// the answer and may rewrite what we wrote, see Loops below).
//
// There is no per-user v2 roles endpoint (no PUT/DELETE
// /api/2/users/{id}/roles): v2 role membership is role-centric, and v1 has
// PUT /api/1/users/{id}/add_roles|remove_roles. The update-user page lists
// role_ids too, but says to change roles with the role APIs [D].
//
// # User status and state
//
// status [C Go SDK models/user.go, D user resource]: 0 Unactivated,
// 1 Active (the only status that can log in), 2 Suspended, 3 Locked,
// 4 Password expired, 5 Awaiting password reset, (no 6), 7 Password
// pending, 8 Security questions required. state [D v1 set-state]:
// 0 Unapproved, 1 Approved, 2 Rejected, 3 Unlicensed.
//
// A learner is Active unless its status is 0 or 2. Deactivate writes
// status 2 (Suspended) with PUT /api/2/users/{id}; reactivate writes
// status 1 when the status is 0 or 2 and leaves 3-8 alone (those are
// password or lockout states OneLogin manages) [I: status is in the user
// model the SDKs PUT; confirm on a sandbox that v2 PUT accepts it, the
// fallback being PUT /api/1/users/{id}/lock_user]. state is never
// written (leaving Unlicensed needs PUT /api/1/users/{id}/set_state [D]).
// Users are never deleted. A user created without a password gets status
// 7 and no invitation email [D]; learners sign in through SSO, so none is
// sent.
//
// # Fields
//
// Learner.Fields keys are OneLogin attribute names: title, department,
// company, comment, phone, preferred_locale_code, manager_user_id and
// custom_attributes.<shortname> (the custom field must be defined in the
// account, or OneLogin answers 422). The mapping defaults' jobTitle and
// departmentName are accepted as title and department; supervisorExternalId
// is resolved to manager_user_id by external id (left alone while the
// manager is not provisioned); employeeNumber goes to the custom attribute
// Config.EmployeeNumberField, which also serves KeyEmployeeNumber lookups.
// Other keys are ignored and their names logged once. Get reports the
// OneLogin names. Empty core values (username, email, names, external id)
// are never written over existing ones.
//
// # Groups
//
// SetGroups maps group names through Config.RoleMap (case-insensitively)
// to role ids, reads the user's role_ids and adds or removes only the
// roles in the map, one role call each. Roles given by hand or by OneLogin
// mappings outside the map are left alone.
//
// # Tokens
//
// A v2 token lives 10 hours and the same credential pair gets the same
// token back until it expires or is revoked [D], so workers can share
// one. They share it through a TokenCache (tokencache.Dynamo in Lambda):
// one worker claims the refresh with a marker value
// ("learnerlink:refreshing:…", 20 s) through Replace(prevGeneration, …)
// and fetches; the others wait for it. Tokens are refreshed 5 minutes
// before they expire (OneLogin would hand back the dying token, so it is
// revoked and fetched again) and on a 401 (the token was revoked or the
// admin who owns the credential was removed). A refused login (400, 401,
// 403) leaves a marker ("learnerlink:auth-failed:", 1 minute) so workers
// fail fast.
//
// # Rate limits
//
// OneLogin budgets calls per account (5,000 an hour for v1; no separate v2
// figure found [D]) and reports X-RateLimit-Limit, -Remaining and -Reset
// (seconds until the window resets) on resource calls [D]. When Remaining
// reaches 0 the Limiter is paused until Reset, so no worker spends calls
// that would only be refused. A 429 [I: the status is not documented] or
// 503 is Retryable with RetryAfter from Retry-After, else from
// X-RateLimit-Reset, and pauses the Limiter too. Neither official SDK
// handles 429 [C].
//
// # Errors
//
// Every call retries within itself first (Config.Retry,
// vendorhttp.Retry): a 429/503 waits its hint and is sent again whatever
// the method (OneLogin did not process it); other 5xx and timeouts are
// sent again only for GET, PUT and DELETE, never for POST (a create that
// timed out may exist: the worker looks it up before creating again).
// What is left after Attempts tries or the Budget reaches the worker as is.
//
// Failures are *connector.Error: 429/503 Retryable with the hint, other
// 5xx and transport errors Retryable, 404 NotFound, 409 or "… has already
// been taken" Conflict, 400/403/422 permanent. OneLogin's {statusCode,
// name, message} (and the v1 {status:{…}}) is put in the text with quoted
// values and the learner's own values redacted. Nothing logs tokens,
// secrets or attribute values; debug logs carry operation names, OneLogin
// ids and attribute names only.
//
// # Loops (OneLogin ↔ Okta)
//
// When Okta also imports from OneLogin, a change can travel
// OneLogin → Okta → learnerlink → OneLogin. Three things stop it:
//
//  1. No-op writes are never sent. Update reads the user and PUTs only
//     attributes whose value differs from the desired one; when nothing
//     differs, nothing is written, so OneLogin records no event and Okta
//     has nothing to import. The round therefore settles: an admin edits a
//     user in OneLogin (event with the admin's client) → Okta imports it
//     and pushes SCIM to learnerlink → the identity's version goes up and
//     the worker computes the learner; its hash differs from the link's,
//     so it calls Update → OneLogin already carries those values → no
//     write, no event, no echo. (With the hash unchanged the worker does
//     not even call Update.)
//  2. Every write we make is attributable. It goes through learnerlink's
//     own API credential, so OneLogin's event carries our client_id
//     (IsEcho), and it sets the custom attribute Config.OriginMarkerField
//     to "learnerlink:<identityID>:<version>" (WithOrigin puts the pair in
//     the context; OriginOf reads it back from a learner), so an inbound
//     path (events poller, webhook, Okta import rule) can tell "this is the
//     state learnerlink wrote for version v" from a human change. The
//     marker is written only together with a real change and is ignored
//     when comparing (Differences, Same), so it never causes a write.
//  3. One master per attribute: Okta stays the source of truth. If an
//     attribute is edited in OneLogin and in Okta at once, learnerlink
//     writes Okta's value to OneLogin; Okta then imports its own value
//     back, which changes nothing. Do not let OneLogin mappings rewrite
//     attributes learnerlink manages (or set Config.Mappings to
//     "disabled"): a mapping that keeps changing a value learnerlink keeps
//     restoring is the one loop the connector cannot break.
package onelogin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

// DefaultOriginMarkerField is the custom attribute holding the origin
// marker when Config.OriginMarkerField is empty.
const DefaultOriginMarkerField = "learnerlink_origin"

// Limiter gates every request to OneLogin (shared/throttle provides them).
type Limiter = vendorhttp.Limiter

// TokenCache shares the token between workers (shared/tokencache).
type TokenCache = vendorhttp.TokenCache

// Config configures a Connector.
type Config struct {
	// BaseURL is https://<subdomain>.onelogin.com (or the older
	// https://api.<us|eu>.onelogin.com). http is accepted only for
	// loopback hosts (tests).
	BaseURL string
	// ClientID and ClientSecret are learnerlink's own API credential
	// ("Manage users" scope, or "Manage All" for roles). It must not be
	// shared with other integrations: IsEcho relies on its client id.
	ClientID, ClientSecret string
	// Limiter is waited on before every HTTP request. Required.
	Limiter Limiter
	// Tokens holds the shared token; nil keeps it in this connector only.
	Tokens TokenCache
	// RoleMap maps learnerlink group names (compared case-insensitively)
	// to OneLogin role ids. Only these roles are ever added or removed.
	RoleMap map[string]int
	// HTTPClient is used for every call; nil means one with sane timeouts.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// OriginMarkerField is the custom attribute (shortname) every write
	// sets to "learnerlink:<identityID>:<version>"; it must be defined in
	// the account. Empty means DefaultOriginMarkerField.
	OriginMarkerField string
	// EmployeeNumberField is the custom attribute holding
	// Fields["employeeNumber"] and serving KeyEmployeeNumber lookups;
	// empty means OneLogin has none (those lookups fail).
	EmployeeNumberField string
	// Mappings is sent as ?mappings= on create and update: "async"
	// (OneLogin's default), "sync" or "disabled"; empty sends nothing.
	Mappings string
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
	// Retry bounds the in-request retries of every call (see
	// vendorhttp.Retry: 429/503 for any method, other 5xx and timeouts
	// for GET, PUT and DELETE only); the zero value is 4 tries within
	// 20 s, Attempts 1 turns retries off. A 401 is handled apart (a token
	// refresh).
	Retry vendorhttp.Retry
}

// Connector talks to one OneLogin account. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	api    *vendorhttp.API
	log    *slog.Logger
	now    func() time.Time
	roles  map[string]int    // folded group name → role id
	marker string            // the origin custom attribute
	warned vendorhttp.Warned // unsupported Fields keys
}

var (
	_ connector.Connector   = (*Connector)(nil)
	_ connector.GroupSetter = (*Connector)(nil)
	_ connector.Lister      = (*Connector)(nil)
)

// isShortname reports whether s looks like a custom attribute shortname
// (letters, digits, underscores) [I].
func isShortname(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// New checks cfg and returns a Connector. It makes no request.
func New(cfg Config) (*Connector, error) {
	base, err := vendorhttp.BaseURL("onelogin", cfg.BaseURL, false)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, errors.New("onelogin: ClientID and ClientSecret are required")
	case cfg.Limiter == nil:
		return nil, errors.New("onelogin: Limiter is required")
	}
	switch cfg.Mappings {
	case "", "async", "sync", "disabled":
	default:
		return nil, fmt.Errorf("onelogin: Mappings %q must be async, sync or disabled", cfg.Mappings)
	}
	marker := cfg.OriginMarkerField
	if marker == "" {
		marker = DefaultOriginMarkerField
	}
	if !isShortname(marker) {
		return nil, fmt.Errorf("onelogin: OriginMarkerField %q is not a custom attribute shortname", marker)
	}
	if f := cfg.EmployeeNumberField; f != "" && (!isShortname(f) || f == marker) {
		return nil, fmt.Errorf("onelogin: EmployeeNumberField %q is not a usable custom attribute shortname", f)
	}
	roles := make(map[string]int, len(cfg.RoleMap))
	for name, id := range cfg.RoleMap {
		if id <= 0 {
			return nil, fmt.Errorf("onelogin: RoleMap[%q] = %d is not a role id", name, id)
		}
		folded := strings.ToLower(name)
		if prev, dup := roles[folded]; dup && prev != id {
			return nil, fmt.Errorf("onelogin: RoleMap names %q twice (case-insensitively) with different roles", name)
		}
		roles[folded] = id
	}
	c := &Connector{cfg: cfg, roles: roles, marker: marker}
	tokens := cfg.Tokens
	if tokens == nil {
		tokens = tokencache.NewLocal()
	}
	c.api = vendorhttp.NewAPI(vendorhttp.API{Vendor: "onelogin", Base: base, HTTP: cfg.HTTPClient, Limiter: cfg.Limiter,
		Log: cfg.Logger, Now: cfg.Now, Retry: cfg.Retry, Classify: c.classify, Answered: c.answered,
		Auth: vendorhttp.Auth{Tokens: tokens, Login: c.fetchToken, RefreshBefore: refreshBefore, Attempts: maxAttempts,
			Held: "onelogin refused the API credential recently (check client id, secret and the owning admin); not trying again yet"}})
	c.log, c.now = c.api.Log, c.api.Now
	return c, nil
}

// ClientID is the API client id whose events IsEcho recognises.
func (c *Connector) ClientID() string { return c.cfg.ClientID }

// IsEcho reports whether ev was caused by this connector's own API calls.
func (c *Connector) IsEcho(ev Event) bool { return IsEcho(ev, c.cfg.ClientID) }
