package okta

import "testing"

func TestNextCursor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"self only", []string{`<https://a.okta.com/api/v1/apps/x/users?limit=2>; rel="self"`}, ""},
		{"separate headers", []string{
			`<https://a.okta.com/api/v1/apps/x/users?limit=2>; rel="self"`,
			`<https://a.okta.com/api/v1/apps/x/users?after=00u2&limit=2>; rel="next"`,
		}, "00u2"},
		{"one header, comma separated", []string{
			`<https://a.okta.com/api/v1/groups/g/users?limit=2>; rel="self", <https://a.okta.com/api/v1/groups/g/users?after=00u9%2Bx&limit=2>; rel="next"`,
		}, "00u9+x"},
		{"unquoted rel, other params", []string{`<https://a/x?after=c1>; type="json"; rel=next`}, "c1"},
		{"rel list", []string{`<https://a/x?after=c2>; rel="prev next"`}, "c2"},
		{"malformed", []string{`https://a/x?after=c3; rel="next"`, `<https://a/x?after=c4`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextCursor(tt.values); got != tt.want {
				t.Fatalf("nextCursor = %q, want %q", got, tt.want)
			}
		})
	}
}
