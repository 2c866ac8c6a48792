package scimout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

// Limiter gates every request to the service provider (shared/throttle
// provides them). Pause is called on 429/503 with the Retry-After hint (0:
// none given, the limiter picks its own backoff).
type Limiter interface {
	Wait(ctx context.Context) error
	Pause(ctx context.Context, d time.Duration) error
}

// Auth is how requests authenticate: a BearerToken or Basic.
type Auth interface {
	authorize(r *http.Request)
	secrets() []string
	usable() bool
}

// BearerToken sends "Authorization: Bearer <token>" (EasyLlama, Absorb
// SCIM, Lessonly configured the OneLogin way, most others).
type BearerToken string

func (t BearerToken) authorize(r *http.Request) { r.Header.Set("Authorization", "Bearer "+string(t)) }
func (t BearerToken) secrets() []string         { return []string{string(t)} }
func (t BearerToken) usable() bool              { return strings.TrimSpace(string(t)) != "" }

// String keeps the token out of logs and error text.
func (t BearerToken) String() string { return "BearerToken([redacted])" }

// GoString keeps the token out of %#v.
func (t BearerToken) GoString() string { return t.String() }

// Basic sends HTTP Basic credentials (Lessonly's Okta app: User is the
// Lessonly subdomain, Password the SCIM API key).
type Basic struct {
	User, Password string
}

func (b Basic) authorize(r *http.Request) { r.SetBasicAuth(b.User, b.Password) }
func (b Basic) secrets() []string         { return []string{b.Password} }
func (b Basic) usable() bool {
	return b.User != "" && b.Password != "" && !strings.Contains(b.User, ":")
}

// String keeps the password out of logs and error text.
func (b Basic) String() string { return "Basic{User: " + b.User + ", Password: [redacted]}" }

// GoString keeps the password out of %#v.
func (b Basic) GoString() string { return b.String() }

// Config configures a Connector.
type Config struct {
	// BaseURL is the SCIM base, e.g. https://api.easyllama.com/scim/v2/12345;
	// /Users, /Groups and /ServiceProviderConfig are appended. http is
	// accepted only for loopback hosts (tests).
	BaseURL string
	// Auth is BearerToken or Basic.
	Auth Auth
	// Profile describes the vendor (see Profiles); Name is required.
	Profile Profile
	// Limiter is waited on before every HTTP request, discovery included.
	Limiter Limiter
	// HTTPClient is used for every call; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// ManagedGroups names target groups learnerlink manages although it
	// did not create them (matched case-insensitively): SetGroups removes
	// learners from these, and from the groups it created (externalId
	// "learnerlink:<name>"), and from no others.
	ManagedGroups []string
	Logger        *slog.Logger
	// Now is the clock for Retry-After dates; nil means time.Now.
	Now func() time.Time
	// Retry bounds the in-request retries of every call (see
	// vendorhttp.Retry: 429/503 for any method, other 5xx and timeouts
	// for GET, PUT and PATCH, never POST); the zero value is 4 tries
	// within 20 s, Attempts 1 turns retries off.
	Retry vendorhttp.Retry
}

// Connector pushes learners to one SCIM 2.0 service provider. It is safe
// for concurrent use. Hand the worker Target(), not the Connector itself:
// that value implements exactly the optional interfaces the profile
// supports.
type Connector struct {
	cfg    Config
	base   string
	hc     *http.Client
	log    *slog.Logger
	now    func() time.Time
	retry  vendorhttp.Retry
	fields map[string]attrPath // Learner.Fields key → compiled SCIM path
	tags   *attrPath
	// displayMapped says FieldMap writes displayName, so the derived
	// "First Last" is not sent.
	displayMapped bool
	managed       map[string]bool // folded ManagedGroups

	// discover serialises the one-time ServiceProviderConfig read; a
	// channel rather than sync.Once so waiters honour their context and a
	// transient failure is tried again by the next caller.
	discover chan struct{}

	mu       sync.Mutex
	caps     *capabilities
	versions map[string]string    // user id → last seen meta.version
	groups   map[string]groupRef  // folded displayName → group
	groupIDs map[string]groupMeta // group id → what we know of it
	warned   map[string]bool      // log-once keys
}

// capabilities is what the service provider supports, discovery merged
// with the profile's overrides.
type capabilities struct {
	patch      bool
	etag       bool
	maxResults int
}

const (
	defaultMaxResults = 100 // Okta's sample ServiceProviderConfig; common cap
	maxVersions       = 10000
	maxGroupCache     = 10000
)

var _ connector.Connector = (*Connector)(nil)
var _ connector.Lister = (*Connector)(nil)

