package lambdafn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/okta"
)

// HooksHandler serves Okta Event Hooks to API Gateway HTTP API (payload 2.0).
type HooksHandler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// hookSecrets are the hooks function's keys in the Secrets Manager secret.
type hookSecrets struct {
	HookSecret     string `json:"hookSecret"`
	OktaAPIToken   string `json:"oktaApiToken"`
	OktaClientID   string `json:"oktaClientId"`
	OktaPrivateKey string `json:"oktaPrivateKey"`
	OktaKeyID      string `json:"oktaKeyId"`
}

// hooksOktaTimeout bounds one Okta API call at the HTTP level; the
// receiver's own budget (well under Okta's 3 s) is tighter.
const hooksOktaTimeout = 5 * time.Second

// Hooks builds the Okta Event Hooks function's handler (GET and POST
// /okta/hooks). Besides the common settings it reads:
//
//	LEARNERLINK_HOOK_AUTH_HEADER   header Okta sends the secret in (default Authorization)
//	LEARNERLINK_HOOK_SECRET        the secret (local runs and tests; in AWS hookSecret in the secret)
//	OKTA_ORG_URL                   the Okta org, for profile look-ups (optional: without it,
//	                               events about users learnerlink does not know are left to SCIM)
//	OKTA_APP_ID                    learnerlink's app in Okta: its assignment creates or
//	                               reactivates, its removal deactivates (optional)
//	OKTA_API_TOKEN                 an API token (else oktaApiToken in the secret), or
//	OKTA_CLIENT_ID, OKTA_KEY_ID    an OAuth service app (else oktaClientId/oktaKeyId in the
//	                               secret) with OKTA_PRIVATE_KEY (else oktaPrivateKey)
func Hooks(ctx context.Context, getenv func(string) string) (HooksHandler, error) {
	d, err := load(ctx, getenv)
	if err != nil {
		return nil, err
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	sec := hookSecrets{
		HookSecret:     get("LEARNERLINK_HOOK_SECRET"),
		OktaAPIToken:   get("OKTA_API_TOKEN"),
		OktaClientID:   get("OKTA_CLIENT_ID"),
		OktaPrivateKey: getenv("OKTA_PRIVATE_KEY"),
		OktaKeyID:      get("OKTA_KEY_ID"),
	}
	orgURL := get("OKTA_ORG_URL")
	needOkta := orgURL != "" && sec.OktaAPIToken == "" && sec.OktaPrivateKey == ""
	if (sec.HookSecret == "" || needOkta) && d.settings.SecretID != "" {
		// load() read the secret for the common credentials; its hook and
		// Okta keys are read here once more, at cold start only.
		stored, err := readHookSecrets(ctx, d.settings.SecretID)
		if err != nil {
			return nil, err
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&sec.HookSecret, stored.HookSecret)
		if needOkta {
			fill(&sec.OktaAPIToken, stored.OktaAPIToken)
			fill(&sec.OktaClientID, stored.OktaClientID)
			fill(&sec.OktaPrivateKey, stored.OktaPrivateKey)
			fill(&sec.OktaKeyID, stored.OktaKeyID)
		}
	}
	if sec.HookSecret == "" {
		return nil, errors.New("lambdafn: no hook secret (hookSecret in the secret, or LEARNERLINK_HOOK_SECRET)")
	}
	var dir hooks.Directory // nil interface when Okta is not configured
	if orgURL != "" {
		cfg := okta.Config{OrgURL: orgURL, HTTPClient: &http.Client{Timeout: hooksOktaTimeout}, Logger: d.log}
		switch {
		case sec.OktaAPIToken != "":
			cfg.APIToken = sec.OktaAPIToken
		case sec.OktaClientID != "" && sec.OktaPrivateKey != "":
			cfg.OAuth = &okta.OAuth{ClientID: sec.OktaClientID, PrivateKeyPEM: sec.OktaPrivateKey, KeyID: sec.OktaKeyID}
		default:
			return nil, errors.New("lambdafn: OKTA_ORG_URL is set but there are no Okta credentials (oktaApiToken, or oktaClientId and oktaPrivateKey, in the secret)")
		}
		c, err := okta.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("lambdafn: %w", err)
		}
		dir = c
	}
	h, err := hooks.NewHandler(d.store, d.queue, dir, hooks.Config{
		Secret:     sec.HookSecret,
		AuthHeader: get("LEARNERLINK_HOOK_AUTH_HEADER"),
		AppID:      get("OKTA_APP_ID"),
		Logger:     d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("lambdafn: %w", err)
	}
	return httpadapter.NewV2(h).ProxyWithContext, nil
}

func readHookSecrets(ctx context.Context, secretID string) (hookSecrets, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return hookSecrets{}, fmt.Errorf("lambdafn: aws config: %w", err)
	}
	raw, err := secrets{secretsmanager.NewFromConfig(cfg)}.SecretString(ctx, secretID)
	if err != nil {
		return hookSecrets{}, fmt.Errorf("lambdafn: read secret: %w", err)
	}
	var sec hookSecrets
	if err := json.Unmarshal([]byte(raw), &sec); err != nil {
		// Never echo the secret's content.
		return hookSecrets{}, errors.New("lambdafn: the secret is not a JSON object of credentials")
	}
	return sec, nil
}
