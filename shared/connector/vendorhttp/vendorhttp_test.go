package vendorhttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/retry"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		max     int
		want    string
	}{
		{"The username 'jdoe@example.com' is already in use.", nil, 600, "The username '…' is already in use."},
		{`Value "x" is bad`, nil, 600, `Value "…" is bad`},
		{"jane.doe@example.com is taken by JANE.DOE@EXAMPLE.COM", []string{"jane.doe@example.com"}, 600, "[redacted] is taken by [redacted]"},
		{"no secrets here", []string{"", "x"}, 600, "no secrets here"},
		{"unterminated 'quote runs on", nil, 600, "unterminated '…"},
		{"line1\nline2\tend\x7f", nil, 600, "line1 line2 end"},
		{"  padded  ", nil, 600, "padded"},
		{"key abcdef and abc", []string{"abc", "abcdef"}, 600, "key [redacted] and [redacted]"}, // longest first
		{"İstanbul ok", []string{"istanbul"}, 600, "İstanbul ok"},                               // case mapping changes length: exact only
		{strings.Repeat("x", 400), nil, 300, strings.Repeat("x", 300) + "…"},
		{"aé", nil, 2, "a…"}, // cut on a rune boundary
		{strings.Repeat("y", 50), nil, 0, strings.Repeat("y", 50)},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.secrets, tt.max); got != tt.want {
			t.Errorf("Redact(%q, %q, %d) = %q, want %q", tt.in, tt.secrets, tt.max, got, tt.want)
		}
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("user 'a@b.c' exists", "a@b.c", 40)
	f.Add("İ\n\"x", "İİ", 3)
	f.Fuzz(func(t *testing.T, s, secret string, max int) {
		max = max%1000 + 1
		if max < 1 {
			max += 1000
		}
		out := Redact(s, []string{secret}, max)
		if len(out) > max+len("…") {
			t.Fatalf("len %d > cap %d", len(out), max)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of valid input: %q", out)
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("control character left in %q", out)
		}
		// Nothing inside quotes survives.
		var quote rune
		for _, r := range out {
			switch {
			case quote != 0 && r == quote:
				quote = 0
			case quote != 0 && r != '…':
				t.Fatalf("quoted text left in %q", out)
			case quote == 0 && (r == '\'' || r == '"'):
				quote = r
			}
		}
		// A plain value (no quotes, brackets or spaces that the rewriting
		// itself could produce) never survives.
		plain := !strings.ContainsFunc(secret, func(r rune) bool {
			return !(r == '@' || r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		})
		whole := strings.ReplaceAll(Redact(s, []string{secret}, 0), "[redacted]", "\x00")
		if len(secret) >= 2 && plain && strings.Contains(whole, secret) {
			t.Fatalf("secret %q left in %q", secret, out)
		}
	})
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		retryable  bool
		wait       time.Duration
		notFound   bool
		conflict   bool
	}{
		{http.StatusTooManyRequests, "7", true, 7 * time.Second, false, false},
		{http.StatusServiceUnavailable, now.Add(time.Minute).Format(http.TimeFormat), true, time.Minute, false, false},
		{http.StatusTooManyRequests, "soon", true, 0, false, false},
		{http.StatusTooManyRequests, "-3", true, 0, false, false},
		{http.StatusTooManyRequests, "99999999", true, retry.MaxRetryAfter, false, false},
		{http.StatusInternalServerError, "7", true, 0, false, false},
		{http.StatusBadGateway, "", true, 0, false, false},
		{http.StatusUnauthorized, "", true, 0, false, false},
		{http.StatusRequestTimeout, "", true, 0, false, false},
		{http.StatusNotFound, "", false, 0, true, false},
		{http.StatusConflict, "", false, 0, false, true},
		{http.StatusBadRequest, "", false, 0, false, false},
		{http.StatusForbidden, "", false, 0, false, false},
		{http.StatusUnprocessableEntity, "", false, 0, false, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		e := Classify("x.op", tt.status, h, now)
		if e.Op != "x.op" || e.Status != tt.status || e.Retryable != tt.retryable || e.RetryAfter != tt.wait ||
			e.NotFound != tt.notFound || e.Conflict != tt.conflict {
			t.Errorf("Classify(%d, %q) = %+v", tt.status, tt.retryAfter, e)
		}
		if Throttled(tt.status) != (tt.status == 429 || tt.status == 503) {
			t.Errorf("Throttled(%d) wrong", tt.status)
		}
	}
}

type pauser struct {
	got []time.Duration
	err error
}

func (p *pauser) Pause(_ context.Context, d time.Duration) error {
	p.got = append(p.got, d)
	return p.err
}

func TestPause(t *testing.T) {
	p := &pauser{err: errors.New("down")}
	Pause(t.Context(), p, discard(), "v", "v.op", time.Second) // a failure is only logged
	if len(p.got) != 1 || p.got[0] != time.Second {
		t.Errorf("paused %v", p.got)
	}
}

func TestTransportError(t *testing.T) {
	err := TransportError(t.Context(), "v.get", "GET", "/users/{id}", &url.Error{Op: "Get", URL: "https://h/users?filter=jane@example.com", Err: io.ErrUnexpectedEOF})
	var ce *connector.Error
	if !errors.As(err, &ce) || !ce.Retryable || strings.Contains(err.Error(), "jane") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = TransportError(ctx, "v.get", "GET", "/users", io.ErrUnexpectedEOF)
	if !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("canceled: err = %v", err)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestReadBody(t *testing.T) {
	res := func(body io.Reader) *http.Response {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(body)}
	}
	if b, err := ReadBody(t.Context(), "v", res(strings.NewReader("12345")), 5); err != nil || string(b) != "12345" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	var ce *connector.Error
	if _, err := ReadBody(t.Context(), "v", res(strings.NewReader("123456")), 5); !errors.As(err, &ce) || ce.Retryable || ce.Status != 200 {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadBody(t.Context(), "v", res(failReader{}), 5); !errors.As(err, &ce) || !ce.Retryable {
		t.Errorf("failed read: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ReadBody(ctx, "v", res(failReader{}), 5); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled read: %v", err)
	}
}

func TestDecode(t *testing.T) {
	var out map[string]any
	if err := Decode("v", 200, []byte(`{"n": 12345678901234567890}`), &out); err != nil {
		t.Fatal(err)
	}
	if _, ok := out["n"].(json.Number); !ok {
		t.Errorf("number decoded as %T", out["n"])
	}
	if err := Decode("v", 204, []byte("  "), &out); err != nil {
		t.Errorf("empty body: %v", err)
	}
	if err := Decode("v", 200, []byte("{"), nil); err != nil {
		t.Errorf("nil out: %v", err)
	}
	var ce *connector.Error
	if err := Decode("v", 200, []byte("{"), &out); !errors.As(err, &ce) || ce.Retryable {
		t.Errorf("bad body: %v", err)
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""}, {"s", "s"}, {json.Number("12"), "12"}, {true, "true"}, {1.5, "1.5"},
		{[]any{"a"}, `["a"]`}, {map[string]any{"k": 1}, `{"k":1}`},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "::1": true, "127.8.9.1": true,
		"example.com": false, "10.0.0.1": false, "": false, "localhost.example.com": false,
	} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v", host, got)
		}
	}
	if c := NewClient(); c.Timeout == 0 || c.Transport == nil {
		t.Errorf("NewClient: %+v", c)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
