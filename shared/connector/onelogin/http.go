package onelogin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
	"github.com/learnerlink/learnerlink/shared/retry"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

const (
	defaultTokenLife = 10 * time.Hour  // [D] expires_in 36000
	refreshBefore    = 5 * time.Minute // refresh this long before expiry
	claimTTL         = 20 * time.Second
	authTimeout      = 15 * time.Second
	failHold         = time.Minute // how long a refused login stops further tries
	maxBody          = 10 << 20
	maxAttempts      = 3 // per call, across 401 handling

	claimPrefix = "learnerlink:refreshing:"
	failPrefix  = "learnerlink:auth-failed:"
)

// call is one API request.
type call struct {
	op      string // "onelogin.get", …
	method  string
	path    string // escaped, from the host root
	query   url.Values
	body    any      // JSON-encoded when non-nil
	secrets []string // values to keep out of error text
}

// response is a bounded, fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// apiError covers both error shapes: v2 {statusCode, name, message} and
// v1 {status: {code, type, message}}.
type apiError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Status  *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"status"`
}

// do sends cl with the shared token and decodes a 2xx body into out (when
// non-nil). Non-2xx answers become *connector.Error. Throttled answers,
// and for idempotent methods other transient failures, are tried again
// under c.retry; a 401 never is by that loop (send refreshes the token).
func (c *Connector) do(ctx context.Context, cl call, out any) (http.Header, error) {
	var h http.Header
	err := c.retry.Do(ctx, vendorhttp.Idempotent(cl.method), func(ctx context.Context) error {
		resp, err := c.send(ctx, cl)
		if err != nil {
			return err
		}
		h = resp.header
		return c.finish(ctx, cl, resp, out)
	})
	return h, err
}

// send is do without the status handling: it returns any non-401 answer,
// refreshing the token on 401.
func (c *Connector) send(ctx context.Context, cl call) (*response, error) {
	tok, err := c.token(ctx, cl.op)
	if err != nil {
		return nil, err
	}
	var body []byte
	if cl.body != nil {
		if body, err = json.Marshal(cl.body); err != nil {
			return nil, &connector.Error{Op: cl.op, Err: fmt.Errorf("encode request: %w", err)}
		}
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.roundTrip(ctx, cl, body, tok.Value)
		if err != nil {
			return nil, err
		}
		if resp.status != http.StatusUnauthorized {
			return resp, nil
		}
		if attempt >= maxAttempts {
			e := c.classify(ctx, cl, resp)
			e.Retryable = true
			e.Err = fmt.Errorf("still unauthorized after refreshing the token: %w", e.Err)
			return nil, e
		}
		cur, err := c.tokens.Get(ctx)
		if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
			return nil, c.cacheErr(ctx, cl.op, err)
		}
		if cur.Generation != tok.Generation {
			// Another worker refreshed since we read ours: use theirs.
			tok, err = c.token(ctx, cl.op)
		} else {
			c.log.LogAttrs(ctx, slog.LevelInfo, "onelogin: token rejected; refreshing", slog.String("op", cl.op), slog.Int64("generation", tok.Generation))
			tok, err = c.refresh(ctx, cl.op, tok)
		}
		if err != nil {
			return nil, err
		}
	}
}

// roundTrip waits on the limiter and sends one request with the token.
func (c *Connector) roundTrip(ctx context.Context, cl call, body []byte, token string) (*response, error) {
	req, err := c.newRequest(ctx, cl, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.exchange(ctx, cl, req)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusTooManyRequests {
		c.watchBudget(ctx, cl.op, resp.header)
	}
	return resp, nil
}

func (c *Connector) newRequest(ctx context.Context, cl call, body []byte) (*http.Request, error) {
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, rd)
	if err != nil {
		return nil, &connector.Error{Op: cl.op, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// exchange waits on the limiter, sends req and reads the bounded answer.
func (c *Connector) exchange(ctx context.Context, cl call, req *http.Request) (*response, error) {
	if err := c.cfg.Limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: rate limiter: %w", cl.op, err)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		// Timeouts, resets, DNS: worth another try later. The URL in err
		// may carry a lookup value (an email), so it is dropped.
		return nil, vendorhttp.TransportError(ctx, cl.op, cl.method, cl.path, err)
	}
	defer res.Body.Close()
	data, err := vendorhttp.ReadBody(ctx, cl.op, res, maxBody)
	if err != nil {
		return nil, err
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "onelogin: request",
		slog.String("op", cl.op), slog.String("method", cl.method), slog.String("path", cl.path),
		slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// watchBudget pauses every worker when OneLogin says the account's call
// budget is spent, until the window resets: calls made before then would
// only be refused.
func (c *Connector) watchBudget(ctx context.Context, op string, h http.Header) {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	if err != nil || rem > 0 {
		return
	}
	d := resetIn(h)
	c.log.LogAttrs(ctx, slog.LevelWarn, "onelogin: call budget spent; pausing until it resets", slog.String("op", op), slog.Duration("reset", d))
	vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "onelogin", op, d)
}

// resetIn reads X-RateLimit-Reset (seconds until the window resets [D]);
// 0 when absent or bad.
func resetIn(h http.Header) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, retry.MaxRetryAfter)
}

// finish turns a non-2xx answer into a *connector.Error and decodes a 2xx
// body into out.
func (c *Connector) finish(ctx context.Context, cl call, resp *response, out any) error {
	if resp.status >= 200 && resp.status < 300 {
		return vendorhttp.Decode(cl.op, resp.status, resp.body, out)
	}
	return c.classify(ctx, cl, resp)
}

// classify maps a failed answer to a *connector.Error.
func (c *Connector) classify(ctx context.Context, cl call, resp *response) *connector.Error {
	e := vendorhttp.Classify(cl.op, resp.status, resp.header, c.now())
	var ae apiError
	_ = json.Unmarshal(resp.body, &ae) // best effort: bodies vary
	msg := ae.Message
	if msg == "" && ae.Status != nil {
		msg = ae.Status.Message
	}
	switch s := resp.status; {
	case vendorhttp.Throttled(s):
		e.RetryAfter = c.retryAfter(resp.header)
		// Everyone slows down, not just this caller; 0 lets the limiter
		// pick its backoff.
		vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "onelogin", cl.op, e.RetryAfter)
	case s == http.StatusForbidden:
		msg = strings.TrimSpace(msg + " (check the API credential's scope: Manage users, or Manage All for roles)")
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		e.Conflict = duplicate(msg)
	}
	e.Err = errors.New(describe(resp.status, ae.Name, msg, cl.secrets))
	return e
}

// retryAfter prefers Retry-After, then X-RateLimit-Reset.
func (c *Connector) retryAfter(h http.Header) time.Duration {
	if d, ok := retry.ParseRetryAfter(h.Get("Retry-After"), c.now()); ok {
		return d
	}
	return resetIn(h)
}

// describe renders OneLogin's error without personal data.
func describe(status int, name, msg string, secrets []string) string {
	var b strings.Builder
	b.WriteString("onelogin answered ")
	b.WriteString(strconv.Itoa(status))
	if name != "" {
		b.WriteString(" ")
		b.WriteString(name)
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return vendorhttp.Redact(b.String(), secrets, 600)
}

// duplicate recognises "username/email/external id already taken".
func duplicate(msg string) bool {
	l := strings.ToLower(msg)
	return strings.Contains(l, "already been taken") || strings.Contains(l, "already exists") ||
		strings.Contains(l, "already in use") || strings.Contains(l, "duplicate") || strings.Contains(l, "not unique")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isMarker(v string) bool {
	return strings.HasPrefix(v, claimPrefix) || strings.HasPrefix(v, failPrefix)
}

// token returns a usable token from the cache, fetching one when it is
// missing or close to expiry, or waiting while another worker does.
func (c *Connector) token(ctx context.Context, op string) (tokencache.Token, error) {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(2 * claimTTL)
	for {
		t, err := c.tokens.Get(ctx)
		if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
			return tokencache.Token{}, c.cacheErr(ctx, op, err)
		}
		if err != nil {
			t = tokencache.Token{} // none stored: generation 0
		}
		now := c.now()
		switch {
		case strings.HasPrefix(t.Value, failPrefix) && now.Before(t.Expires):
			return tokencache.Token{}, &connector.Error{Op: op, Status: http.StatusUnauthorized, Retryable: true, RetryAfter: t.Expires.Sub(now),
				Err: errors.New("onelogin refused the API credential recently (check client id, secret and the owning admin); not trying again yet")}
		case strings.HasPrefix(t.Value, claimPrefix) && now.Before(t.Expires):
			if time.Now().After(deadline) {
				return tokencache.Token{}, &connector.Error{Op: op, Retryable: true, Err: errors.New("timed out waiting for another worker's token refresh")}
			}
			if err := sleep(ctx, wait); err != nil {
				return tokencache.Token{}, fmt.Errorf("%s: %w", op, err)
			}
			wait = min(2*wait, 200*time.Millisecond)
			continue
		case err == nil && !isMarker(t.Value) && !t.Expired(now, refreshBefore):
			return t, nil
		}
		nt, err := c.claimAndFetch(ctx, op, t)
		if errors.Is(err, errLostRace) {
			continue
		}
		return nt, err
	}
}

// refresh replaces old, which OneLogin rejected.
func (c *Connector) refresh(ctx context.Context, op string, old tokencache.Token) (tokencache.Token, error) {
	t, err := c.claimAndFetch(ctx, op, old)
	if errors.Is(err, errLostRace) {
		return c.token(ctx, op)
	}
	return t, err
}

// errLostRace says another worker changed the cache first.
var errLostRace = errors.New("onelogin: token cache changed concurrently")

// claimAndFetch claims the refresh of prev's generation and, if it wins,
// fetches a token and stores it.
func (c *Connector) claimAndFetch(ctx context.Context, op string, prev tokencache.Token) (tokencache.Token, error) {
	marker := func(prefix string, expires time.Time) tokencache.Token {
		return tokencache.Token{Value: prefix + nonce(), Expires: expires}
	}
	held, err := c.tokens.Replace(ctx, prev.Generation, marker(claimPrefix, c.now().Add(claimTTL)))
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace
	}
	if err != nil {
		return tokencache.Token{}, c.cacheErr(ctx, op, err)
	}
	actx, cancel := context.WithTimeout(ctx, authTimeout)
	value, expires, refused, ferr := c.fetchToken(actx)
	if ferr == nil && !isMarker(prev.Value) && value == prev.Value && !c.now().Add(refreshBefore).Before(expires) {
		// OneLogin hands a pair the same token until it expires [D]; to
		// roll over early, revoke the dying one and ask again.
		c.revoke(actx, value)
		value, expires, refused, ferr = c.fetchToken(actx)
	}
	cancel()
	if ferr != nil {
		// A refused login holds everyone off for a while; anything else
		// frees the claim at once for the next worker.
		next := marker(claimPrefix, c.now().Add(-time.Second))
		if refused {
			next = marker(failPrefix, c.now().Add(failHold))
			c.log.LogAttrs(ctx, slog.LevelError, "onelogin: API credential refused", slog.String("error", ferr.Error()))
		}
		if _, err := c.tokens.Replace(context.WithoutCancel(ctx), held.Generation, next); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "onelogin: could not release the refresh claim", slog.String("error", err.Error()))
		}
		return tokencache.Token{}, ferr
	}
	tok, err := c.tokens.Replace(ctx, held.Generation, tokencache.Token{Value: value, Expires: expires})
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace // our claim expired and was taken over
	}
	if err != nil {
		return tokencache.Token{}, c.cacheErr(ctx, op, err)
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "onelogin: API token stored", slog.Int64("generation", tok.Generation), slog.Time("expires", tok.Expires))
	return tok, nil
}

// tokenAnswer is the v2 token response [D, C python OauthToken].
type tokenAnswer struct {
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   json.Number `json:"expires_in"`
}

// fetchToken calls POST /auth/oauth2/v2/token. refused says OneLogin
// turned the credential down (400/401/403): fixable without touching the
// data, so it is Retryable with a delay rather than parking every learner.
func (c *Connector) fetchToken(ctx context.Context) (value string, expires time.Time, refused bool, err error) {
	const op = "onelogin.token"
	cl := call{op: op, method: http.MethodPost, path: "/auth/oauth2/v2/token", secrets: []string{c.cfg.ClientID, c.cfg.ClientSecret}}
	req, err := c.newRequest(ctx, cl, []byte(`{"grant_type":"client_credentials"}`))
	if err != nil {
		return "", time.Time{}, false, err
	}
	req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
	issued := c.now()
	resp, err := c.exchange(ctx, cl, req)
	if err != nil {
		return "", time.Time{}, false, err
	}
	if resp.status != http.StatusOK {
		e := c.classify(ctx, cl, resp)
		if resp.status == http.StatusBadRequest || resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden {
			e.Retryable, e.Conflict, e.RetryAfter = true, false, failHold
			e.Err = fmt.Errorf("token request refused: %w", e.Err)
			return "", time.Time{}, true, e
		}
		return "", time.Time{}, false, e
	}
	var ta tokenAnswer
	if err := json.Unmarshal(resp.body, &ta); err != nil {
		return "", time.Time{}, false, &connector.Error{Op: op, Status: resp.status, Retryable: true, Err: fmt.Errorf("decode token answer: %w", err)}
	}
	if ta.AccessToken == "" || strings.ContainsAny(ta.AccessToken, " \r\n") || isMarker(ta.AccessToken) {
		return "", time.Time{}, false, &connector.Error{Op: op, Status: resp.status, Retryable: true, Err: errors.New("token answer carries no usable token")}
	}
	life := defaultTokenLife
	if n, err := ta.ExpiresIn.Int64(); err == nil && n > 0 {
		life = time.Duration(n) * time.Second
	}
	return ta.AccessToken, issued.Add(life), false, nil
}

// revoke revokes tok (best effort: a failure only delays the roll-over).
func (c *Connector) revoke(ctx context.Context, tok string) {
	cl := call{op: "onelogin.revoke", method: http.MethodPost, path: "/auth/oauth2/revoke", secrets: []string{c.cfg.ClientID, c.cfg.ClientSecret, tok}}
	body, _ := json.Marshal(map[string]string{"access_token": tok})
	req, err := c.newRequest(ctx, cl, body)
	if err == nil {
		req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
		var resp *response
		if resp, err = c.exchange(ctx, cl, req); err == nil && resp.status >= 300 {
			err = c.classify(ctx, cl, resp)
		}
	}
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "onelogin: revoking the expiring token failed", slog.String("error", err.Error()))
	}
}

func (c *Connector) cacheErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: token cache: %w", op, ctx.Err())
	}
	return &connector.Error{Op: op, Retryable: true, Err: fmt.Errorf("token cache: %w", err)}
}

func nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than erring)
	return hex.EncodeToString(b)
}
