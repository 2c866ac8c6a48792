package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTargets(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr []string // every one must appear
		check   func(t *testing.T, ts []TargetSpec)
	}{
		{"no section", `{"mapping": {}}`, nil, func(t *testing.T, ts []TargetSpec) {
			if ts != nil {
				t.Errorf("targets %+v, want nil", ts)
			}
		}},
		{"three targets", `{"targets": [
			{"name": "absorb", "type": "absorb", "url": "https://rest.myabsorb.com", "rateLimit": 5,
			 "credentials": {"usernameEnv": "AU", "passwordEnv": "AP", "privateKeySecret": "absorbKey"}},
			{"_comment": "ok", "name": "lessonly", "type": "scim", "url": "https://api.lessonly.com/scim", "profile": "lessonly",
			 "credentials": {"tokenEnv": "LESSONLY_TOKEN"}, "mapping": {"fields": {"jobTitle": ""}}},
			{"name": "onelogin", "type": "onelogin", "url": "https://acme.onelogin.com", "roleMap": {"Sales": 7},
			 "credentials": {"clientIdEnv": "OL_ID", "clientSecretEnv": "OL_SECRET"}}]}`, nil,
			func(t *testing.T, ts []TargetSpec) {
				if len(ts) != 3 || ts[0].RateLimit != 5 || ts[1].RateLimit != DefaultTargetRate || ts[2].RoleMap["Sales"] != 7 || len(ts[1].Mapping) == 0 {
					t.Errorf("targets %+v", ts)
				}
			}},
		{"empty section", `{"targets": []}`, []string{"no target"}, nil},
		{"only comments", `{"targets": [{"_comment": "x"}]}`, []string{"no target"}, nil},
		{"not an array", `{"targets": {}}`, []string{"array"}, nil},
		{"unknown key", `{"targets": [{"name": "a", "type": "sandbox", "colour": "red"}]}`, []string{"targets[0]", "colour"}, nil},
		{"errors name the target and key", `{"targets": [
			{"name": "l", "type": "scim", "credentials": {"apiKeyEnv": "X"}},
			{"name": "o", "type": "moodle"},
			{"name": "a", "type": "absorb", "url": "https://x", "rateLimit": 500, "roleMap": {"x": 1}}]}`,
			[]string{`target "l": url`, `target "l": profile`, `target "l": credentials.apiKeyEnv`, `target "o": type`, `target "a": rateLimit`, `target "a": roleMap`}, nil},
		{"duplicate name", `{"targets": [{"name": "s", "type": "sandbox"}, {"name": "s", "type": "sandbox"}]}`, []string{`target "s": name: used twice`}, nil},
		{"bad name", `{"targets": [{"name": "a#b", "type": "sandbox"}]}`, []string{`target "a#b": name`}, nil},
		{"no name", `{"targets": [{"type": "sandbox"}]}`, []string{"targets[0]: name"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := LoadTargets([]byte(tc.file), "c.json")
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ts)
		})
	}
}

func TestFromEnvReadsTargets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"targets": [{"name": "x", "type": "nope"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LEARNERLINK_CONFIG": path}
	if _, err := FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), `target "x": type`) {
		t.Fatalf("FromEnv error %v, want the bad target named", err)
	}
}

func TestCredential(t *testing.T) {
	s := Settings{SecretValues: map[string]string{"olSecret": "from-secret"}}
	spec := TargetSpec{Credentials: map[string]string{"clientIdEnv": "OL_ID", "clientSecretSecret": "olSecret", "tokenEnv": "UNSET"}}
	env := map[string]string{"OL_ID": "from-env"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct{ name, want string }{
		{"clientId", "from-env"}, {"clientSecret", "from-secret"}, {"token", ""}, {"password", ""},
	} {
		if got := s.Credential(spec, tc.name, getenv); got != tc.want {
			t.Errorf("Credential(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestExampleConfigTargets(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "infra", "config", "learnerlink.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTargets(data, "example")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, t := range ts {
		names = append(names, t.Name+":"+t.Type)
	}
	if got := strings.Join(names, ","); got != "absorb:absorb,lessonly:scim,onelogin:onelogin" {
		t.Errorf("example targets %s", got)
	}
}
