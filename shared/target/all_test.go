package target_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

func TestBuildAll(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	if err := os.WriteFile(cfg, []byte(`{
		"mapping": {"fields": {"customFields.string3": ""}},
		"targets": [
			{"name": "absorb", "type": "absorb", "url": "http://127.0.0.1:1", "rateLimit": 5,
			 "credentials": {"usernameEnv": "AU", "passwordEnv": "AP", "privateKeySecret": "absorbKey"}},
			{"name": "lessonly", "type": "scim", "url": "http://127.0.0.1:2/scim/v2", "profile": "lessonly",
			 "credentials": {"tokenEnv": "LESSONLY_TOKEN"},
			 "mapping": {"fields": {"jobTitle": ""}},
			 "enrollment": {"onboarding": [{"kind": "course", "id": "c1"}]}},
			{"name": "onelogin", "type": "onelogin", "url": "http://127.0.0.1:3", "roleMap": {"Sales": 7},
			 "credentials": {"clientIdEnv": "OL_ID", "clientSecretEnv": "OL_SECRET"}},
			{"name": "box", "type": "sandbox"}
		]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lms, err := sandbox.Open("")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LEARNERLINK_CONFIG": cfg, "AU": "u", "AP": "p", "LESSONLY_TOKEN": "tok", "OL_ID": "id", "OL_SECRET": "sec"}
	getenv := func(k string) string { return env[k] }

	t.Run("targets section", func(t *testing.T) {
		s, err := config.FromEnv(getenv)
		if err != nil {
			t.Fatal(err)
		}
		s.SecretValues = map[string]string{"absorbKey": "k"}
		var asked []string
		rates := map[string]float64{}
		ts, err := target.BuildAll(s, func(name string, rate float64) target.Shared {
			asked = append(asked, name)
			rates[name] = rate
			return target.Shared{Limiter: target.NewLocalLimiter(rate), Tokens: tokencache.NewLocal(), Sandbox: lms}
		}, getenv, quiet())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"absorb", "lessonly", "onelogin", "box"}
		if got := target.Names(ts); !slices.Equal(got, want) || !slices.Equal(asked, want) {
			t.Fatalf("targets %v, factory asked for %v; want %v", got, asked, want)
		}
		if rates["absorb"] != 5 || rates["lessonly"] != config.DefaultTargetRate {
			t.Errorf("rates %v", rates)
		}
		if _, ok := ts[0].Conn.(*absorb.Connector); !ok {
			t.Errorf("absorb connector %T", ts[0].Conn)
		}
		if _, ok := ts[2].Conn.(*onelogin.Connector); !ok {
			t.Errorf("onelogin connector %T", ts[2].Conn)
		}
		// Own mapping and rules for lessonly, the top-level ones elsewhere.
		if _, ok := ts[1].Mapping.Fields["jobTitle"]; ok {
			t.Errorf("lessonly maps jobTitle despite its own mapping")
		}
		if _, ok := ts[0].Mapping.Fields["jobTitle"]; !ok {
			t.Errorf("absorb lost the default jobTitle")
		}
		if _, ok := ts[0].Mapping.Fields["customFields.string3"]; ok {
			t.Errorf("absorb ignores the top-level mapping")
		}
		if len(ts[1].Rules.Onboarding) != 1 || len(ts[0].Rules.Onboarding) != 0 {
			t.Errorf("rules: lessonly %+v, absorb %+v", ts[1].Rules, ts[0].Rules)
		}
		// Only OneLogin stamps its writes with the origin.
		for i, tg := range ts {
			if (tg.Context != nil) != (i == 2) {
				t.Errorf("%s: Context set = %v", tg.Name, tg.Context != nil)
			}
		}
		ctx := ts[2].Context(context.Background(), &store.Identity{ID: "i1", Version: 4})
		if ctx == context.Background() {
			t.Errorf("onelogin Context returned the context unchanged")
		}
	})

	t.Run("missing credential names target and key", func(t *testing.T) {
		s, err := config.FromEnv(getenv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = target.BuildAll(s, func(string, float64) target.Shared {
			return target.Shared{Limiter: target.NewLocalLimiter(1), Tokens: tokencache.NewLocal(), Sandbox: lms}
		}, getenv, quiet())
		if err == nil || !strings.Contains(err.Error(), `target "absorb"`) || !strings.Contains(err.Error(), "privateKey") {
			t.Fatalf("error %v, want the absorb target's privateKey named", err)
		}
	})

	t.Run("no targets section is the single target", func(t *testing.T) {
		s := config.Settings{Target: "sandbox"}
		var asked []string
		ts, err := target.BuildAll(s, func(name string, rate float64) target.Shared {
			asked = append(asked, name)
			return target.Shared{Sandbox: lms}
		}, getenv, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 1 || ts[0].Name != "sandbox" || !slices.Equal(asked, []string{"sandbox"}) || ts[0].Context != nil {
			t.Fatalf("targets %+v, asked %v", ts, asked)
		}
	})
}
