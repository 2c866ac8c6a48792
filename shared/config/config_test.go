package config

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvDefaults(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:8080" || s.DataDir != "./.learnerlink" || s.Target != "sandbox" || s.Workers != 8 ||
		s.Absorb.RateLimit != 10 || s.Reconcile.MaxDeactivateShare != 0.1 || !s.Reconcile.CreateIdentities || s.HookAuthHeader != "Authorization" {
		t.Errorf("defaults: %+v", s)
	}
}

func TestFromEnvErrors(t *testing.T) {
	for _, tc := range []struct{ name, key, value, want string }{
		{"workers", "LEARNERLINK_WORKERS", "0", "LEARNERLINK_WORKERS"},
		{"workers text", "LEARNERLINK_WORKERS", "many", "LEARNERLINK_WORKERS"},
		{"rate", "ABSORB_RATE_LIMIT", "500", "ABSORB_RATE_LIMIT"},
		{"target", "LEARNERLINK_TARGET", "moodle", "LEARNERLINK_TARGET"},
		{"level", "LEARNERLINK_LOG_LEVEL", "loud", "LEARNERLINK_LOG_LEVEL"},
		{"threshold", "LEARNERLINK_PENDING_THRESHOLD", "5s", "LEARNERLINK_PENDING_THRESHOLD"},
		{"share", "LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE", "2", "MAX_DEACTIVATE_SHARE"},
		{"dry run", "LEARNERLINK_RECONCILE_DRY_RUN", "maybe", "DRY_RUN"},
		{"app without org", "OKTA_APP_ID", "0oa1", "OKTA_APP_ID"},
		{"missing config file", "LEARNERLINK_CONFIG", "/nonexistent/nope.json", "nope.json"},
		{"bad inline config", "LEARNERLINK_CONFIG_JSON", `{"targets": 3}`, "targets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{tc.key: tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

type fakeSecrets struct {
	raw string
	err error
}

func (f fakeSecrets) SecretString(context.Context, string) (string, error) { return f.raw, f.err }

func TestLoadSecrets(t *testing.T) {
	s, _ := FromEnv(env(map[string]string{"LEARNERLINK_SECRET_ID": "arn:x", "LEARNERLINK_SCIM_TOKEN": "from-env"}))
	err := s.LoadSecrets(context.Background(), fakeSecrets{raw: `{"scimToken":"from-secret","hookSecret":"h","absorbPassword":"p","oktaApiToken":"o"}`})
	if err != nil {
		t.Fatal(err)
	}
	if s.SCIMToken != "from-env" || s.HookSecret != "h" || s.Absorb.Password != "p" || s.Okta.APIToken != "o" {
		t.Errorf("secrets not merged: token %q hook %q absorb %q okta %q", s.SCIMToken, s.HookSecret, s.Absorb.Password, s.Okta.APIToken)
	}
	err = s.LoadSecrets(context.Background(), fakeSecrets{raw: `not json {"scimToken":"leak"}`})
	if err == nil || strings.Contains(err.Error(), "leak") {
		t.Errorf("bad secret: err = %v (must fail without echoing the content)", err)
	}
	if err := s.LoadSecrets(context.Background(), fakeSecrets{err: errors.New("denied")}); err == nil {
		t.Error("a failed read must fail")
	}
}

// TestREADMEListsEveryVariable keeps the README's configuration table in
// step with the code.
func TestREADMEListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(b), "`"+v.Name+"`") {
			t.Errorf("README.md does not document %s", v.Name)
		}
	}
}

func TestInlineConfig(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"LEARNERLINK_CONFIG_JSON": `{"mapping": {}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Config) != `{"mapping": {}}` || s.ConfigSource != "LEARNERLINK_CONFIG_JSON" {
		t.Errorf("config %q from %q", s.Config, s.ConfigSource)
	}
	if _, err := FromEnv(env(map[string]string{"LEARNERLINK_CONFIG_JSON": "{}", "LEARNERLINK_CONFIG": "x.json"})); err == nil {
		t.Error("both set must be refused")
	}
}
