package allinone_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
	"github.com/learnerlink/learnerlink/shared/reconcile"
)

// TestReconcileCoversEveryTarget: the admin API's reconciliation compares
// every configured target, not only the first.
func TestReconcileCoversEveryTarget(t *testing.T) {
	lms, err := scimoutsim.Start(t.TempDir(), scimoutsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lms.Close() })
	cfg, err := json.Marshal(map[string]any{"targets": []map[string]any{
		{"name": "sandbox", "type": "sandbox"},
		{"name": "lms", "type": "scim", "url": lms.URL, "profile": "generic", "rateLimit": 100,
			"credentials": map[string]string{"tokenEnv": "T_LMS_TOKEN"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "learnerlink.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, filepath.Join(dir, "data"), io.Discard, map[string]string{
		"LEARNERLINK_CONFIG": path, "LEARNERLINK_SCIM_TOKEN": "test-token-0123456789", "T_LMS_TOKEN": lms.Token,
	})
	createUser(t, r, "ada@example.com")

	var rep reconcile.Report
	mustJSON(t, http.StatusOK, "POST", r.URL()+"/admin/reconcile?dryRun=true", r.Token(), "", &rep)
	var names []string
	for _, tr := range rep.Targets {
		names = append(names, tr.Target)
		if !tr.Complete || !tr.DryRun {
			t.Errorf("%s: %+v", tr.Target, tr)
		}
	}
	if !slices.Equal(names, []string{"sandbox", "lms"}) || !rep.Complete || !rep.DryRun {
		t.Fatalf("reconciled %v; report %+v", names, rep)
	}
}
