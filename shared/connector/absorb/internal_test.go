package absorb

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"-3", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"The username 'jdoe@example.com' is already in use.", nil, "The username '…' is already in use."},
		{`Value "x" is bad`, nil, `Value "…" is bad`},
		{"jane.doe@example.com is taken by JANE.DOE@EXAMPLE.COM", []string{"jane.doe@example.com"}, "[redacted] is taken by [redacted]"},
		{"no secrets here", []string{"", "x"}, "no secrets here"},
		{"unterminated 'quote runs on", nil, "unterminated '…"},
	}
	for _, tt := range tests {
		if got := redact(tt.in, tt.secrets); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := redact(strings.Repeat("a", 2000), nil); len(got) > 610 {
		t.Errorf("redact did not bound the length: %d", len(got))
	}
}

func TestDuplicate(t *testing.T) {
	tests := []struct {
		ae   apiError
		want bool
	}{
		{apiError{Validations: []string{"Username is already in use."}}, true},
		{apiError{Message: "A user with this username already exists"}, true},
		{apiError{Validations: []string{"External ID is already in use."}}, true},
		{apiError{Validations: []string{"The FirstName field is required."}}, false},
		{apiError{Validations: []string{"The username field is required."}}, false},
	}
	for _, tt := range tests {
		if got := duplicate(tt.ae); got != tt.want {
			t.Errorf("duplicate(%+v) = %v, want %v", tt.ae, got, tt.want)
		}
	}
}

func TestGroupsValue(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{" ", ""}, ""},
		{[]string{"Sales"}, "|Sales|"},
		{[]string{"Sales", "Eng", "Sales", " Eng "}, "|Eng|Sales|"},
		{[]string{"A|B"}, "|A/B|"},
	}
	for _, tt := range tests {
		if got := groupsValue(tt.in); got != tt.want {
			t.Errorf("groupsValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCustomFieldKind(t *testing.T) {
	tests := []struct {
		key, kind string
		ok        bool
	}{
		{"string1", "string", true},
		{"string30", "string", true},
		{"string31", "", false},
		{"string01", "", false},
		{"decimal5", "decimal", true},
		{"decimal6", "", false},
		{"datetime2", "datetime", true},
		{"bool1", "bool", true},
		{"color1", "", false},
		{"string", "", false},
	}
	for _, tt := range tests {
		kind, ok := customFieldKind(tt.key)
		if kind != tt.kind || ok != tt.ok {
			t.Errorf("customFieldKind(%q) = %q, %v", tt.key, kind, ok)
		}
	}
}

func TestPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := password()
		if err != nil {
			t.Fatal(err)
		}
		var up, low, dig, sym bool
		for _, r := range p {
			switch {
			case unicode.IsUpper(r):
				up = true
			case unicode.IsLower(r):
				low = true
			case unicode.IsDigit(r):
				dig = true
			default:
				sym = true
			}
		}
		if len(p) != 24 || !up || !low || !dig || !sym || seen[p] {
			t.Fatalf("weak or repeated password of length %d", len(p))
		}
		seen[p] = true
	}
}
