package vendorhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// Limiter gates every request to a vendor (shared/throttle provides them).
type Limiter interface {
	Wait(ctx context.Context) error
	Pauser
}

// Call is one JSON API request.
type Call struct {
	Op      string // "absorb.get", …
	Method  string
	Path    string // escaped, from the API base
	Query   url.Values
	Body    any      // JSON-encoded when non-nil
	Secrets []string // values to keep out of error text
}

// Response is a bounded, fully read answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// API sends one vendor's JSON calls with a shared bearer token (Auth),
// retrying within the call (Retry). NewAPI fills in its defaults.
type API struct {
	Vendor  string // prefixes log lines ("absorb")
	Base    string // scheme://host[/path], no trailing slash
	HTTP    *http.Client
	Limiter Limiter // waited on before every request, logins included
	Log     *slog.Logger
	Now     func() time.Time
	Retry   Retry
	MaxBody int64 // answer size cap; 0: 10 MiB
	Auth    Auth
	// Decorate sets the vendor's own headers on every request (optional).
	Decorate func(req *http.Request)
	// Classify turns a non-2xx answer into a *connector.Error.
	Classify func(ctx context.Context, cl Call, resp *Response) *connector.Error
	// Answered sees each answer to a request sent with the token
	// (optional), e.g. to read rate-limit headers.
	Answered func(ctx context.Context, cl Call, resp *Response)
}

// NewAPI returns a with its defaults: NewClient, a discarding logger,
// time.Now, and Retry and Auth sharing them.
func NewAPI(a API) *API {
	if a.HTTP == nil {
		a.HTTP = NewClient()
	}
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.MaxBody <= 0 {
		a.MaxBody = 10 << 20
	}
	if a.Retry.Logger == nil {
		a.Retry.Logger = a.Log
	}
	if a.Auth.Vendor == "" {
		a.Auth.Vendor = a.Vendor
	}
	if a.Auth.Log == nil {
		a.Auth.Log = a.Log
	}
	if a.Auth.Now == nil {
		a.Auth.Now = a.Now
	}
	return &a
}

// Do sends cl with the shared token and decodes a 2xx body into out (when
// non-nil); it returns the last answer's header. Non-2xx answers become
// *connector.Error. Throttled answers, and for idempotent methods other
// transient failures, are tried again under Retry; a 401 never is by that
// loop (Auth.Send handles it, refreshing the token at most as often).
func (a *API) Do(ctx context.Context, cl Call, out any) (http.Header, error) {
	var h http.Header
	err := a.Retry.Do(ctx, Idempotent(cl.Method), func(ctx context.Context) error {
		resp, err := a.Auth.Send(ctx, cl.Op, func(ctx context.Context, token string) (*Response, error) {
			resp, err := a.Exchange(ctx, cl, func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) })
			if err == nil && a.Answered != nil {
				a.Answered(ctx, cl, resp)
			}
			return resp, err
		})
		if err != nil {
			return err
		}
		h = resp.Header
		if resp.Status >= 200 && resp.Status < 300 {
			return Decode(cl.Op, resp.Status, resp.Body, out)
		}
		e := a.Classify(ctx, cl, resp)
		if resp.Status == http.StatusUnauthorized {
			e.Retryable = true
			e.Err = fmt.Errorf("still unauthorized after refreshing the token: %w", e.Err)
		}
		return e
	})
	return h, err
}

// Exchange waits on the limiter and sends cl once, authorized by
// authorize (nil: no credentials), returning any answer.
func (a *API) Exchange(ctx context.Context, cl Call, authorize func(*http.Request)) (*Response, error) {
	var rd io.Reader
	if cl.Body != nil {
		body, err := json.Marshal(cl.Body)
		if err != nil {
			return nil, &connector.Error{Op: cl.Op, Err: fmt.Errorf("encode request: %w", err)}
		}
		rd = bytes.NewReader(body)
	}
	u := a.Base + cl.Path
	if len(cl.Query) > 0 {
		u += "?" + cl.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, cl.Method, u, rd)
	if err != nil {
		return nil, &connector.Error{Op: cl.Op, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Decorate != nil {
		a.Decorate(req)
	}
	if authorize != nil {
		authorize(req)
	}
	if err := a.Limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: rate limiter: %w", cl.Op, err)
	}
	start := time.Now()
	res, err := a.HTTP.Do(req)
	if err != nil {
		// Timeouts, resets, DNS: worth another try later. The URL in err
		// may hold a learner's values, so only the path is named.
		return nil, TransportError(ctx, cl.Op, cl.Method, cl.Path, err)
	}
	defer res.Body.Close()
	data, err := ReadBody(ctx, cl.Op, res, a.MaxBody)
	if err != nil {
		return nil, err
	}
	a.Log.LogAttrs(ctx, slog.LevelDebug, a.Vendor+": request",
		slog.String("op", cl.Op), slog.String("method", cl.Method), slog.String("path", cl.Path),
		slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
	return &Response{Status: res.StatusCode, Header: res.Header, Body: data}, nil
}
