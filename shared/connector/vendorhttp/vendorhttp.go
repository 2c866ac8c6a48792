// Package vendorhttp holds the HTTP plumbing the target connectors
// (absorb, onelogin, scimout) share: redacting vendor error text, mapping
// an HTTP status to a *connector.Error, bounded body reads, transport
// error handling, JSON decoding, the default client, the in-request
// retry policy (Retry), a bearer token shared by every worker (Auth) and
// the JSON call loop built on them (API). What is specific to a vendor
// (how it logs in, its error body, its rate-limit headers, its duplicate
// detection) stays in the connector, passed in as hooks.
package vendorhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/retry"
)

// Redact removes every given value (case-insensitively, longest first;
// values shorter than two bytes are ignored) and everything inside single
// or double quotes from s, turns control characters into spaces, trims it
// and caps it at max bytes (cut on a rune boundary, "…" appended), so a
// vendor message that echoes input cannot leak it. max <= 0 means no cap.
func Redact(s string, secrets []string, max int) string {
	sorted := append([]string(nil), secrets...)
	sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
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
		case r < 0x20 || r == 0x7f:
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if max > 0 && len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

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

// Throttled reports a status that asks every caller to slow down (429,
// 503): the connector should pause its limiter for the Retry-After.
func Throttled(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// Classify maps a non-2xx status to a *connector.Error (Err left nil for
// the connector's vendor-specific text):
//   - 429, 503: Retryable, RetryAfter from the Retry-After header
//     (retry.ParseRetryAfter; 0 when absent or bad);
//   - other 5xx, 401 (a rotated credential) and 408: Retryable;
//   - 404: NotFound; 409: Conflict;
//   - anything else (400, 403, 422, …): permanent.
func Classify(op string, status int, h http.Header, now time.Time) *connector.Error {
	e := &connector.Error{Op: op, Status: status}
	switch {
	case Throttled(status):
		e.Retryable = true
		e.RetryAfter, _ = retry.ParseRetryAfter(h.Get("Retry-After"), now)
	case status >= 500, status == http.StatusUnauthorized, status == http.StatusRequestTimeout:
		e.Retryable = true
	case status == http.StatusNotFound:
		e.NotFound = true
	case status == http.StatusConflict:
		e.Conflict = true
	}
	return e
}

// Pauser is the part of a connector's limiter that Pause needs.
type Pauser interface {
	Pause(ctx context.Context, d time.Duration) error
}

// Pause reports a throttled answer to l with its Retry-After d (0 lets
// the limiter pick its backoff); the limiter decides whether every worker
// slows down (throttle.Guard does so only when the 429s are dense). A
// failure is logged as "<vendor>: pausing the limiter failed".
func Pause(ctx context.Context, l Pauser, log *slog.Logger, vendor, op string, d time.Duration) {
	if err := l.Pause(ctx, d); err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, vendor+": pausing the limiter failed", slog.String("op", op), slog.String("error", err.Error()))
	}
}

// TransportError classifies err from http.Client.Do: the context's error
// (wrapped with op) when ctx is done, else a Retryable *connector.Error
// (timeouts, resets, DNS). The URL of a *url.Error is dropped, since a
// query may carry a learner's values; route names the request instead.
func TransportError(ctx context.Context, op, method, route string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &connector.Error{Op: op, Retryable: true, Err: fmt.Errorf("%s %s: %w", method, route, err)}
}

// ReadBody reads res's whole body, at most max bytes: a failed read is
// Retryable (or the context's error when ctx is done), a longer body a
// permanent *connector.Error. It does not close the body.
func ReadBody(ctx context.Context, op string, res *http.Response, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return nil, &connector.Error{Op: op, Status: res.StatusCode, Retryable: true, Err: fmt.Errorf("read response: %w", err)}
	}
	if int64(len(data)) > max {
		return nil, &connector.Error{Op: op, Status: res.StatusCode, Err: fmt.Errorf("response larger than %d bytes", max)}
	}
	return data, nil
}

// Decode decodes a 2xx JSON body into out (numbers as json.Number); an
// empty body or a nil out is not an error, a bad body is a permanent
// *connector.Error.
func Decode(op string, status int, body []byte, out any) error {
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return &connector.Error{Op: op, Status: status, Err: fmt.Errorf("decode response: %w", err)}
	}
	return nil
}

// Text renders a decoded JSON value as the text learnerlink compares and
// stores: strings as they are, numbers and booleans in their JSON form,
// null as "", anything else as compact JSON.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Loopback reports whether host is "localhost" (any case) or a loopback
// IP: the only hosts a connector may reach over plain http.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BaseURL checks raw, a connector's API base: absolute, https (http only
// for Loopback hosts), without credentials, a query, a fragment or (path
// false) a path. It returns it without a trailing slash; errors start
// with vendor.
func BaseURL(vendor, raw string, path bool) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%s: BaseURL %q is not an absolute URL", vendor, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || (!path && u.Path != "") {
		what := "scheme, host and path"
		if !path {
			what = "scheme and host"
		}
		return "", fmt.Errorf("%s: BaseURL %q must be just %s", vendor, raw, what)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && Loopback(u.Hostname()):
	default:
		return "", fmt.Errorf("%s: BaseURL %q must use https (http only for loopback)", vendor, raw)
	}
	return u.String(), nil
}

// NewClient returns the connectors' default client: bounded TLS handshake,
// response-header and overall timeouts, 16 idle connections per host.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr, Timeout: 45 * time.Second}
}

// Warned logs each name once per connector (e.g. Fields keys the vendor
// has no place for). The zero value is ready; it is safe for concurrent
// use.
type Warned struct {
	mu   sync.Mutex
	seen map[string]bool
}

// Log logs msg as a warning with the names not logged before, if any.
func (w *Warned) Log(ctx context.Context, log *slog.Logger, msg string, names []string) {
	w.mu.Lock()
	var fresh []string
	for _, n := range names {
		if !w.seen[n] {
			if w.seen == nil {
				w.seen = map[string]bool{}
			}
			w.seen[n] = true
			fresh = append(fresh, n)
		}
	}
	w.mu.Unlock()
	if len(fresh) > 0 {
		log.LogAttrs(ctx, slog.LevelWarn, msg, slog.Any("fields", fresh))
	}
}
