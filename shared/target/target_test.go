package target_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{
		"mapping": {"fields": {"customFields.string3": ""}},
		"enrollment": {"onboarding": [{"kind": "course", "id": "c1"}]}
	}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"enrollment": {"onboarding": [{"kind": "webinar", "id": "c1"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	goodDoc, _ := os.ReadFile(good)
	badDoc, _ := os.ReadFile(bad)
	lms, err := sandbox.Open("")
	if err != nil {
		t.Fatal(err)
	}
	absorbOK := config.Absorb{URL: "http://127.0.0.1:1", Username: "u", Password: "p", PrivateKey: "k", GroupsField: "customFields.string30"}
	shared := target.Shared{Limiter: target.NewLocalLimiter(10), Tokens: tokencache.NewLocal(), Sandbox: lms}
	tests := []struct {
		name    string
		s       config.Settings
		sh      target.Shared
		wantErr string
		check   func(t *testing.T, tgt any)
	}{
		{"sandbox", config.Settings{Target: "sandbox", Config: goodDoc, ConfigSource: good}, shared, "", func(t *testing.T, c any) {
			if c != connector.Connector(lms) {
				t.Errorf("connector %T, want the sandbox", c)
			}
		}},
		{"sandbox outside the local runner", config.Settings{Target: "sandbox"}, target.Shared{}, "only in the local runner", nil},
		{"absorb", config.Settings{Target: "absorb", Absorb: absorbOK}, shared, "", func(t *testing.T, c any) {
			if _, ok := c.(*absorb.Connector); !ok {
				t.Errorf("connector %T, want absorb", c)
			}
		}},
		{"absorb without credentials", config.Settings{Target: "absorb", Absorb: config.Absorb{URL: "https://rest.myabsorb.com"}}, shared, "ABSORB_USERNAME", nil},
		{"absorb over plain http", config.Settings{Target: "absorb", Absorb: config.Absorb{URL: "http://rest.myabsorb.com", Username: "u", Password: "p", PrivateKey: "k"}}, shared, "https", nil},
		{"unknown target", config.Settings{Target: "moodle"}, shared, "unknown target", nil},
		{"bad rules", config.Settings{Target: "sandbox", Config: badDoc, ConfigSource: bad}, shared, "webinar", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt, err := target.Build(tc.s, tc.sh, func(string) string { return "" }, quiet())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Build error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tgt.Name != tc.s.Target || len(tgt.AdoptBy) == 0 || tgt.AdoptBy[0] != connector.KeyExternalID {
				t.Errorf("target %+v", tgt)
			}
			tc.check(t, tgt.Conn)
		})
	}
}
