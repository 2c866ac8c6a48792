package allinone_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hookCall sends one request to the runner's Okta Event Hooks route with
// the shared secret in the Authorization header (as Okta does).
func hookCall(t *testing.T, method, url, secret, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", secret)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func delivery(uuid, eventType, oktaID string) string {
	return fmt.Sprintf(`{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","eventId":"d-%s",
	"data":{"events":[{"uuid":%q,"published":"2026-11-23T10:12:00.000Z","eventType":%q,"version":"0","severity":"INFO",
	"actor":{"id":"00uadmin","type":"User","alternateId":"admin@example.com","displayName":"Admin"},
	"outcome":{"result":"SUCCESS"},"target":[{"id":%q,"type":"User","alternateId":"x","displayName":"X"}]}]}}`, uuid, uuid, eventType, oktaID)
}

// TestHooksThroughLocalRunner: the local runner serves Okta's verification,
// refuses bad auth and malformed bodies without writing, applies a
// deactivation delivered twice exactly once, and the learner follows.
func TestHooksThroughLocalRunner(t *testing.T) {
	const secret = "hook-secret-0123456789"
	r := start(t, t.TempDir(), io.Discard, map[string]string{"LEARNERLINK_HOOK_SECRET": secret})
	url := r.URL() + "/okta/hooks"

	status, body := hookCall(t, http.MethodGet, url, secret, "", map[string]string{"X-Okta-Verification-Challenge": "abc-123"})
	if status != http.StatusOK || !strings.Contains(body, `"verification":"abc-123"`) {
		t.Fatalf("verification: %d %s", status, body)
	}

	id := createUser(t, r, "grace@example.com") // externalId ext-grace@example.com
	waitFor(t, "learner created", func() bool { return hasLearner(learners(t, r), "grace@example.com", true) })
	version := func() string {
		var u struct {
			Meta struct{ Version string } `json:"meta"`
		}
		mustJSON(t, http.StatusOK, http.MethodGet, r.URL()+"/scim/v2/Users/"+id, r.Token(), "", &u)
		return u.Meta.Version
	}
	before := version()

	for _, tc := range []struct {
		name, secret, body string
		want               int
	}{
		{"bad secret", "wrong", delivery("u-1", "user.lifecycle.deactivate", "ext-grace@example.com"), http.StatusUnauthorized},
		{"no secret", "", delivery("u-1", "user.lifecycle.deactivate", "ext-grace@example.com"), http.StatusUnauthorized},
		{"malformed", secret, `{"data":{"events":[{"uuid":`, http.StatusBadRequest},
		{"wrong shape", secret, `{"data":{"events":"nope"}}`, http.StatusBadRequest},
	} {
		if status, _ := hookCall(t, http.MethodPost, url, tc.secret, tc.body, nil); status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.want)
		}
	}
	if v := version(); v != before {
		t.Fatalf("a refused delivery changed the identity: %s → %s", before, v)
	}

	d := delivery("u-2", "user.lifecycle.deactivate", "ext-grace@example.com")
	for i := range 2 { // Okta delivers at least once
		if status, body := hookCall(t, http.MethodPost, url, secret, d, nil); status != http.StatusOK && status != http.StatusNoContent {
			t.Fatalf("delivery %d: %d %s", i, status, body)
		}
	}
	waitFor(t, "learner deactivated by the hook", func() bool { return hasLearner(learners(t, r), "grace@example.com", false) })
	after := version()
	if after == before {
		t.Fatal("the deactivation was not applied")
	}
	// The duplicate was recognised: one more identical delivery changes nothing.
	if status, _ := hookCall(t, http.MethodPost, url, secret, d, nil); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("third delivery: %d", status)
	}
	if v := version(); v != after {
		t.Errorf("a duplicate delivery was applied again: %s → %s", after, v)
	}
}
