package absorb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	tokenLifetime = 4 * time.Hour    // [D] for every auth method
	refreshBefore = 30 * time.Minute // refresh this long before expiry
	unauthPause   = 250 * time.Millisecond
	maxAttempts   = 4 // per call, across 401 handling
)

// call is one API request.
type call = vendorhttp.Call

// apiError is Absorb's error body.
type apiError struct {
	Validations []string `json:"validations"`
	Code        any      `json:"code"`
	Message     string   `json:"message"`
}

// do sends cl with the shared token (see Tokens in the package comment)
// and decodes a 2xx body into out (when non-nil); see vendorhttp.API.Do.
func (c *Connector) do(ctx context.Context, cl call, out any) error {
	_, err := c.api.Do(ctx, cl, out)
	return err
}

// decorate sets the headers every Absorb request carries.
func (c *Connector) decorate(req *http.Request) {
	req.Header.Set("x-api-key", c.cfg.PrivateKey)
	req.Header.Set("x-api-version", "2")
}

// classify maps a failed answer to a *connector.Error.
func (c *Connector) classify(ctx context.Context, cl call, resp *vendorhttp.Response) *connector.Error {
	e := vendorhttp.Classify(cl.Op, resp.Status, resp.Header, c.now())
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae) // best effort: bodies vary
	switch s := resp.Status; {
	case vendorhttp.Throttled(s):
		// Everyone slows down, not just this caller; 0 lets the limiter
		// pick its backoff.
		vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "absorb", cl.Op, e.RetryAfter)
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		e.Conflict = duplicate(ae)
	}
	e.Err = errors.New(describe(ae, resp.Status, cl.Secrets))
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

// authenticate calls POST /authenticate and returns the token (its
// lifetime is tokenLifetime). refused says Absorb turned the login down
// (400/401/403: credentials, key or a disabled portal).
func (c *Connector) authenticate(ctx context.Context, _ tokencache.Token) (tok tokencache.Token, refused bool, err error) {
	const op = "absorb.authenticate"
	cl := call{Op: op, Method: http.MethodPost, Path: "/authenticate", Secrets: []string{c.cfg.Username, c.cfg.Password, c.cfg.PrivateKey},
		Body: map[string]string{"username": c.cfg.Username, "password": c.cfg.Password, "privateKey": c.cfg.PrivateKey}}
	resp, err := c.api.Exchange(ctx, cl, nil)
	if err != nil {
		return tok, false, err
	}
	if resp.Status != http.StatusOK {
		e := c.classify(ctx, cl, resp)
		return tok, vendorhttp.RefuseLogin(e, "login refused"), e
	}
	// The body is a JSON string; tolerate a bare token too.
	if err := json.Unmarshal(resp.Body, &tok.Value); err != nil {
		tok.Value = strings.Trim(strings.TrimSpace(string(resp.Body)), `"`)
	}
	if !vendorhttp.UsableToken(tok.Value) {
		return tokencache.Token{}, false, &connector.Error{Op: op, Status: resp.Status, Retryable: true, Err: errors.New("authenticate answered no usable token")}
	}
	return tok, false, nil
}
