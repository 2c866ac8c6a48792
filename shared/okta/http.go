package okta

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Response bodies are bounded: a page of 500 app users with embedded
// profiles is a few MB.
const (
	maxBody      = 64 << 20
	maxErrorBody = 64 << 10
	userAgent    = "learnerlink-okta/1"
)

// rateState is the last X-Rate-Limit-* seen for one endpoint family.
type rateState struct {
	limit, remaining int
	reset            time.Time
}

// get sends an authenticated GET, pacing by the rate-limit headers and
// retrying 429s (after the reset), transient 5xx and one 401 with a fresh
// OAuth token. It decodes a 2xx JSON body into out.
func (c *Client) get(ctx context.Context, bucket, path string, q url.Values, out any) (http.Header, error) {
	u := *c.base
	u.Path = path
	u.RawQuery = q.Encode()
	reauthed := false
	for attempt := 0; ; attempt++ {
		if err := c.pace(ctx, bucket); err != nil {
			return nil, err
		}
		auth, err := c.authorization(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		c.observe(bucket, resp.Header)
		if resp.StatusCode/100 == 2 {
			err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out)
			_ = resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("GET %s: decode: %w", path, err)
			}
			return resp.Header, nil
		}
		apiErr := readAPIError(resp)
		switch {
		case resp.StatusCode == http.StatusTooManyRequests && attempt < c.cfg.MaxRetries:
			d := c.resetWait(resp.Header, attempt)
			c.log.DebugContext(ctx, "okta: rate limited; waiting for the reset", "bucket", bucket, "wait", d.String(), "attempt", attempt+1)
			if err := c.wait(ctx, d); err != nil {
				return nil, err
			}
		case resp.StatusCode == http.StatusUnauthorized && c.oauth != nil && !reauthed:
			// The cached token may have been revoked: fetch one more.
			c.oauth.invalidate()
			reauthed = true
		case (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) && attempt < min(2, c.cfg.MaxRetries):
			if err := c.wait(ctx, time.Duration(200<<attempt)*time.Millisecond); err != nil {
				return nil, fmt.Errorf("GET %s: %w (then %w)", path, apiErr, err)
			}
		default:
			return nil, fmt.Errorf("GET %s: %w", path, apiErr)
		}
	}
}

func (c *Client) authorization(ctx context.Context) (string, error) {
	if c.oauth == nil {
		return "SSWS " + c.token, nil
	}
	tok, err := c.oauth.token(ctx, c)
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

func readAPIError(resp *http.Response) *APIError {
	defer func() { _ = resp.Body.Close() }()
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		ErrorCode    string `json:"errorCode"`
		ErrorSummary string `json:"errorSummary"`
		ErrorID      string `json:"errorId"`
		// OAuth endpoints answer RFC 6749 errors.
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body) == nil {
		e.Code, e.Summary, e.ID = body.ErrorCode, body.ErrorSummary, body.ErrorID
		if e.Code == "" {
			e.Code, e.Summary = body.Error, body.ErrorDescription
		}
	}
	return e
}

// observe records the rate-limit headers of a response.
func (c *Client) observe(bucket string, h http.Header) {
	limit, err1 := strconv.Atoi(h.Get("X-Rate-Limit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("X-Rate-Limit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		return
	}
	c.limitMu.Lock()
	c.limits[bucket] = rateState{limit: limit, remaining: remaining, reset: time.Unix(reset, 0)}
	c.limitMu.Unlock()
}

// pace slows down when the window is nearly used up: the requests left
// are spread evenly over the time left, and none is sent once it is
// exhausted until the reset. Concurrent callers each take one of the
// remaining requests, so together they keep to the same pace.
func (c *Client) pace(ctx context.Context, bucket string) error {
	now := c.cfg.Now()
	c.limitMu.Lock()
	st, ok := c.limits[bucket]
	if !ok || !now.Before(st.reset) {
		c.limitMu.Unlock()
		return nil
	}
	low := max(1, int(float64(st.limit)*c.cfg.LowWater))
	if st.remaining > low {
		st.remaining--
		c.limits[bucket] = st
		c.limitMu.Unlock()
		return nil
	}
	left := st.reset.Sub(now)
	d := left
	if st.remaining > 0 {
		d = left / time.Duration(st.remaining+1)
	}
	st.remaining = max(0, st.remaining-1)
	c.limits[bucket] = st
	c.limitMu.Unlock()
	c.log.DebugContext(ctx, "okta: rate limit low; slowing down", "bucket", bucket, "remaining", st.remaining+1, "wait", d.String())
	return c.wait(ctx, d)
}

// resetWait is how long to wait after a 429: until X-Rate-Limit-Reset, or
// a growing backoff if the header is missing or already past.
func (c *Client) resetWait(h http.Header, attempt int) time.Duration {
	if sec, err := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64); err == nil {
		if d := time.Unix(sec, 0).Sub(c.cfg.Now()); d > 0 {
			return d
		}
	}
	return time.Duration(attempt+1) * time.Second
}

// wait sleeps d (capped by MaxWait), failing at once with ErrRateLimited
// if ctx's deadline comes first: a caller with a tight budget (the hooks
// receiver) would rather fall back than sleep into its timeout.
func (c *Client) wait(ctx context.Context, d time.Duration) error {
	d = min(d, c.cfg.MaxWait)
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("%w: the next request is allowed in %s, after the deadline", ErrRateLimited, d.Round(time.Millisecond))
	}
	if err := c.cfg.Sleep(ctx, d); err != nil {
		return fmt.Errorf("okta: waiting for the rate limit: %w", err)
	}
	return nil
}

// nextCursor finds rel="next" among Link header values (one link per
// value, as Okta sends them, or several comma-separated) and returns its
// after parameter.
func nextCursor(values []string) string {
	for _, v := range values {
		for len(v) > 0 {
			open := strings.IndexByte(v, '<')
			if open < 0 {
				break
			}
			end := strings.IndexByte(v[open:], '>')
			if end < 0 {
				break
			}
			target := v[open+1 : open+end]
			rest := v[open+end+1:]
			params := rest
			if i := strings.IndexByte(rest, '<'); i >= 0 {
				params = rest[:i]
			}
			v = rest
			if !hasRelNext(params) {
				continue
			}
			if u, err := url.Parse(target); err == nil {
				return u.Query().Get("after")
			}
		}
	}
	return ""
}

func hasRelNext(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(p), ",")), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
			continue
		}
		for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
			if strings.EqualFold(r, "next") {
				return true
			}
		}
	}
	return false
}
