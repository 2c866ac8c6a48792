package onelogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	maxAttempts      = 3               // per call, across 401 handling
)

// call is one API request.
type call = vendorhttp.Call

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

// do sends cl with the shared token (see Tokens in the package comment)
// and decodes a 2xx body into out (when non-nil); see vendorhttp.API.Do.
// It returns the answer's header.
func (c *Connector) do(ctx context.Context, cl call, out any) (http.Header, error) {
	return c.api.Do(ctx, cl, out)
}

// answered watches the call budget on every answer but a 429.
func (c *Connector) answered(ctx context.Context, cl call, resp *vendorhttp.Response) {
	if resp.Status != http.StatusTooManyRequests {
		c.watchBudget(ctx, cl.Op, resp.Header)
	}
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

// classify maps a failed answer to a *connector.Error.
func (c *Connector) classify(ctx context.Context, cl call, resp *vendorhttp.Response) *connector.Error {
	e := vendorhttp.Classify(cl.Op, resp.Status, resp.Header, c.now())
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae) // best effort: bodies vary
	msg := ae.Message
	if msg == "" && ae.Status != nil {
		msg = ae.Status.Message
	}
	switch s := resp.Status; {
	case vendorhttp.Throttled(s):
		e.RetryAfter = c.retryAfter(resp.Header)
		// Everyone slows down, not just this caller; 0 lets the limiter
		// pick its backoff.
		vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "onelogin", cl.Op, e.RetryAfter)
	case s == http.StatusForbidden:
		msg = strings.TrimSpace(msg + " (check the API credential's scope: Manage users, or Manage All for roles)")
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		e.Conflict = duplicate(msg)
	}
	e.Err = errors.New(describe(resp.Status, ae.Name, msg, cl.Secrets))
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

// tokenAnswer is the v2 token response [D, C python OauthToken].
type tokenAnswer struct {
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   json.Number `json:"expires_in"`
}

// fetchToken gets a token to replace prev. OneLogin hands a pair the
// same token until it expires [D]; to roll over early, the dying one is
// revoked and a token asked for again.
func (c *Connector) fetchToken(ctx context.Context, prev tokencache.Token) (tokencache.Token, bool, error) {
	tok, refused, err := c.requestToken(ctx)
	if err == nil && tok.Value == prev.Value && !c.now().Add(refreshBefore).Before(tok.Expires) {
		c.revoke(ctx, tok.Value)
		tok, refused, err = c.requestToken(ctx)
	}
	return tok, refused, err
}

// requestToken calls POST /auth/oauth2/v2/token. refused says OneLogin
// turned the credential down (400/401/403).
func (c *Connector) requestToken(ctx context.Context) (tok tokencache.Token, refused bool, err error) {
	const op = "onelogin.token"
	cl := call{Op: op, Method: http.MethodPost, Path: "/auth/oauth2/v2/token", Secrets: []string{c.cfg.ClientID, c.cfg.ClientSecret},
		Body: map[string]string{"grant_type": "client_credentials"}}
	issued := c.now()
	resp, err := c.api.Exchange(ctx, cl, c.basicAuth)
	if err != nil {
		return tok, false, err
	}
	if resp.Status != http.StatusOK {
		e := c.classify(ctx, cl, resp)
		return tok, vendorhttp.RefuseLogin(e, "token request refused"), e
	}
	var ta tokenAnswer
	if err := json.Unmarshal(resp.Body, &ta); err != nil {
		return tok, false, &connector.Error{Op: op, Status: resp.Status, Retryable: true, Err: fmt.Errorf("decode token answer: %w", err)}
	}
	if !vendorhttp.UsableToken(ta.AccessToken) {
		return tok, false, &connector.Error{Op: op, Status: resp.Status, Retryable: true, Err: errors.New("token answer carries no usable token")}
	}
	life := defaultTokenLife
	if n, err := ta.ExpiresIn.Int64(); err == nil && n > 0 {
		life = time.Duration(n) * time.Second
	}
	return tokencache.Token{Value: ta.AccessToken, Expires: issued.Add(life)}, false, nil
}

// basicAuth authorizes token requests with the API credential.
func (c *Connector) basicAuth(req *http.Request) {
	req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
}

// revoke revokes tok (best effort: a failure only delays the roll-over).
func (c *Connector) revoke(ctx context.Context, tok string) {
	cl := call{Op: "onelogin.revoke", Method: http.MethodPost, Path: "/auth/oauth2/revoke", Secrets: []string{c.cfg.ClientID, c.cfg.ClientSecret, tok},
		Body: map[string]string{"access_token": tok}}
	resp, err := c.api.Exchange(ctx, cl, c.basicAuth)
	if err == nil && resp.Status >= 300 {
		err = c.classify(ctx, cl, resp)
	}
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "onelogin: revoking the expiring token failed", slog.String("error", err.Error()))
	}
}
