package scimtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Request sends one SCIM request with hc, as an identity provider does
// (bearer token, SCIM media types, body as JSON when not nil), fails the
// test unless the answer has status want, and returns the decoded body
// (nil when empty). The request lives as long as the test.
func Request(t *testing.T, hc *http.Client, method, rawURL, bearer string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, rawURL, res.StatusCode, want, raw)
	}
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, rawURL, err)
		}
	}
	return out
}
