// Package okta is a small client for the parts of the Okta Management API
// learnerlink reads: one user (Event Hooks fill in profiles), an app's
// assigned users and a group's members (reconciliation).
//
// Why not github.com/okta/okta-sdk-golang/v5: measured on 2026-11-23 with
// Go 1.26, a tiny linux/arm64 program (CGO off, -trimpath -s -w) that
// fetches one user is 5.6 MB with net/http and 11.0 MB with SDK v5.0.2
// (+5.4 MB, i.e. twice the Lambda package); the SDK pulls 21 further
// modules (two JOSE/JWT stacks, protobuf, appengine, yaml, a cache) and
// compiles in ~2.5 min on 2 cores. Its package init is cheap (~0.1 ms), so
// the cost is package size, build time and dependency surface, not init.
// We call three GET endpoints and one token endpoint; that is ~400 lines
// with the standard library, and lets us own the rate-limit behaviour
// (X-Rate-Limit-* pacing, 429 until reset, deadline-aware waits) that the
// hooks receiver's 2 s budget needs.
//
// Authentication: an API token ("SSWS <token>") or an OAuth 2.0 service
// app (client credentials with a private-key JWT, RS256 or ES256; the
// access token is cached until shortly before it expires). Tokens,
// assertions and keys are never logged or put in errors.
package okta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: the user, app or group does not exist (HTTP 404).
	ErrNotFound = errors.New("okta: not found")
	// ErrRateLimited: still limited after the retries, or the wait until
	// the reset would overrun the context's deadline.
	ErrRateLimited = errors.New("okta: rate limited")
)

// APIError is a non-2xx answer from Okta. It carries Okta's error code and
// summary (no request data); 404s also match ErrNotFound and 429s
// ErrRateLimited.
type APIError struct {
	Status  int
	Code    string // errorCode, e.g. E0000007
	Summary string // errorSummary
	ID      string // errorId, for Okta support
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("okta: HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Summary != "" {
		s += ": " + e.Summary
	}
	return s
}

