package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/scimout"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// SharedFactory returns what the workers of one target share: its own
// limiter at ratePerSecond and its own token cache (in AWS, items keyed by
// the target's name in the table).
type SharedFactory func(targetName string, ratePerSecond float64) Shared

// BuildAll returns every configured target: those of the config file's
// "targets" section, or, without one, the single target of
// LEARNERLINK_TARGET and the ABSORB_* settings (exactly as Build).
func BuildAll(s config.Settings, shared SharedFactory, getenv func(string) string, log *slog.Logger) ([]worker.Target, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(s.Targets) == 0 {
		t, err := Build(s, shared(s.Target, s.Absorb.RateLimit), getenv, log)
		if err != nil {
			return nil, err
		}
		return []worker.Target{t}, nil
	}
	out := make([]worker.Target, 0, len(s.Targets))
	var errs []error
	for _, spec := range s.Targets {
		t, err := buildSpec(s, spec, shared(spec.Name, spec.RateLimit), getenv, log.With("target", spec.Name))
		if err != nil {
			errs = append(errs, fmt.Errorf("target %q: %w", spec.Name, err))
			continue
		}
		out = append(out, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Names lists the targets' names, for queue.FanOut.
func Names(ts []worker.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func buildSpec(s config.Settings, spec config.TargetSpec, sh Shared, getenv func(string) string, log *slog.Logger) (worker.Target, error) {
	m, r, err := mappingAndRules(s, spec, getenv)
	if err != nil {
		return worker.Target{}, err
	}
	t := worker.Target{Name: spec.Name, Mapping: m, Rules: r,
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	cred := func(name string) string { return s.Credential(spec, name, getenv) }
	need := func(names ...string) error {
		var missing []string
		for _, n := range names {
			if cred(n) == "" {
				missing = append(missing, "credentials."+n+"Env or "+n+"Secret")
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing or empty %s", strings.Join(missing, ", "))
		}
		return nil
	}
	switch spec.Type {
	case "sandbox":
		if sh.Sandbox == nil {
			return worker.Target{}, errors.New("the sandbox LMS exists only in the local runner")
		}
		t.Conn = sh.Sandbox
	case "absorb":
		if err := need("username", "password", "privateKey"); err != nil {
			return worker.Target{}, err
		}
		gf := spec.GroupsField
		if gf == "" {
			gf = "customFields.string30"
		}
		c, err := absorb.New(absorb.Config{
			BaseURL: spec.URL, Username: cred("username"), Password: cred("password"), PrivateKey: cred("privateKey"),
			Limiter: sh.Limiter, Tokens: sh.Tokens, HTTPClient: httpClient(spec.RateLimit),
			DefaultDepartmentID: spec.DefaultDepartmentID, CreateDepartments: spec.CreateDepartments,
			GroupsField: gf, Logger: log,
		})
		if err != nil {
			return worker.Target{}, err
		}
		t.Conn = c
	case "scim":
		p, ok := scimout.Profiles()[spec.Profile]
		if !ok {
			return worker.Target{}, fmt.Errorf("profile: unknown %q", spec.Profile)
		}
		var auth scimout.Auth
		switch {
		case cred("token") != "":
			auth = scimout.BearerToken(cred("token"))
		case cred("username") != "":
			auth = scimout.Basic{User: cred("username"), Password: cred("password")}
		default:
			return worker.Target{}, errors.New("missing credentials: token, or username and password")
		}
		// New makes no request (discovery is lazy), so no context is needed.
		c, err := scimout.New(context.Background(), scimout.Config{
			BaseURL: spec.URL, Auth: auth, Profile: p, Limiter: sh.Limiter,
			HTTPClient: &http.Client{Transport: WindowTransport(nil, spec.RateLimit), Timeout: 30 * time.Second},
			Logger:     log,
		})
		if err != nil {
			return worker.Target{}, err
		}
		t.Conn = c.Target()
	case "onelogin":
		if err := need("clientId", "clientSecret"); err != nil {
			return worker.Target{}, err
		}
		c, err := onelogin.New(onelogin.Config{
			BaseURL: spec.URL, ClientID: cred("clientId"), ClientSecret: cred("clientSecret"),
			Limiter: sh.Limiter, Tokens: sh.Tokens, RoleMap: spec.RoleMap,
			HTTPClient: &http.Client{Transport: WindowTransport(nil, spec.RateLimit), Timeout: 30 * time.Second},
			Logger:     log,
		})
		if err != nil {
			return worker.Target{}, err
		}
		t.Conn = c
		// Every write carries the identity's version, so an inbound
		// OneLogin change can be told from our own echo.
		t.Context = func(ctx context.Context, ident *store.Identity) context.Context {
			return onelogin.WithOrigin(ctx, ident.ID, ident.Version)
		}
	default:
		return worker.Target{}, fmt.Errorf("type: unknown %q", spec.Type)
	}
	return t, nil
}

// mappingAndRules is the target's own "mapping" and "enrollment" sections,
// else the top-level ones; the same strict decoding and validation apply.
func mappingAndRules(s config.Settings, spec config.TargetSpec, getenv func(string) string) (mapping.Config, rules.Config, error) {
	m, err := mapping.Parse(s.Config, s.ConfigSource, getenv)
	if err != nil {
		return mapping.Config{}, rules.Config{}, err
	}
	r, err := rules.Parse(s.Config, s.ConfigSource)
	if err != nil {
		return mapping.Config{}, rules.Config{}, err
	}
	if len(spec.Mapping) == 0 && len(spec.Enrollment) == 0 {
		return m, r, nil
	}
	sections := map[string]json.RawMessage{}
	if len(spec.Mapping) > 0 {
		sections[mapping.Section] = spec.Mapping
	}
	if len(spec.Enrollment) > 0 {
		sections[rules.Section] = spec.Enrollment
	}
	doc, err := json.Marshal(sections)
	if err != nil {
		return mapping.Config{}, rules.Config{}, fmt.Errorf("target %s: %w", spec.Name, err)
	}
	source := fmt.Sprintf("%s: targets[%s]", s.ConfigSource, spec.Name)
	if len(spec.Mapping) > 0 {
		// LEARNERLINK_MAP_* overrides are for the top-level mapping only.
		if m, err = mapping.Parse(doc, source, nil); err != nil {
			return mapping.Config{}, rules.Config{}, err
		}
	}
	if len(spec.Enrollment) > 0 {
		if r, err = rules.Parse(doc, source); err != nil {
			return mapping.Config{}, rules.Config{}, err
		}
	}
	return m, r, nil
}