// New checks cfg and returns a Connector. It makes no request: discovery
// (GET /ServiceProviderConfig) happens lazily, once, on the first call
// that needs it, and only for what the profile does not override.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	_ = ctx // nothing to do yet; kept for symmetry with the calls that follow
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Auth == nil || !cfg.Auth.usable():
		return nil, errors.New("scimout: Auth must be a non-empty BearerToken or Basic{User, Password} (no ':' in User)")
	case cfg.Limiter == nil:
		return nil, errors.New("scimout: Limiter is required")
	}
	fields, tags, err := cfg.Profile.compile()
	if err != nil {
		return nil, err
	}
	c := &Connector{
		cfg: cfg, base: base, hc: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now,
		fields: fields, tags: tags,
		managed:  map[string]bool{},
		discover: make(chan struct{}, 1),
		versions: map[string]string{}, groups: map[string]groupRef{},
		groupIDs: map[string]groupMeta{}, warned: map[string]bool{},
	}
	for _, p := range fields {
		if p.urn == "" && strings.EqualFold(p.attr, "displayName") {
			c.displayMapped = true
		}
	}
	for _, g := range cfg.ManagedGroups {
		if g = strings.TrimSpace(g); g != "" {
			c.managed[fold(g)] = true
		}
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.retry = cfg.Retry
	if c.retry.Logger == nil {
		c.retry.Logger = c.log
	}
	return c, nil
}

func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("scimout: BaseURL %q is not an absolute URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("scimout: BaseURL %q must not carry credentials, a query or a fragment", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !vendorhttp.Loopback(u.Hostname()) {
			return "", fmt.Errorf("scimout: BaseURL %q: http is allowed only for loopback hosts", raw)
		}
	default:
		return "", fmt.Errorf("scimout: BaseURL %q must be https", raw)
	}
	return u.String(), nil
}

// Profile returns the profile the connector was built with.
func (c *Connector) Profile() Profile { return c.cfg.Profile }

// capabilities returns the discovered capabilities, reading
// /ServiceProviderConfig the first time one is needed that the profile
// does not override. A transient failure is returned and not cached; a
// permanent one (the endpoint is missing or refused) falls back to
// conservative defaults: PUT, no ETags, 100 per page.
func (c *Connector) capabilities(ctx context.Context) (capabilities, error) {
	p := c.cfg.Profile
	if p.PatchSupported != nil && p.ETagSupported != nil && p.MaxResults > 0 {
		return capabilities{patch: *p.PatchSupported, etag: *p.ETagSupported, maxResults: p.MaxResults}, nil
	}
	c.mu.Lock()
	cached := c.caps
	c.mu.Unlock()
	if cached != nil {
		return *cached, nil
	}
	select {
	case c.discover <- struct{}{}:
	case <-ctx.Done():
		return capabilities{}, fmt.Errorf("scimout.discover: %w", ctx.Err())
	}
	defer func() { <-c.discover }()
	c.mu.Lock()
	cached = c.caps
	c.mu.Unlock()
	if cached != nil {
		return *cached, nil
	}
	found, err := c.readServiceProviderConfig(ctx)
	if err != nil {
		return capabilities{}, err
	}
	if p.PatchSupported != nil {
		found.patch = *p.PatchSupported
	}
	if p.ETagSupported != nil {
		found.etag = *p.ETagSupported
	}
	if p.MaxResults > 0 {
		found.maxResults = p.MaxResults
	}
	if found.maxResults <= 0 {
		found.maxResults = defaultMaxResults
	}
	c.mu.Lock()
	c.caps = &found
	c.mu.Unlock()
	c.log.LogAttrs(ctx, slog.LevelInfo, "scimout: service provider capabilities",
		slog.String("profile", p.Name), slog.Bool("patch", found.patch), slog.Bool("etag", found.etag),
		slog.Int("maxResults", found.maxResults))
	return found, nil
}

// spConfig is the part of RFC 7643 §5 we read.
type spConfig struct {
	Patch struct {
		Supported bool `json:"supported"`
	} `json:"patch"`
	Filter struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	} `json:"filter"`
	ETag struct {
		Supported bool `json:"supported"`
	} `json:"etag"`
}

func (c *Connector) readServiceProviderConfig(ctx context.Context) (capabilities, error) {
	cl := call{op: "scimout.discover", method: http.MethodGet, path: "/ServiceProviderConfig"}
	var sp spConfig
	_, err := c.do(ctx, cl, &sp)
	var ce *connector.Error
	if errors.As(err, &ce) && !ce.Retryable && ce.Status >= 400 {
		c.log.LogAttrs(ctx, slog.LevelWarn, "scimout: no usable ServiceProviderConfig; assuming PUT, no ETags, 100 per page",
			slog.String("profile", c.cfg.Profile.Name), slog.Int("status", ce.Status))
		return capabilities{maxResults: defaultMaxResults}, nil
	}
	if err != nil {
		return capabilities{}, err
	}
	return capabilities{patch: sp.Patch.Supported, etag: sp.ETag.Supported, maxResults: sp.Filter.MaxResults}, nil
}

// pageSize is the count to ask for.
func (caps capabilities) pageSize() int {
	if caps.maxResults > 0 {
		return caps.maxResults
	}
	return defaultMaxResults
}

// rememberVersion records a user's meta.version for a later If-Match.
func (c *Connector) rememberVersion(id, v string) {
	if id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v == "" {
		delete(c.versions, id)
		return
	}
	if len(c.versions) >= maxVersions {
		clear(c.versions) // a bounded cache: a miss only costs a 412 round
	}
	c.versions[id] = v
}

func (c *Connector) knownVersion(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[id]
}

// warnOnce logs msg once per key for the connector's lifetime.
func (c *Connector) warnOnce(ctx context.Context, key, msg string, attrs ...slog.Attr) {
	c.mu.Lock()
	seen := c.warned[key]
	c.warned[key] = true
	c.mu.Unlock()
	if !seen {
		c.log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
	}
}

func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
