package lambdafn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/okta"
)

// HooksHandler serves Okta Event Hooks to API Gateway HTTP API (payload 2.0).
type HooksHandler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

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
	s := d.settings
	if s.HookSecret == "" {
		return nil, errors.New("lambdafn: no hook secret (hookSecret in the secret, or LEARNERLINK_HOOK_SECRET)")
	}
	var dir hooks.Directory // nil interface when Okta is not configured
	c, err := okta.FromSettings(s.Okta, &http.Client{Timeout: hooksOktaTimeout}, d.log)
	if err != nil {
		return nil, fmt.Errorf("lambdafn: %w", err)
	}
	if c != nil {
		dir = c
	}
	h, err := hooks.NewHandler(d.store, d.fan, dir, hooks.Config{
		Secret:     s.HookSecret,
		AuthHeader: s.HookAuthHeader,
		AppID:      s.Okta.AppID,
		Logger:     d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("lambdafn: %w", err)
	}
	return httpadapter.NewV2(h).ProxyWithContext, nil
}