// Is makes errors.Is(err, ErrNotFound) and ErrRateLimited work.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Config configures New. OrgURL and one of APIToken or OAuth are required.
type Config struct {
	// OrgURL is the org's base URL, e.g. https://acme.okta.com.
	OrgURL string
	// APIToken is an Okta API token, sent as "SSWS <token>".
	APIToken string
	// OAuth configures a service app instead of an API token.
	OAuth *OAuth
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: discard
	// PageSize is the limit asked for per page (default 200, at most 500,
	// the largest the app users endpoint accepts).
	PageSize int
	// MaxRetries bounds retries of a 429 (default 4).
	MaxRetries int
	// LowWater: when X-Rate-Limit-Remaining drops to this fraction of
	// X-Rate-Limit-Limit or below, requests are spread evenly over what
	// is left of the window (default 0.1).
	LowWater float64
	// MaxWait caps one wait for a rate-limit reset (default 65 s; Okta's
	// windows are one minute).
	MaxWait time.Duration
	// Now and Sleep are the clock (tests use a fake one). Sleep must
	// return ctx.Err() if ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// OAuth is an Okta API service app using private-key JWT client
// authentication (https://developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/).
type OAuth struct {
	ClientID string
	// PrivateKeyPEM is the app's private key: PKCS#8 ("PRIVATE KEY"),
	// PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY", P-256/384/521).
	// Literal "\n" sequences (a key pasted into JSON) are accepted.
	PrivateKeyPEM string
	// KeyID is the key's kid in Okta (needed when the app has several).
	KeyID string
	// Scopes default to okta.users.read okta.groups.read okta.apps.read.
	Scopes []string
}

// DefaultScopes are what GetUser, ListGroupUsers and ListAppUsers need.
func DefaultScopes() []string {
	return []string{"okta.users.read", "okta.groups.read", "okta.apps.read"}
}

// User is an Okta user; App is set for users listed from an app's
// assignments.
type User struct {
	ID      string   `json:"id"`
	Status  string   `json:"status"` // STAGED, PROVISIONED, ACTIVE, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, SUSPENDED, DEPROVISIONED
	Profile Profile  `json:"profile"`
	App     *AppUser `json:"-"`
}

// AppUser is the assignment of a user to an app.
type AppUser struct {
	Scope      string // USER (direct) or GROUP (through a group)
	Status     string // e.g. ACTIVE, PROVISIONED, STAGED
	SyncState  string // e.g. SYNCHRONIZED, DISABLED
	ExternalID string // the user's id in the app, if Okta provisioned it
	UserName   string // the app username (credentials.userName)
}

// Profile is the Okta user profile's standard attributes; any other
// attribute (custom ones) is in Extra.
type Profile struct {
	Login          string         `json:"login,omitempty"`
	Email          string         `json:"email,omitempty"`
	FirstName      string         `json:"firstName,omitempty"`
	LastName       string         `json:"lastName,omitempty"`
	DisplayName    string         `json:"displayName,omitempty"`
	Title          string         `json:"title,omitempty"`
	Department     string         `json:"department,omitempty"`
	EmployeeNumber string         `json:"employeeNumber,omitempty"`
	CostCenter     string         `json:"costCenter,omitempty"`
	Division       string         `json:"division,omitempty"`
	Organization   string         `json:"organization,omitempty"`
	ManagerID      string         `json:"managerId,omitempty"`
	Manager        string         `json:"manager,omitempty"`
	Locale         string         `json:"locale,omitempty"`
	Timezone       string         `json:"timezone,omitempty"`
	Extra          map[string]any `json:"-"`
}

// field returns the standard attribute with that JSON name, or nil.
func (p *Profile) field(name string) *string {
	switch name {
	case "login":
		return &p.Login
	case "email":
		return &p.Email
	case "firstName":
		return &p.FirstName
	case "lastName":
		return &p.LastName
	case "displayName":
		return &p.DisplayName
	case "title":
		return &p.Title
	case "department":
		return &p.Department
	case "employeeNumber":
		return &p.EmployeeNumber
	case "costCenter":
		return &p.CostCenter
	case "division":
		return &p.Division
	case "organization":
		return &p.Organization
	case "managerId":
		return &p.ManagerID
	case "manager":
		return &p.Manager
	case "locale":
		return &p.Locale
	case "timezone":
		return &p.Timezone
	}
	return nil
}

// profileKeys is the standard attributes' JSON names, in output order.
var profileKeys = [...]string{
	"login", "email", "firstName", "lastName", "displayName", "title", "department",
	"employeeNumber", "costCenter", "division", "organization", "managerId", "manager",
	"locale", "timezone",
}

// UnmarshalJSON reads the standard attributes (null or a non-string reads
// as empty) and keeps the rest in Extra. Reconciliation decodes 100,000s
// of profiles, so strings without escapes are taken as they are.
func (p *Profile) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = Profile{}
	for k, v := range raw {
		if dst := p.field(k); dst != nil {
			*dst = rawString(v)
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		if x == nil {
			continue
		}
		if p.Extra == nil {
			p.Extra = map[string]any{}
		}
		p.Extra[k] = x
	}
	return nil
}

// rawString decodes a JSON string; anything else is "".
func rawString(v json.RawMessage) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// MarshalJSON writes the standard attributes that are set, then Extra
// (keys sorted; a standard name in Extra is ignored).
func (p Profile) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, '{')
	for _, k := range profileKeys {
		v := *p.field(k)
		if v == "" {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendString(append(appendString(b, k), ':'), v)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Extra)) {
		if p.field(k) != nil {
			continue
		}
		v, err := json.Marshal(p.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("okta: profile attribute %q: %w", k, err)
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(append(appendString(b, k), ':'), v...)
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Page is one page of a listing; Next is the cursor for the following
// page ("" on the last one).
type Page struct {
	Users []User
	Next  string
}

// Client calls the Management API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	oauth   *oauthSource
	hc      *http.Client
	log     *slog.Logger
	cfg     Config
	limitMu sync.Mutex
	limits  map[string]rateState // by bucket (endpoint family)
}

// New validates cfg and returns a client. It makes no request.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(cfg.OrgURL), "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("okta: OrgURL %q must be the org's base URL, e.g. https://acme.okta.com", cfg.OrgURL)
	}
	u.Path = ""
	if (cfg.APIToken == "") == (cfg.OAuth == nil) {
		return nil, errors.New("okta: configure exactly one of APIToken and OAuth")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.PageSize <= 0:
		cfg.PageSize = 200
	case cfg.PageSize > 500:
		cfg.PageSize = 500
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 4
	}
	if cfg.LowWater <= 0 || cfg.LowWater >= 1 {
		cfg.LowWater = 0.1
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 65 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	c := &Client{base: u, token: cfg.APIToken, hc: cfg.HTTPClient, log: cfg.Logger, cfg: cfg, limits: map[string]rateState{}}
	if cfg.OAuth != nil {
		if cfg.OAuth.ClientID == "" {
			return nil, errors.New("okta: OAuth.ClientID is required")
		}
		key, err := parsePrivateKey(cfg.OAuth.PrivateKeyPEM)
		if err != nil {
			return nil, err
		}
		scopes := cfg.OAuth.Scopes
		if len(scopes) == 0 {
			scopes = DefaultScopes()
		}
		c.oauth = &oauthSource{
			clientID: cfg.OAuth.ClientID, keyID: cfg.OAuth.KeyID, key: key,
			scopes: strings.Join(scopes, " "), tokenURL: u.String() + "/oauth2/v1/token",
		}
	}
	return c, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wireUser is a user as the API returns it; app users add scope, sync
// state, credentials and, with expand=user, the user in _embedded.
type wireUser struct {
	ID          string   `json:"id"`
	Status      string   `json:"status"`
	Profile     *Profile `json:"profile"`
	Scope       string   `json:"scope"`
	SyncState   string   `json:"syncState"`
	ExternalID  string   `json:"externalId"`
	Credentials *struct {
		UserName string `json:"userName"`
	} `json:"credentials"`
	Embedded *struct {
		User *wireUser `json:"user"`
	} `json:"_embedded"`
}

func (w *wireUser) user() User {
	u := User{ID: w.ID, Status: w.Status}
	if w.Profile != nil {
		u.Profile = *w.Profile
	}
	return u
}

// GetUser reads one user by id (or login). A deleted user is ErrNotFound.
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	if id == "" {
		return nil, fmt.Errorf("okta: get user: %w", ErrNotFound)
	}
	var w wireUser
	if _, err := c.get(ctx, "users", "/api/v1/users/"+url.PathEscape(id), nil, &w); err != nil {
		return nil, fmt.Errorf("okta: get user: %w", err)
	}
	u := w.user()
	return &u, nil
}

