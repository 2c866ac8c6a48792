package absorb

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
	tokenLifetime = 4 * time.Hour    // [D] for every auth method
	refreshBefore = 30 * time.Minute // refresh this long before expiry
	claimTTL      = 20 * time.Second // a refresh claim outlives authTimeout
	authTimeout   = 15 * time.Second
	failHold      = time.Minute // how long a failed login stops further tries
	unauthPause   = 250 * time.Millisecond
	maxBody       = 10 << 20
	maxAttempts   = 4 // per call, across 401 handling

	claimPrefix = "learnerlink:refreshing:"
	failPrefix  = "learnerlink:auth-failed:"
)

// call is one API request.
type call struct {
	op      string // "absorb.get", …
	method  string
	path    string // escaped, from the gateway root
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

// apiError is Absorb's error body.
type apiError struct {
	Validations []string `json:"validations"`
	Code        any      `json:"code"`
	Message     string   `json:"message"`
}

// do sends cl with the shared token, handling 401s, and decodes a 2xx
// body into out (when non-nil). Non-2xx answers become *connector.Error.
// Throttled answers, and for GET and PUT other transient failures, are
// tried again under c.retry; a 401 is never retried by that loop (send
// handles it, refreshing the token at most as often as before).
func (c *Connector) do(ctx context.Context, cl call, out any) error {
	return c.retry.Do(ctx, vendorhttp.Idempotent(cl.method), func(ctx context.Context) error {
		resp, err := c.send(ctx, cl)
		if err != nil {
			return err
		}
		return c.finish(ctx, cl, resp, out)
	})
}

// send is do without the status handling: it returns any non-401 answer.
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
	retriedSame := false
	for attempt := 1; ; attempt++ {
		resp, err := c.roundTrip(ctx, cl, body, tok.Value)
		if err != nil {
			return nil, err
		}
		if resp.status != http.StatusUnauthorized {
			return resp, nil
		}
		if attempt >= maxAttempts {
			return nil, &connector.Error{Op: cl.op, Status: resp.status, Retryable: true, Err: errors.New("still unauthorized after refreshing the token")}
		}
		cur, err := c.cfg.Tokens.Get(ctx)
		if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
			return nil, c.cacheErr(ctx, cl.op, err)
		}
		switch {
		case cur.Generation != tok.Generation:
			// Another worker refreshed since we read ours: use theirs.
			tok, err = c.token(ctx, cl.op)
		case !retriedSame:
			// Our token is the current one. Absorb's load balancer gives
			// transient 401s, so try it once more before refreshing (a
			// refresh revokes the token for every worker).
			retriedSame = true
			c.log.LogAttrs(ctx, slog.LevelDebug, "absorb: 401 with the current token; retrying once", slog.String("op", cl.op))
			err = sleep(ctx, unauthPause)
		default:
			c.log.LogAttrs(ctx, slog.LevelInfo, "absorb: token rejected twice; refreshing", slog.String("op", cl.op), slog.Int64("generation", tok.Generation))
			tok, err = c.refresh(ctx, cl.op, tok.Generation)
		}
		if err != nil {
			return nil, err
		}
	}
}

// roundTrip waits on the limiter and sends one HTTP request. token ""
// sends no Authorization (for /authenticate).
func (c *Connector) roundTrip(ctx context.Context, cl call, body []byte, token string) (*response, error) {
	if err := c.cfg.Limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: rate limiter: %w", cl.op, err)
	}
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
	req.Header.Set("x-api-key", c.cfg.PrivateKey)
	req.Header.Set("x-api-version", "2")
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		// Timeouts, resets, DNS: worth another try later. The URL in err
		// may hold a filter with attribute values, so it is dropped.
		return nil, vendorhttp.TransportError(ctx, cl.op, cl.method, cl.path, err)
	}
	defer res.Body.Close()
	data, err := vendorhttp.ReadBody(ctx, cl.op, res, maxBody)
	if err != nil {
		return nil, err
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "absorb: request",
		slog.String("op", cl.op), slog.String("method", cl.method), slog.String("path", cl.path),
		slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
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
	switch s := resp.status; {
	case vendorhttp.Throttled(s):
		// Everyone slows down, not just this caller; 0 lets the limiter
		// pick its backoff.
		vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "absorb", cl.op, e.RetryAfter)
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		e.Conflict = duplicate(ae)
	}
	e.Err = errors.New(describe(ae, resp.status, cl.secrets))
	return e
}

// describe renders Absorb's error without personal data.
func describe(ae apiError, status int, secrets []string) string {
	var b strings.Builder
	b.WriteString("absorb answered ")
	b.WriteString(strconv.Itoa(status))
	if ae.Message != "" {
		b.WriteString(": ")
		b.WriteString(ae.Message)
	}
	if ae.Code != nil {
		fmt.Fprintf(&b, " (code %v)", ae.Code)
	}
	if len(ae.Validations) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(ae.Validations, "; "))
	}
	return redact(b.String(), secrets)
}

// duplicate recognises "username/external id already in use" validations.
func duplicate(ae apiError) bool {
	for _, v := range append([]string{ae.Message}, ae.Validations...) {
		l := strings.ToLower(v)
		key := strings.Contains(l, "username") || strings.Contains(l, "user name") ||
			strings.Contains(l, "external id") || strings.Contains(l, "externalid")
		taken := strings.Contains(l, "already") || strings.Contains(l, "in use") || strings.Contains(l, "exists") ||
			strings.Contains(l, "duplicate") || strings.Contains(l, "taken") || strings.Contains(l, "unique")
		if key && taken {
			return true
		}
	}
	return false
}

// redact is vendorhttp.Redact with Absorb's 600-byte cap.
func redact(s string, secrets []string) string { return vendorhttp.Redact(s, secrets, 600) }

