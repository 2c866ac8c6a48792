package scimout

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"userName Ann@Example.com is taken", []string{"ann@example.com"}, "userName [redacted] is taken"},
		{`value "secret" rejected`, nil, `value "…" rejected`},
		{"line1\nline2", nil, "line1 line2"},
		{"ab", []string{"a"}, "ab"}, // one-character values are not worth hiding
		{strings.Repeat("x", 400), nil, strings.Repeat("x", maxDetail) + "…"},
	}
	for _, tt := range tests {
		if got := redact(tt.in, tt.secrets); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqFilter(t *testing.T) {
	tests := []struct{ path, value, want string }{
		{"userName", "plain", `userName eq "plain"`},
		{"userName", `a"b`, `userName eq "a\"b"`},
		{"userName", `a\b`, `userName eq "a\\b"`},
		{"externalId", "<tag>&", `externalId eq "<tag>&"`},
		{"userName", "tab\there", `userName eq "tab\there"`},
	}
	for _, tt := range tests {
		if got := eqFilter(tt.path, tt.value); got != tt.want {
			t.Errorf("eqFilter(%q) = %s, want %s", tt.value, got, tt.want)
		}
	}
}