// ListGroupUsers lists one page of a group's members; after is "" for the
// first page, then the previous Page.Next.
func (c *Client) ListGroupUsers(ctx context.Context, groupID, after string) (Page, error) {
	var ws []wireUser
	next, err := c.list(ctx, "groups", "/api/v1/groups/"+url.PathEscape(groupID)+"/users", after, nil, &ws)
	if err != nil {
		return Page{}, fmt.Errorf("okta: list group users: %w", err)
	}
	p := Page{Users: make([]User, len(ws)), Next: next}
	for i := range ws {
		p.Users[i] = ws[i].user()
	}
	return p, nil
}

// ListAppUsers lists one page of an app's assigned users with their Okta
// profiles (expand=user); after is "" for the first page, then the
// previous Page.Next. User.Status is the Okta user's status, User.App the
// assignment's.
func (c *Client) ListAppUsers(ctx context.Context, appID, after string) (Page, error) {
	var ws []wireUser
	next, err := c.list(ctx, "apps", "/api/v1/apps/"+url.PathEscape(appID)+"/users", after, url.Values{"expand": {"user"}}, &ws)
	if err != nil {
		return Page{}, fmt.Errorf("okta: list app users: %w", err)
	}
	p := Page{Users: make([]User, len(ws)), Next: next}
	for i, w := range ws {
		app := &AppUser{Scope: w.Scope, Status: w.Status, SyncState: w.SyncState, ExternalID: w.ExternalID}
		if w.Credentials != nil {
			app.UserName = w.Credentials.UserName
		}
		u := User{ID: w.ID}
		if w.Embedded != nil && w.Embedded.User != nil {
			u = w.Embedded.User.user()
		} else if w.Profile != nil {
			// Without the embedded user only the app profile is known;
			// keep what it shares with the Okta profile.
			u.Profile = *w.Profile
			if u.Profile.Login == "" {
				u.Profile.Login = app.UserName
			}
		}
		u.ID = w.ID
		u.App = app
		p.Users[i] = u
	}
	return p, nil
}

func (c *Client) list(ctx context.Context, bucket, path, after string, q url.Values, out any) (string, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", fmt.Sprint(c.cfg.PageSize))
	if after != "" {
		q.Set("after", after)
	}
	h, err := c.get(ctx, bucket, path, q, out)
	if err != nil {
		return "", err
	}
	return nextCursor(h.Values("Link")), nil
}