// retryAfter parses delta-seconds or an HTTP date; 0 if absent or bad.
func retryAfter(v string, now time.Time) time.Duration {
	d, _ := retry.ParseRetryAfter(v, now)
	return d
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

// token returns a usable token from the cache, refreshing it when it is
// missing or close to expiry, or waiting while another worker refreshes.
func (c *Connector) token(ctx context.Context, op string) (tokencache.Token, error) {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(2 * claimTTL)
	for {
		t, err := c.cfg.Tokens.Get(ctx)
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
				Err: errors.New("absorb refused the API login recently (check username, password and private key); not trying again yet")}
		case strings.HasPrefix(t.Value, claimPrefix) && now.Before(t.Expires):
			if time.Now().After(deadline) {
				return tokencache.Token{}, &connector.Error{Op: op, Retryable: true, Err: errors.New("timed out waiting for another worker's token refresh")}
			}
			if err := sleep(ctx, wait); err != nil {
				return tokencache.Token{}, fmt.Errorf("%s: %w", op, err)
			}
			wait = min(2*wait, 200*time.Millisecond)
			continue
		case err == nil && !strings.HasPrefix(t.Value, claimPrefix) && !strings.HasPrefix(t.Value, failPrefix) &&
			!t.Expired(now, refreshBefore):
			return t, nil
		}
		nt, err := c.claimAndAuthenticate(ctx, op, t.Generation)
		if errors.Is(err, errLostRace) {
			continue
		}
		return nt, err
	}
}

// refresh replaces the token of generation gen (rejected by Absorb).
func (c *Connector) refresh(ctx context.Context, op string, gen int64) (tokencache.Token, error) {
	t, err := c.claimAndAuthenticate(ctx, op, gen)
	if errors.Is(err, errLostRace) {
		return c.token(ctx, op)
	}
	return t, err
}

// errLostRace says another worker changed the cache first.
var errLostRace = errors.New("absorb: token cache changed concurrently")

// claimAndAuthenticate claims the refresh of generation prev, and if it
// wins, authenticates and stores the new token.
func (c *Connector) claimAndAuthenticate(ctx context.Context, op string, prev int64) (tokencache.Token, error) {
	marker := func(prefix string, expires time.Time) tokencache.Token {
		return tokencache.Token{Value: prefix + nonce(), Expires: expires}
	}
	held, err := c.cfg.Tokens.Replace(ctx, prev, marker(claimPrefix, c.now().Add(claimTTL)))
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace
	}
	if err != nil {
		return tokencache.Token{}, c.cacheErr(ctx, op, err)
	}
	issued := c.now()
	actx, cancel := context.WithTimeout(ctx, authTimeout)
	value, refused, aerr := c.authenticate(actx)
	cancel()
	if aerr != nil {
		// A refused login holds everyone off for a while (repeated bad
		// logins can lock the admin out); anything else frees the claim
		// at once for the next worker.
		next := marker(claimPrefix, c.now().Add(-time.Second))
		if refused {
			next = marker(failPrefix, c.now().Add(failHold))
			c.log.LogAttrs(ctx, slog.LevelError, "absorb: API login refused; check the credentials", slog.String("error", aerr.Error()))
		}
		if _, err := c.cfg.Tokens.Replace(context.WithoutCancel(ctx), held.Generation, next); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "absorb: could not release the refresh claim", slog.String("error", err.Error()))
		}
		return tokencache.Token{}, aerr
	}
	tok, err := c.cfg.Tokens.Replace(ctx, held.Generation, tokencache.Token{Value: value, Expires: issued.Add(tokenLifetime)})
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace // our claim expired and was taken over
	}
	if err != nil {
		return tokencache.Token{}, c.cacheErr(ctx, op, err)
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "absorb: new API token", slog.Int64("generation", tok.Generation))
	return tok, nil
}

// authenticate calls POST /authenticate and returns the token. refused
// says Absorb turned the login down (400/401/403: credentials, key or a
// disabled portal); that is fixable without touching the data, so it is
// reported Retryable with a delay rather than parking every learner.
func (c *Connector) authenticate(ctx context.Context) (token string, refused bool, err error) {
	const op = "absorb.authenticate"
	body, err := json.Marshal(map[string]string{"username": c.cfg.Username, "password": c.cfg.Password, "privateKey": c.cfg.PrivateKey})
	if err != nil {
		return "", false, &connector.Error{Op: op, Err: err}
	}
	cl := call{op: op, method: http.MethodPost, path: "/authenticate", secrets: []string{c.cfg.Username, c.cfg.Password, c.cfg.PrivateKey}}
	resp, err := c.roundTrip(ctx, cl, body, "")
	if err != nil {
		return "", false, err
	}
	if resp.status != http.StatusOK {
		e := c.classify(ctx, cl, resp)
		if resp.status == http.StatusBadRequest || resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden {
			e.Retryable, e.Conflict, e.RetryAfter = true, false, failHold
			e.Err = fmt.Errorf("login refused: %w", e.Err)
			return "", true, e
		}
		return "", false, e
	}
	// The body is a JSON string; tolerate a bare token too.
	var tok string
	if err := json.Unmarshal(resp.body, &tok); err != nil {
		tok = strings.Trim(strings.TrimSpace(string(resp.body)), `"`)
	}
	if tok == "" || strings.ContainsAny(tok, " \r\n") || strings.HasPrefix(tok, claimPrefix) || strings.HasPrefix(tok, failPrefix) {
		return "", false, &connector.Error{Op: op, Status: resp.status, Retryable: true, Err: errors.New("authenticate answered no usable token")}
	}
	return tok, false, nil
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
