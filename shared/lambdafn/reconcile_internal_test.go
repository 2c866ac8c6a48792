package lambdafn

import (
	"testing"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/worker"
)

func TestReconcileTargetsPassesEveryTarget(t *testing.T) {
	tests := []struct {
		name    string
		s       config.Settings
		targets []string
		want    map[string]string // target → groups field
	}{
		{"legacy absorb", config.Settings{Target: "absorb", Absorb: config.Absorb{GroupsField: "customFields.string7"}},
			[]string{"absorb"}, map[string]string{"absorb": "customFields.string7"}},
		{"legacy sandbox", config.Settings{Target: "sandbox"}, []string{"sandbox"}, map[string]string{"sandbox": ""}},
		{"targets section", config.Settings{Targets: []config.TargetSpec{
			{Name: "eu", Type: "absorb"}, {Name: "us", Type: "absorb", GroupsField: "customFields.string9"},
			{Name: "lms", Type: "scim"}, {Name: "ol", Type: "onelogin"}}},
			[]string{"eu", "us", "lms", "ol"},
			map[string]string{"eu": absorbGroupsField, "us": "customFields.string9", "lms": "", "ol": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tgts []worker.Target
			for _, n := range tt.targets {
				tgts = append(tgts, worker.Target{Name: n})
			}
			got := reconcileTargets(tt.s, tgts)
			if len(got) != len(tt.targets) {
				t.Fatalf("%d targets, want %d", len(got), len(tt.targets))
			}
			for i, rt := range got {
				if rt.Name != tt.targets[i] || rt.GroupsField != tt.want[rt.Name] {
					t.Errorf("target %d = %s with groups field %q, want %s with %q", i, rt.Name, rt.GroupsField, tt.targets[i], tt.want[tt.targets[i]])
				}
			}
		})
	}
}
