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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/retry"
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
// answers become *connector.Error; the response is returned either way
// when one arrived.
func (c *Connector) do(ctx context.Context, cl call, out any) (*response, error) {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return nil, err
	}
	if resp.status < 200 || resp.status > 299 {
		return resp, c.classify(ctx, cl, resp)
	}
	if out != nil && len(bytes.TrimSpace(resp.body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(resp.body))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return resp, &connector.Error{Op: cl.op, Status: resp.status, Err: fmt.Errorf("decode response: %w", err)}
		}
	}
	return resp, nil
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
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", cl.op, ctx.Err())
		}
		// The URL may hold a filter with a learner's values: drop it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &connector.Error{Op: cl.op, Retryable: true, Err: fmt.Errorf("%s %s: %w", cl.method, routeOf(cl.path), err)}
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
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", cl.op, ctx.Err())
		}
		return nil, &connector.Error{Op: cl.op, Status: res.StatusCode, Retryable: true, Err: fmt.Errorf("read response: %w", err)}
	}
	if len(data) > maxBody {
		return nil, &connector.Error{Op: cl.op, Status: res.StatusCode, Err: fmt.Errorf("response larger than %d bytes", maxBody)}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "scimout: request",
		slog.String("op", cl.op), slog.String("method", cl.method), slog.String("route", routeOf(cl.path)),
		slog.Int("status", res.StatusCode), slog.Duration("took", time.Since(start)))
	return &response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// classify maps a failed answer to a *connector.Error.
func (c *Connector) classify(ctx context.Context, cl call, resp *response) *connector.Error {
	e := &connector.Error{Op: cl.op, Status: resp.status}
	var se scimError
	_ = json.Unmarshal(resp.body, &se) // best effort: bodies vary
	switch s := resp.status; {
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		e.Retryable = true
		e.RetryAfter, _ = retry.ParseRetryAfter(resp.header.Get("Retry-After"), c.now())
		// Every worker on this tenant slows down, not just this call.
		if err := c.cfg.Limiter.Pause(ctx, e.RetryAfter); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "scimout: pausing the limiter failed", slog.String("op", cl.op), slog.String("error", err.Error()))
		}
	case s >= 500:
		e.Retryable = true
	case s == http.StatusNotFound:
		e.NotFound = true
	case s == http.StatusConflict && (cl.method == http.MethodPost || strings.EqualFold(se.ScimType, scimTypeUniq)):
		e.Conflict = true // a duplicate (RFC 7644 §3.3, scimType uniqueness)
	case s == http.StatusConflict:
		// On PUT/PATCH without scimType uniqueness, servers (ours among
		// them) mean a concurrent change they gave up re-applying.
		e.Retryable = true
	case s == http.StatusPreconditionFailed:
		// Someone changed the resource between our read and write; the
		// callers re-read once, so reaching here means it keeps changing.
		e.Retryable = true
	case s == http.StatusUnauthorized:
		// A static token or key that was rotated: fixable without touching
		// the data, so worth trying later rather than parking every learner.
		e.Retryable = true
	case s == http.StatusRequestTimeout:
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

// redact removes the given values and anything quoted from s and bounds
// its length, so a vendor message that echoes input cannot leak it.
func redact(s string, secrets []string) string {
	// Longest first, so a value containing another is removed whole.
	sorted := append([]string(nil), secrets...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, v := range sorted {
		if len(v) < 2 {
			continue
		}
		s = replaceFold(s, v, "[redacted]")
	}
	var b strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
			b.WriteRune(r)
		case quote != 0:
		case r == '\'' || r == '"':
			quote = r
			b.WriteRune(r)
			b.WriteString("…")
		case r < 0x20:
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if len(out) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8Start(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// replaceFold replaces every case-insensitive occurrence of old in s.
func replaceFold(s, old, repl string) string {
	ls, lo := strings.ToLower(s), strings.ToLower(old)
	if len(ls) != len(s) || len(lo) != len(old) {
		return strings.ReplaceAll(s, old, repl) // case mapping changed lengths: exact only
	}
	var b strings.Builder
	for {
		i := strings.Index(ls, lo)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, ls = s[i+len(old):], ls[i+len(old):]
	}
}

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
