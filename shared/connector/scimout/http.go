package scimout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
)

const (
	maxBody      = 8 << 20 // a page of 1000 fat users fits; anything bigger is refused
	maxDetail    = 300
	mediaType    = "application/scim+json"
	userAgent    = "learnerlink-scimout/1"
	scimTypeUniq = "uniqueness"
)

// call is one API request.
type call struct {
	op      string // "scimout.get", …
	method  string
	path    string // escaped, relative to the base URL
	query   [][2]string
	body    any
	ifMatch string
	// ignoreBody drops a 2xx body unread (a group PATCH may answer with
	// every member).
	ignoreBody bool
	// secrets are values to keep out of error text (the learner's own
	// attribute values, which a vendor's error detail may echo).
	secrets []string
}

// response is a bounded, fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// scimError is an RFC 7644 §3.12 error body.
type scimError struct {
	ScimType string `json:"scimType"`
	Detail   string `json:"detail"`
}

// do sends cl and decodes a 2xx body into out (when non-nil). Non-2xx
// answers become *connector.Error; the (last) response is returned either
// way when one arrived. Throttled answers, and for idempotent requests
// other transient failures, are tried again under c.retry (see
// idempotent).
func (c *Connector) do(ctx context.Context, cl call, out any) (*response, error) {
	var last *response
	err := c.retry.Do(ctx, idempotent(cl.method), func(ctx context.Context) error {
		resp, err := c.send(ctx, cl)
		last = resp
		if err != nil {
			return err
		}
		if resp.status < 200 || resp.status > 299 {
			return c.classify(ctx, cl, resp)
		}
		return vendorhttp.Decode(cl.op, resp.status, resp.body, out)
	})
	return last, err
}

// idempotent says whether a request may be sent again after a failure
// that may have reached the service provider (a 5xx, a timeout). Our
// PATCHes are: every operation sets a state rather than a delta (replace
// a value, add a value that a filter or the member set makes unique,
// remove by filter), so applying one twice leaves what applying it once
// does; with If-Match, a repeat of an applied PATCH meets 412, which the
// callers already resolve by re-reading. POST creates, so it never is.
// (A strict server may answer a repeated member removal 400 noTarget;
// that needs a 5xx or a timeout on the first one, then a server that
// treats removing an absent member as an error.)
func idempotent(method string) bool {
	return vendorhttp.Idempotent(method) || method == http.MethodPatch
}

// send waits on the limiter and makes one HTTP request.
func (c *Connector) send(ctx context.Context, cl call) (*response, error) {
	var body []byte
	if cl.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.body); err != nil {
			return nil, &connector.Error{Op: cl.op, Err: fmt.Errorf("encode request: %w", err)}
		}
		body = buf.Bytes()
	}
	if err := c.cfg.Limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: rate limiter: %w", cl.op, err)
	}
	u := c.base + cl.path
	if q := encodeQuery(cl.query); q != "" {
		u += "?" + q
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, rd)
	if err != nil {
		return nil, &connector.Error{Op: cl.op, Err: fmt.Errorf("build request: %w", err)}
	}
	c.cfg.Auth.authorize(req)
	req.Header.Set("Accept", mediaType+", application/json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", mediaType+"; charset=utf-8")
	}
	if cl.ifMatch != "" {
		req.Header.Set("If-Match", cl.ifMatch)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		// The URL may hold a filter with a learner's values: dropped.
		return nil, vendorhttp.TransportError(ctx, cl.op, cl.method, routeOf(cl.path), err)
	}
	defer res.Body.Close()
	if cl.ignoreBody && res.StatusCode >= 200 && res.StatusCode <= 299 {
		// Drained (bounded) so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody))
		c.log.LogAttrs(ctx, slog.LevelDebug, "scimout: request",
			slog.String("op", cl.op), slog.String("method", cl.method), slog.String("route", routeOf(cl.path)),
			slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
		return &response{status: res.StatusCode, header: res.Header}, nil
	}
	data, err := vendorhttp.ReadBody(ctx, cl.op, res, maxBody)
	if err != nil {
		return nil, err
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "scimout: request",
		slog.String("op", cl.op), slog.String("method", cl.method), slog.String("route", routeOf(cl.path)),
		slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// classify maps a failed answer to a *connector.Error.
func (c *Connector) classify(ctx context.Context, cl call, resp *response) *connector.Error {
	e := vendorhttp.Classify(cl.op, resp.status, resp.header, c.now())
	var se scimError
	_ = json.Unmarshal(resp.body, &se) // best effort: bodies vary
	switch s := resp.status; {
	case vendorhttp.Throttled(s):
		// Every worker on this tenant slows down, not just this call.
		vendorhttp.Pause(ctx, c.cfg.Limiter, c.log, "scimout", cl.op, e.RetryAfter)
	case s == http.StatusConflict && cl.method != http.MethodPost && !strings.EqualFold(se.ScimType, scimTypeUniq):
		// A duplicate is POST's 409 or scimType uniqueness (RFC 7644
		// §3.3); on PUT/PATCH otherwise, servers (ours among them) mean a
		// concurrent change they gave up re-applying.
		e.Conflict, e.Retryable = false, true
	case s == http.StatusPreconditionFailed:
		// Someone changed the resource between our read and write; the
		// callers re-read once, so reaching here means it keeps changing.
		e.Retryable = true
	}
	e.Err = &vendorError{scimType: se.ScimType, text: describe(resp.status, se, slices.Concat(cl.secrets, c.cfg.Auth.secrets()))}
	return e
}

// vendorError is the service provider's answer, redacted; scimType lets
// callers tell e.g. invalidFilter from other 400s.
type vendorError struct {
	scimType string
	text     string
}

func (e *vendorError) Error() string { return e.text }

// scimTypeOf returns the scimType of a service provider error in err.
func scimTypeOf(err error) string {
	var ve *vendorError
	if errors.As(err, &ve) {
		return ve.scimType
	}
	return ""
}

// describe renders a SCIM error without personal data.
func describe(status int, se scimError, secrets []string) string {
	var b strings.Builder
	b.WriteString("service provider answered ")
	b.WriteString(strconv.Itoa(status))
	if se.ScimType != "" {
		b.WriteString(" (")
		b.WriteString(se.ScimType)
		b.WriteString(")")
	}
	if d := redact(se.Detail, secrets); d != "" {
		b.WriteString(": ")
		b.WriteString(d)
	}
	return b.String()
}

// redact is vendorhttp.Redact with the SCIM detail's cap.
func redact(s string, secrets []string) string { return vendorhttp.Redact(s, secrets, maxDetail) }

// encodeQuery encodes in order, spaces as %20: some SCIM servers do not
// decode '+' in a filter.
func encodeQuery(q [][2]string) string {
	var b strings.Builder
	for i, kv := range q {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escapeQuery(kv[0]))
		b.WriteByte('=')
		b.WriteString(escapeQuery(kv[1]))
	}
	return b.String()
}

// escapeQuery is url.QueryEscape with %20 for spaces (a literal '+' is
// already %2B, so the swap is safe).
func escapeQuery(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// routeOf names the route of an escaped path for logs: ids are replaced,
// so logs carry no identifiers chosen by the vendor.
func routeOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) > 1 {
		parts[1] = "{id}"
	}
	return "/" + strings.Join(parts, "/")
}

// quote renders a filter comparison value as a JSON string (RFC 7644
// §3.4.2.2): '"' and '\' are escaped, as are control characters.
func quote(v string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// eqFilter builds `<path> eq "<value>"`.
func eqFilter(path, value string) string { return path + " eq " + quote(value) }
