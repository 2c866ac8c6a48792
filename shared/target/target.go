// Package target builds the configured target (connector, mapping, rules)
// from settings, for both the local runner and the Lambda worker; they
// differ only in how the rate limit and the token cache are shared.
package target

import (
	"fmt"
	"log/slog"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Shared is what must be common to every worker talking to one target: in
// one process, in-process objects; in AWS, items in the DynamoDB table.
type Shared struct {
	Limiter absorb.Limiter
	Tokens  absorb.TokenCache
	// Sandbox is the built-in LMS, used when the target is "sandbox".
	Sandbox connector.Connector
}

// Build returns the one target the settings name.
func Build(s config.Settings, sh Shared, getenv func(string) string, log *slog.Logger) (worker.Target, error) {
	m, err := mapping.Parse(s.Config, s.ConfigSource, getenv)
	if err != nil {
		return worker.Target{}, fmt.Errorf("target: %w", err)
	}
	r, err := rules.Parse(s.Config, s.ConfigSource)
	if err != nil {
		return worker.Target{}, fmt.Errorf("target: %w", err)
	}
	t := worker.Target{Name: s.Target, Mapping: m, Rules: r,
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	switch s.Target {
	case "sandbox":
		if sh.Sandbox == nil {
			return worker.Target{}, fmt.Errorf("target: the sandbox LMS exists only in the local runner")
		}
		t.Conn = sh.Sandbox
	case "absorb":
		a := s.Absorb
		if a.URL == "" || a.Username == "" || a.Password == "" || a.PrivateKey == "" {
			return worker.Target{}, fmt.Errorf("target: absorb needs ABSORB_API_URL, ABSORB_USERNAME, ABSORB_PASSWORD and ABSORB_PRIVATE_KEY")
		}
		c, err := absorb.New(absorb.Config{
			BaseURL: a.URL, Username: a.Username, Password: a.Password, PrivateKey: a.PrivateKey,
			Limiter: sh.Limiter, Tokens: sh.Tokens,
			// Whatever the limiter, no 1-second window at Absorb sees more
			// than the ceiling from this process (see limits.go).
			HTTPClient:          httpClient(a.RateLimit),
			DefaultDepartmentID: a.DefaultDepartmentID, CreateDepartments: a.CreateDepartments,
			GroupsField: a.GroupsField, Logger: log,
		})
		if err != nil {
			return worker.Target{}, fmt.Errorf("target: %w", err)
		}
		t.Conn = c
	default:
		return worker.Target{}, fmt.Errorf("target: unknown target %q", s.Target)
	}
	return t, nil
}
