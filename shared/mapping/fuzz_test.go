package mapping

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/learnerlink/learnerlink/shared/store"
)

// FuzzExpression: an expression either fails validation, or evaluates
// without error on a realistic user.
func FuzzExpression(f *testing.F) {
	for _, src := range Default().Fields {
		for _, s := range src {
			f.Add(s)
		}
	}
	for _, s := range []string{"=", "=Sales", "externalIdOf(id)", "externalIdOf(", `emails[type eq "work"]`,
		CustomURN + ":region", "urn:x:y", "name.givenName.x", "a[b eq 1].c", `emails[not (type eq "work")].value`,
		`addresses[type eq "work" and (country eq "US" or country pr)].locality`, " userName ", "urn:ietf:params:scim:schemas:core:2.0:User:userName"} {
		f.Add(s)
	}
	user := identity(f, oktaUser)
	f.Fuzz(func(t *testing.T, s string) {
		c := Default()
		c.Fields["customFields.string9"] = Source{s}
		c.Lookup = lookupOf(boss())
		if err := c.Validate(); err != nil {
			return
		}
		if _, _, err := c.Learner(user, []store.Member{{GroupName: "Sales"}}); err != nil {
			t.Fatalf("valid expression %q failed: %v", s, err)
		}
	})
}

// FuzzLoad: any file either fails to load or gives a valid config whose
// Learner does not panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"mapping": {"fields": {"jobTitle": "title", "email": ["emails[type eq \"work\"].value", "=x"]}}}`))
	f.Add([]byte(`{"mapping": {"fields": {"customFields.string1": "", "userName": "=u"}, "passCustomAttributes": true, "groups": {"map": {"a": "b"}, "onlyMapped": true}}}`))
	f.Add([]byte(`{"mapping": {"_comment": 1, "fields": {"x": null}}}`))
	f.Add([]byte(`{"mapping": null}`))
	if b, err := os.ReadFile(filepath.Join("..", "..", "infra", "config", "learnerlink.example.json")); err == nil {
		f.Add(b)
	}
	user := identity(f, oktaUser)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, nil)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned an invalid config: %v", err)
		}
		_, _, _ = c.Learner(user, []store.Member{{GroupName: "Sales"}, {GroupName: "Everyone"}})
	})
}

func BenchmarkLearner(b *testing.B) {
	c := Default()
	c.Lookup = lookupOf(boss())
	user := identity(b, oktaUser)
	groups := []store.Member{{GroupName: "Sales"}, {GroupName: "Everyone"}}
	for b.Loop() {
		l, g, err := c.Learner(user, groups)
		if err != nil {
			b.Fatal(err)
		}
		_ = Hash(l, g)
	}
}
