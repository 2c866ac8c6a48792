package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: any file either fails to load, or gives a valid config that
// plans deterministically without panicking.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"enrollment": {"onboarding": [{"kind": "course", "id": "c"}], "rules": [
		{"name": "a", "when": {"attribute": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "equals": "Sales"}, "enroll": [{"kind": "course", "id": "x"}]},
		{"name": "b", "when": {"any": [{"group": "Okta Admins"}, {"all": [{"attribute": "emails[type eq \"work\"].value", "in": ["a", "b"]}]}]}, "enroll": [{"kind": "curriculum", "id": "y"}]}]}}`))
	f.Add([]byte(`{"enrollment": {"rules": [{"name": "x", "when": {}, "enroll": []}]}}`))
	if b, err := os.ReadFile(filepath.Join("..", "..", "infra", "config", "learnerlink.example.json")); err == nil {
		f.Add(b)
	}
	doc := user(f, true, "Sales", "Manager")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			return
		}
		groups := []string{"Okta Admins", "People Managers"}
		plan := c.Plan(doc, groups, nil)
		applied := make([]string, 0, len(plan))
		for _, a := range plan {
			applied = append(applied, a.Rule)
		}
		next := c.StillMatching(doc, groups, applied)
		if again := c.Plan(doc, groups, next); len(again) != 0 {
			t.Fatalf("rules fired twice: %+v", again)
		}
	})
}

func BenchmarkPlan(b *testing.B) {
	c := testConfig()
	doc := user(b, true, "Marketing", "Manager")
	groups := []string{"Everyone", "People Managers", "Okta Admins"}
	applied := []string{Onboarding}
	for b.Loop() {
		actions := c.Plan(doc, groups, applied)
		_ = c.StillMatching(doc, groups, applied)
		if len(actions) == 0 {
			b.Fatal("no actions")
		}
	}
}
